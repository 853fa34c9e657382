//! The journal: one append-only row per change of a stock, coupon, voucher or
//! outbox call, written in the same transaction as the change.

use rusqlite::{params, Connection, Row};

use crate::domain::ledger::{JournalEntry, Origin};
use crate::domain::LedgerError;

/// What a journal row is about (the `entity` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entity {
    Stock,
    Coupon,
    Voucher,
    Outbox,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Stock => "stock",
            Entity::Coupon => "coupon",
            Entity::Voucher => "voucher",
            Entity::Outbox => "outbox",
        }
    }
}

/// One row to append: built with [`JournalRow::new`] and the optional parts.
pub(super) struct JournalRow<'r> {
    entity: Entity,
    id: &'r str,
    event: &'r str,
    from: Option<i64>,
    to: Option<i64>,
    seq_id: Option<&'r str>,
    detail: Option<String>,
    coupon_seq: Option<i64>,
}

impl<'r> JournalRow<'r> {
    pub fn new(entity: Entity, id: &'r str, event: &'r str) -> Self {
        JournalRow {
            entity,
            id,
            event,
            from: None,
            to: None,
            seq_id: None,
            detail: None,
            coupon_seq: None,
        }
    }

    /// The `seq` of the coupon a coupon row is about, when the caller has it
    /// (a claim, from its insert); else the append looks it up by the id.
    pub fn coupon_seq(self, seq: i64) -> Self {
        JournalRow {
            coupon_seq: Some(seq),
            ..self
        }
    }

    /// The status before and after (`None`: there was none, or it has none).
    pub fn moved(self, from: Option<i64>, to: Option<i64>) -> Self {
        JournalRow { from, to, ..self }
    }

    /// Extra facts, as a JSON text.
    pub fn detail(self, detail: impl ToString) -> Self {
        JournalRow {
            detail: Some(detail.to_string()),
            ..self
        }
    }

    /// The detail of an issue: `{"request_id":...,"stock_id":...}`, the text
    /// `json!` wrote (keys in byte order), written straight into one string:
    /// building a JSON value for it was 4 % of a claim in the writer.
    pub fn issue_detail(self, stock_id: &str, request_id: &str) -> Self {
        let mut out = Vec::with_capacity(32 + stock_id.len() + request_id.len());
        out.extend_from_slice(br#"{"request_id":"#);
        push_json_string(&mut out, request_id);
        out.extend_from_slice(br#","stock_id":"#);
        push_json_string(&mut out, stock_id);
        out.push(b'}');
        JournalRow {
            detail: Some(String::from_utf8_lossy(&out).into_owned()),
            ..self
        }
    }

    /// A `seq_id` other than the request's (an outbox call's own).
    pub fn seq_id(self, seq_id: &'r str) -> Self {
        JournalRow {
            seq_id: Some(seq_id),
            ..self
        }
    }

    pub(super) fn append(self, conn: &Connection, origin: &Origin) -> Result<(), LedgerError> {
        // A coupon's row carries the coupon's seq: given, or found by its id
        // (the coupon's index page is the one the change itself just read).
        conn.prepare_cached(
            "INSERT INTO journal (entity, entity_id, event, from_status, to_status, source, seq_id, at_ms, detail, operator, coupon_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                     CASE WHEN ?1 = 'coupon'
                          THEN coalesce(?11, (SELECT seq FROM coupons WHERE coupon_id = ?2)) END)",
        )?
        .execute(params![
            self.entity.as_str(),
            self.id,
            self.event,
            self.from,
            self.to,
            origin.source.as_str(),
            self.seq_id.or(origin.seq_id.as_deref()),
            origin.now,
            self.detail,
            origin.operator,
            self.coupon_seq
        ])?;
        Ok(())
    }
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Writing a `&str` into a `Vec` cannot fail; if it ever did, the detail
    // would lack this value, never the row.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Builds a journal entry from a row of `journal` (columns by name).
fn entry(row: &Row) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        id: row.get("id")?,
        entity: row.get("entity")?,
        entity_id: row.get("entity_id")?,
        event: row.get("event")?,
        from_status: row.get("from_status")?,
        to_status: row.get("to_status")?,
        source: row.get("source")?,
        seq_id: row.get("seq_id")?,
        at_ms: row.get("at_ms")?,
        detail: row.get("detail")?,
        operator: row.get("operator")?,
    })
}

/// Every journal row of one entity, oldest first.
pub(super) fn of(
    conn: &Connection,
    entity: Entity,
    id: &str,
) -> Result<Vec<JournalEntry>, LedgerError> {
    let mut stmt = conn.prepare_cached(&of_sql(entity))?;
    let rows = stmt.query_map([entity.as_str(), id], entry)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The query of [`of`] (`?1` the entity, `?2` its id): a coupon's rows by
/// its seq (`journal_by_coupon`), any other's by its id
/// (`journal_by_entity`). Each names its index's condition, so that SQLite
/// can use the partial index.
fn of_sql(entity: Entity) -> String {
    const COLUMNS: &str =
        "id, entity, entity_id, event, from_status, to_status, source, seq_id, at_ms, detail, operator";
    match entity {
        Entity::Coupon => format!(
            "SELECT {COLUMNS} FROM journal
             WHERE coupon_seq = (SELECT seq FROM coupons WHERE coupon_id = ?2)
               AND coupon_seq IS NOT NULL AND entity = ?1
             ORDER BY id"
        ),
        _ => format!(
            "SELECT {COLUMNS} FROM journal
             WHERE entity = ?1 AND entity_id = ?2 AND coupon_seq IS NULL
             ORDER BY id"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issue_detail_is_the_text_json_wrote() {
        for (stock, request) in [
            ("s1", "r-1"),
            ("代金券", "q\"uo\\te\n\u{1}\u{7f}é"),
            ("", ""),
        ] {
            let row = JournalRow::new(Entity::Coupon, "c", "issue").issue_detail(stock, request);
            let expected = serde_json::json!({"stock_id": stock, "request_id": request});
            assert_eq!(row.detail, Some(expected.to_string()));
        }
    }

    #[test]
    fn each_entity_finds_its_rows_through_its_partial_index() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::SCHEMA).unwrap();
        let plan = |entity: Entity| {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", of_sql(entity)))
                .unwrap();
            let rows = stmt
                .query_map([entity.as_str(), "x"], |r| r.get::<_, String>(3))
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
        };
        let coupon = plan(Entity::Coupon);
        assert!(
            coupon.contains("INDEX journal_by_coupon (coupon_seq=?)"),
            "{coupon}"
        );
        for other in [Entity::Stock, Entity::Voucher, Entity::Outbox] {
            let p = plan(other);
            assert!(
                p.contains("INDEX journal_by_entity (entity=? AND entity_id=?)"),
                "{p}"
            );
        }
    }
}

//! `coupon-ledger check DB`: verifies every invariant of docs/protocol.md, the ledger's rules on a database file.

use std::cmp::Ordering;
use std::path::Path;

use rusqlite::types::FromSql;
use rusqlite::{Connection, OpenFlags};

use super::SCHEMA_VERSION;
use crate::domain::stock::{CouponStatus, StockStatus};

/// How thoroughly [`check_database`] reads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// SQLite's `integrity_check`: also that every index holds exactly its table's rows.
    Full,
    /// SQLite's `quick_check` (page structure, record formats, NOT NULL and
    /// CHECK constraints), about half the time on a big ledger; every ledger
    /// rule is still checked.
    Quick,
}

/// Checks a ledger database and returns every violation found (empty: all good).
/// Opens the file read-only; fails if it cannot be read at all.
pub fn check_database(path: &Path) -> Result<Vec<String>, String> {
    check_database_to(path, Depth::Full)
}

/// The table whose own SQLite check runs on the second thread at
/// [`Depth::Full`]: the biggest, with four indexes to match against its rows
/// (on ten million coupons, two thirds of the whole check).
const BIG_TABLE: &str = "coupons";

/// Page cache of each check connection. Matching an index against its table
/// seeks the index at random; SQLite's default 2 MB cache made every seek read
/// and parse its pages again. Memory is taken only as pages are read.
const CHECK_CACHE_KIB: i64 = 256 * 1024;

/// [`check_database`] at the given depth.
///
/// Two read-only connections work at once, on two threads, each in its own
/// read transaction, and share the work ([`share`]). Each rule reads one
/// snapshot (the journal chains and the statuses they end at, in particular,
/// are read in the same one), so a check of a ledger that is being written
/// never mixes two moments; SQLite's check of a table reads it and its
/// indexes in one snapshot too. On ten million coupons the full check took
/// 45 s instead of 89 s on one connection.
pub fn check_database_to(path: &Path, depth: Depth) -> Result<Vec<String>, String> {
    if !path.exists() {
        return Err(format!("{}: no such database file", path.display()));
    }
    let conn = open_for_check(path)?;
    let failed = |e: rusqlite::Error| format!("cannot read {}: {e}", path.display());
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(failed)?;
    if version != SCHEMA_VERSION {
        return Ok(vec![format!(
            "schema version is {version}, expected {SCHEMA_VERSION}"
        )]);
    }
    let (big, rest) = std::thread::scope(|s| {
        let big = s.spawn(|| -> Result<Vec<String>, String> {
            let conn = open_for_check(path)?;
            check_share(&conn, depth, true).map_err(failed)
        });
        let rest = check_share(&conn, depth, false).map_err(failed);
        let big = big
            .join()
            .unwrap_or_else(|_| Err("the second check thread panicked".into()));
        (big, rest)
    });
    let mut all = big?;
    // A fault in the coupons table's pages can be found by both connections:
    // it is listed once.
    for line in rest? {
        if !all.contains(&line) {
            all.push(line);
        }
    }
    Ok(all)
}

/// A read-only connection in a read transaction, with a page cache sized for
/// checking, reading the file through a memory map where SQLite allows (its
/// first 2 GB): pages come from the OS's file cache without a read call each.
/// The mapped part counts in the process's resident memory, but it is the
/// file cache, shared and given back under pressure.
fn open_for_check(path: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.execute_batch(&format!(
        "PRAGMA busy_timeout = 5000; PRAGMA cache_size = -{CHECK_CACHE_KIB};
         PRAGMA mmap_size = {}; BEGIN",
        i64::MAX
    ))
    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(conn)
}

/// What one of the two connections checks.
struct Share {
    /// Its part of SQLite's own check. Together the two connections' lists
    /// are the whole of `integrity_check` (at [`Depth::Full`]: `quick_check`
    /// reads every page, checks that each page is used once, every record,
    /// NOT NULL and CHECK constraints; `integrity_check` of a table also
    /// matches its indexes against it) or of `quick_check`.
    pragmas: Vec<String>,
    /// Every ledger rule but the journal's ([`run_checks`]).
    rules: bool,
    /// The journal chains against the current statuses ([`check_journal`]).
    journal: bool,
}

/// The two connections' shares, the second thread's the longest single
/// piece: at [`Depth::Full`] the coupons table's `integrity_check` (the
/// first does the rest of SQLite's check and every rule); at
/// [`Depth::Quick`] `quick_check` and the journal chains, while the first
/// checks the other rules.
fn share(conn: &Connection, depth: Depth, second: bool) -> rusqlite::Result<Share> {
    let only = |pragmas: Vec<String>, rules: bool, journal: bool| Share {
        pragmas,
        rules,
        journal,
    };
    Ok(match (depth, second) {
        (Depth::Full, true) => only(vec![format!("integrity_check({BIG_TABLE})")], false, false),
        (Depth::Full, false) => {
            let others = strings_with(
                conn,
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name <> ?1 ORDER BY name",
                [BIG_TABLE],
            )?;
            let pragmas = std::iter::once("quick_check".to_string())
                .chain(
                    others
                        .iter()
                        .map(|t| format!("integrity_check(\"{}\")", t.replace('"', "\"\""))),
                )
                .collect();
            only(pragmas, true, true)
        }
        (Depth::Quick, true) => only(vec!["quick_check".to_string()], false, true),
        (Depth::Quick, false) => only(Vec::new(), true, false),
    })
}

/// One connection's share of the check ([`share`]): the lines of SQLite's
/// check that are not `ok`, each once, then the violations of its rules.
fn check_share(conn: &Connection, depth: Depth, second: bool) -> rusqlite::Result<Vec<String>> {
    let share = share(conn, depth, second)?;
    let mut v = sqlite_check(conn, depth, &share.pragmas)?;
    if share.rules {
        run_checks(conn, &mut v)?;
    }
    if share.journal {
        check_journal(conn, &mut v)?;
    }
    Ok(v)
}

/// SQLite's own check by `pragmas`: every line that is not `ok`, each once.
fn sqlite_check(
    conn: &Connection,
    depth: Depth,
    pragmas: &[String],
) -> rusqlite::Result<Vec<String>> {
    let label = match depth {
        Depth::Full => "integrity_check",
        Depth::Quick => "quick_check",
    };
    let mut v: Vec<String> = Vec::new();
    for pragma in pragmas {
        for line in strings(conn, &format!("PRAGMA {pragma}"))? {
            if line == "ok" {
                continue;
            }
            let line = format!("{label}: {line}");
            if !v.contains(&line) {
                v.push(line);
            }
        }
    }
    Ok(v)
}

fn strings(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<String>> {
    strings_with(conn, sql, [])
}

/// [`strings`] with bound parameters: the ledger's states come from their
/// Rust types, never from literals in the SQL.
fn strings_with(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Every ledger rule but the journal chains, on one snapshot.
fn run_checks(conn: &Connection, v: &mut Vec<String>) -> rusqlite::Result<()> {
    let fk: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
        r.get(0)
    })?;
    if fk > 0 {
        v.push(format!("{fk} rows break a foreign key"));
    }
    for t in [
        "journal_append_only_update",
        "journal_append_only_delete",
        "coupons_claim_rules",
        "coupons_count_issue",
        "coupons_count_status",
    ] {
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
            [t],
            |r| r.get(0),
        )?;
        if n == 0 {
            v.push(format!("trigger {t} is missing"));
        }
    }
    v.extend(strings(
        conn,
        // One pass over the coupons, grouped by stock, against the counters
        // the triggers keep on each stock's row.
        "WITH n AS (SELECT stock_id, count(*) AS issued, sum(status = 2) AS used,
                           sum(status = 3) AS expired, sum(status = 4) AS deactivated
                    FROM coupons GROUP BY stock_id)
         SELECT 'stock ' || s.stock_id || ': counters issued/used/expired/deactivated '
                || s.issued || '/' || s.used || '/' || s.expired || '/' || s.deactivated
                || ' but its coupons are ' || coalesce(n.issued, 0) || '/' || coalesce(n.used, 0)
                || '/' || coalesce(n.expired, 0) || '/' || coalesce(n.deactivated, 0)
         FROM stocks s LEFT JOIN n ON n.stock_id = s.stock_id
         WHERE s.issued <> coalesce(n.issued, 0) OR s.used <> coalesce(n.used, 0)
            OR s.expired <> coalesce(n.expired, 0) OR s.deactivated <> coalesce(n.deactivated, 0)",
    )?);
    v.extend(strings(
        conn,
        "SELECT 'stock ' || stock_id || ': ' || issued || ' issued, over max_coupons ' || max_coupons
         FROM stocks WHERE issued > max_coupons",
    )?);
    v.extend(strings(
        conn,
        "SELECT 'stock ' || c.stock_id || ': user ' || c.app_channel_id || '/' || c.user_code || ' holds '
                || count(*) || ', over max_coupons_per_user ' || s.max_coupons_per_user
         FROM coupons c JOIN stocks s ON s.stock_id = c.stock_id
         GROUP BY c.user_code, c.stock_id, c.app_channel_id
         HAVING count(*) > s.max_coupons_per_user",
    )?);
    v.extend(strings(
        conn,
        "SELECT 'coupon ' || c.coupon_id || ': terms differ from stock ' || s.stock_id
         FROM coupons c JOIN stocks s ON s.stock_id = c.stock_id
         WHERE c.coupon_type IS NOT s.coupon_type OR c.coupon_amount IS NOT s.coupon_amount
            OR c.transaction_minimum IS NOT s.transaction_minimum
            OR c.discount_percent IS NOT s.discount_percent
            OR c.discount_amount_max IS NOT s.discount_amount_max
            OR c.app_channel_id IS NOT s.app_channel_id",
    )?);
    v.extend(strings_with(
        conn,
        "SELECT 'coupon ' || c.coupon_id || ': status ' || c.status || ' with '
                || (SELECT count(*) FROM redemptions r WHERE r.coupon_id = c.coupon_id AND r.undone_ms IS NULL)
                || ' live redemptions'
         FROM coupons c
         WHERE (c.status = ?1) <> ((SELECT count(*) FROM redemptions r
                                    WHERE r.coupon_id = c.coupon_id AND r.undone_ms IS NULL) = 1)",
        [CouponStatus::Used.code()],
    )?);
    v.extend(strings(
        conn,
        "SELECT 'coupon ' || coupon_id || ': mobile_phone stored unmasked' FROM coupons
         WHERE mobile_masked GLOB '*[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]*'",
    )?);
    v.extend(strings(
        conn,
        "SELECT 'voucher ' || w.type || ':' || w.coupon_no || ': ' || w.remaining || ' uses left, but '
                || w.total || ' minus live verifies is '
                || (w.total - coalesce((SELECT sum(count) FROM voucher_verifications x
                                        WHERE x.voucher_id = w.id AND x.cancelled_ms IS NULL), 0))
         FROM vouchers w
         WHERE w.remaining <> w.total - coalesce((SELECT sum(count) FROM voucher_verifications x
                                                  WHERE x.voucher_id = w.id AND x.cancelled_ms IS NULL), 0)",
    )?);
    Ok(())
}

/// Every journal chain starts from nothing, links each row to the one before,
/// makes only legal transitions, and ends at the entity's current status.
///
/// It streams: one kind of entity at a time, its journal rows in (entity,
/// row id) order beside the entities themselves in the same order, one chain
/// at a time, so memory stays the same whatever the size of the ledger (a map
/// of every chain's end took about 100 bytes a coupon). Coupons and their
/// rows are read by `seq`, the order both sit in the file.
fn check_journal(conn: &Connection, v: &mut Vec<String>) -> rusqlite::Result<()> {
    const ROWS: &str = "entity, entity_id, id, event, from_status, to_status";
    walk_chains::<i64>(
        conn,
        "coupon",
        &format!(
            "SELECT coupon_seq, {ROWS} FROM journal
             WHERE coupon_seq IS NOT NULL ORDER BY coupon_seq, id"
        ),
        Some("SELECT seq, coupon_id, status FROM coupons ORDER BY seq"),
        v,
    )?;
    for (entity, current) in [
        (
            "stock",
            Some("SELECT stock_id, stock_id, stock_status FROM stocks ORDER BY stock_id"),
        ),
        (
            "voucher",
            Some(
                "SELECT type || ':' || coupon_no AS key, type || ':' || coupon_no, remaining
                 FROM vouchers ORDER BY key",
            ),
        ),
        ("outbox", None),
    ] {
        walk_chains::<String>(
            conn,
            entity,
            &format!(
                "SELECT entity_id, {ROWS} FROM journal
                 WHERE entity = '{entity}' AND coupon_seq IS NULL ORDER BY entity_id, id"
            ),
            current,
            v,
        )?;
    }
    // A coupon row without its coupon's seq is in no chain above.
    v.extend(strings(
        conn,
        "SELECT 'journal ' || id || ': coupon ' || entity_id || ' ' || event || ' has no coupon_seq'
         FROM journal WHERE entity = 'coupon' AND coupon_seq IS NULL",
    )?);
    Ok(())
}

/// The entities of one kind as they are now, in key order: (key, id, status).
struct Current<'s, K> {
    rows: Option<rusqlite::Rows<'s>>,
    next: Option<(K, String, i64)>,
}

impl<K: FromSql> Current<'_, K> {
    fn advance(&mut self) -> rusqlite::Result<()> {
        self.next = match self.rows.as_mut() {
            Some(rows) => match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?)),
                None => None,
            },
            None => None,
        };
        Ok(())
    }

    /// Matches a finished chain (`key`, the id its rows name, its last
    /// status) with the entities up to its key: those before it have no
    /// chain at all; the one at it must be the entity the rows name, and be
    /// where the chain ended.
    fn settle(
        &mut self,
        entity: &str,
        (key, named, end): (K, String, Option<i64>),
        v: &mut Vec<String>,
    ) -> rusqlite::Result<()>
    where
        K: Ord,
    {
        while let Some((k, id, status)) = self.next.take() {
            match k.cmp(&key) {
                Ordering::Less => {
                    v.push(format!("{entity} {id}: no journal rows"));
                    self.advance()?;
                }
                Ordering::Equal => {
                    if id != named {
                        v.push(format!(
                            "{entity} {id}: its journal rows name {entity} {named}"
                        ));
                    } else if end != Some(status) {
                        v.push(format!(
                            "{entity} {id}: status {status}, but its journal ends at {end:?}"
                        ));
                    }
                    return self.advance();
                }
                Ordering::Greater => {
                    self.next = Some((k, id, status));
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Checks every journal chain of `entity` read by `journal` (key, entity,
/// entity id, row id, event, from, to; by key, then row id), against the
/// entities read by `current` (key, id, status; by key) when it has them.
fn walk_chains<K: FromSql + Ord + Clone + std::fmt::Display>(
    conn: &Connection,
    entity: &str,
    journal: &str,
    current: Option<&str>,
    v: &mut Vec<String>,
) -> rusqlite::Result<()> {
    let mut now_stmt = current.map(|sql| conn.prepare(sql)).transpose()?;
    let mut now = Current::<K> {
        rows: now_stmt.as_mut().map(|s| s.query([])).transpose()?,
        next: None,
    };
    now.advance()?;
    let mut stmt = conn.prepare(journal)?;
    let mut rows = stmt.query([])?;
    // The chain being read: its key, the id its first row names, where its last row ended.
    let mut chain: Option<(K, String, Option<i64>)> = None;
    while let Some(r) = rows.next()? {
        let key: K = r.get(0)?;
        let kind: String = r.get(1)?;
        let entity_id: String = r.get(2)?;
        let id: i64 = r.get(3)?;
        let event: String = r.get(4)?;
        let from: Option<i64> = r.get(5)?;
        let to: Option<i64> = r.get(6)?;
        let prev = match chain.take() {
            Some((k, named, end)) if k == key => {
                if named != entity_id {
                    v.push(format!(
                        "journal {id}: {kind} {entity_id} {event} is filed under {entity} {named}"
                    ));
                }
                chain = Some((k, named, end));
                end
            }
            Some(done) => {
                now.settle(entity, done, v)?;
                None
            }
            None => None,
        };
        if kind != entity {
            v.push(format!(
                "journal {id}: a {kind} row is filed under {entity} {key}"
            ));
        }
        if from != prev {
            v.push(format!(
                "journal {id}: {entity} {entity_id} {event} starts from {from:?}, but the previous row ended at {prev:?}"
            ));
        }
        if let (Some(f), Some(t)) = (from, to) {
            let legal = f == t
                || match entity {
                    "stock" => matches!((StockStatus::from_code(f), StockStatus::from_code(t)),
                        (Some(a), Some(b)) if a.can_become(b)),
                    "coupon" => matches!((CouponStatus::from_code(f), CouponStatus::from_code(t)),
                        (Some(a), Some(b)) if a.can_become(b)),
                    _ => true,
                };
            if !legal {
                v.push(format!(
                    "journal {id}: {entity} {entity_id} made an illegal transition {f} -> {t}"
                ));
            }
        }
        chain = Some(match chain.take() {
            Some((k, named, _)) => (k, named, to),
            None => (key, entity_id, to),
        });
    }
    if let Some(done) = chain {
        now.settle(entity, done, v)?;
    }
    while let Some((_, id, _)) = now.next.take() {
        v.push(format!("{entity} {id}: no journal rows"));
        now.advance()?;
    }
    Ok(())
}

//! The outbox table (docs/protocol.md, sync to the platform): calls written with the changes that cause them,
//! and the bookkeeping of their delivery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::{json, Value};

use super::journal::{Entity, JournalRow};
use super::Store;
use super::{coupons, stocks};
use crate::domain::coupon::random_hex;
use crate::domain::ledger::{
    abandon_reason, Origin, OutboxCall, OutboxHealth, OutboxState, Page, ResyncTarget, Source,
    SyncEvent,
};
use crate::domain::time::Millis;
use crate::domain::LedgerError;

/// How SP-side changes become platform calls: renders an event as the call it
/// causes (its path and business fields), and counts the calls written so the
/// dispatcher knows when to look. `None` where the store holds one: sync is off.
pub struct SyncCalls {
    render: Box<RenderCall>,
    written: AtomicU64,
}

/// Renders an event as its call: the path and the business fields.
type RenderCall = dyn Fn(&SyncEvent) -> (&'static str, Value) + Send + Sync;

impl SyncCalls {
    /// Sync calls rendered by `render`.
    pub fn new(
        render: impl Fn(&SyncEvent) -> (&'static str, Value) + Send + Sync + 'static,
    ) -> Arc<SyncCalls> {
        Arc::new(SyncCalls {
            render: Box::new(render),
            written: AtomicU64::new(0),
        })
    }

    fn bump(&self) {
        self.written.fetch_add(1, Ordering::SeqCst);
    }
}

const CALL_COLUMNS: &str = "id, seq_id, path, body, stock_id, coupon_id, state, attempts, \
    next_attempt_ms, created_ms, delivered_ms, last_error, abandoned_ms, abandon_reason";

/// The stored words of the states, bound as parameters by the statements below.
const PENDING: &str = OutboxState::Pending.as_str();
const DEAD: &str = OutboxState::Dead.as_str();
const DELIVERED: &str = OutboxState::Delivered.as_str();
const ABANDONED: &str = OutboxState::Abandoned.as_str();

/// A state as an SQL string literal (`'pending'`), for a statement whose plan
/// depends on seeing it (see [`ready_sql`]). The words hold no quote.
fn literal(state: OutboxState) -> String {
    format!("'{}'", state.as_str())
}

/// The `meta` key counting abandoned calls that retention has deleted, so
/// `/healthz` can still count every call abandoned.
const PRUNED_ABANDONED: &str = "outbox_pruned_abandoned";

/// Builds a call from a row selected with [`CALL_COLUMNS`], by column name.
fn call(row: &Row) -> rusqlite::Result<OutboxCall> {
    Ok(OutboxCall {
        id: row.get("id")?,
        seq_id: row.get("seq_id")?,
        path: row.get("path")?,
        body: row.get("body")?,
        stock_id: row.get("stock_id")?,
        coupon_id: row.get("coupon_id")?,
        state: row.get("state")?,
        attempts: row.get("attempts")?,
        next_attempt_ms: row.get("next_attempt_ms")?,
        created_ms: row.get("created_ms")?,
        delivered_ms: row.get("delivered_ms")?,
        last_error: row.get("last_error")?,
        abandoned_ms: row.get("abandoned_ms")?,
        abandon_reason: row.get("abandon_reason")?,
    })
}

/// Writes the call an event causes, in the caller's transaction, and answers
/// its id. Changes the platform itself asked for are not echoed back; without a
/// `[platform]` there is nothing to write (the journal still has the change).
pub fn enqueue(
    conn: &Connection,
    sync: Option<&Arc<SyncCalls>>,
    event: &SyncEvent,
    origin: &Origin,
) -> Result<Option<i64>, LedgerError> {
    let Some(calls) = sync else { return Ok(None) };
    if origin.source == Source::Platform {
        return Ok(None);
    }
    let (path, body) = (calls.render)(event);
    let lane = match event.coupon_id() {
        Some(c) => format!("coupon:{c}"),
        None => format!("stock:{}", event.stock_id()),
    };
    let seq_id = format!("sp-{}", random_hex(16).map_err(LedgerError::Internal)?);
    conn.prepare_cached(
        "INSERT INTO outbox (seq_id, path, body, lane, stock_id, coupon_id, state, next_attempt_ms, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?8, ?7, ?7)",
    )?
    .execute(params![
        seq_id,
        path,
        body.to_string(),
        lane,
        event.stock_id(),
        event.coupon_id(),
        origin.now,
        PENDING,
    ])?;
    // Counted before the commit: a rolled-back call only costs the dispatcher one look.
    calls.bump();
    Ok(Some(conn.last_insert_rowid()))
}

fn load_call(conn: &Connection, id: i64) -> Result<Option<OutboxCall>, LedgerError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {CALL_COLUMNS} FROM outbox WHERE id = ?1"))?
        .query_row([id], call)
        .optional()?)
}

fn no_such_call() -> LedgerError {
    LedgerError::invalid("id", "no outbox call has this id")
}

/// Marks a dead call abandoned, journaled as entity `outbox`, in one transaction.
fn abandon_tx(
    conn: &Connection,
    id: i64,
    reason: &str,
    origin: &Origin,
) -> Result<OutboxCall, LedgerError> {
    let found = load_call(conn, id)?.ok_or_else(no_such_call)?;
    if found.state != DEAD {
        return Err(LedgerError::StateConflict(format!(
            "outbox call {id} is {}; only a dead call can be abandoned",
            found.state
        )));
    }
    conn.prepare_cached(
        "UPDATE outbox SET state = ?4, abandoned_ms = ?2, abandon_reason = ?3
         WHERE id = ?1 AND state = ?5",
    )?
    .execute(params![id, origin.now, reason, ABANDONED, DEAD])?;
    let detail = json!({
        "reason": reason, "path": found.path, "seq_id": found.seq_id,
        "stock_id": found.stock_id, "coupon_id": found.coupon_id,
        "from_state": DEAD, "to_state": ABANDONED,
        "attempts": found.attempts, "last_error": found.last_error,
    });
    JournalRow::new(Entity::Outbox, &id.to_string(), "abandon")
        .seq_id(&found.seq_id)
        .detail(detail)
        .append(conn, origin)?;
    Ok(OutboxCall {
        state: ABANDONED.into(),
        abandoned_ms: Some(origin.now),
        abandon_reason: Some(reason.to_string()),
        ..found
    })
}

/// Queues calls carrying the current state of a stock or coupon, each journaled
/// as entity `outbox` with event `resync`; answers the calls, oldest first.
fn resync_tx(
    conn: &Connection,
    sync: Option<&Arc<SyncCalls>>,
    target: &ResyncTarget,
    origin: &Origin,
) -> Result<Vec<OutboxCall>, LedgerError> {
    if sync.is_none() {
        return Err(sync_disabled());
    }
    let events = match target {
        ResyncTarget::Stock(stock_id) => {
            let stock = stocks::get(conn, stock_id)?;
            let status = stock.spec.status.code();
            vec![
                SyncEvent::StockUpserted(stock),
                SyncEvent::StockStatus {
                    stock_id: stock_id.clone(),
                    status,
                },
            ]
        }
        ResyncTarget::Coupon(coupon_id) => {
            let coupon = coupons::get(conn, coupon_id)?;
            let event_ms = coupon.status_ms;
            vec![
                SyncEvent::CouponIssued(coupon.clone()),
                SyncEvent::CouponStatus { coupon, event_ms },
            ]
        }
    };
    let mut calls = Vec::with_capacity(events.len());
    for event in &events {
        let id = enqueue(conn, sync, event, origin)?.ok_or_else(sync_disabled)?;
        let written = load_call(conn, id)?
            .ok_or_else(|| LedgerError::Internal("a queued call vanished".into()))?;
        let detail = json!({
            "path": written.path, "stock_id": written.stock_id, "coupon_id": written.coupon_id,
        });
        JournalRow::new(Entity::Outbox, &id.to_string(), "resync")
            .seq_id(&written.seq_id)
            .detail(detail)
            .append(conn, origin)?;
        calls.push(written);
    }
    Ok(calls)
}

fn sync_disabled() -> LedgerError {
    LedgerError::StateConflict(
        "sync to the platform is disabled (no [platform] is configured); nothing to resend".into(),
    )
}

/// Deletes up to `limit` delivered or abandoned calls that became final before
/// `before`, delivered ones first; answers how many it deleted.
fn prune_tx(conn: &Connection, before: Millis, limit: i64) -> Result<usize, LedgerError> {
    let mut deleted = 0usize;
    for state in [DELIVERED, ABANDONED] {
        let room = limit - deleted as i64;
        if room <= 0 {
            break;
        }
        let n = conn
            .prepare_cached(
                "DELETE FROM outbox WHERE id IN (
                    SELECT id FROM outbox WHERE state = ?1
                      AND coalesce(delivered_ms, abandoned_ms) < ?2 LIMIT ?3)",
            )?
            .execute(params![state, before, room])?;
        if state == ABANDONED && n > 0 {
            conn.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + ?2 AS TEXT)",
            )?
            .execute(params![PRUNED_ABANDONED, (n as i64).to_string()])?;
        }
        deleted += n;
    }
    Ok(deleted)
}

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Try again at this time.
    Retry {
        error: String,
        at: Millis,
    },
    /// No more automatic attempts.
    Dead {
        error: String,
    },
}

/// How many calls have been written (or put back in line) since start; the
/// dispatcher looks for work when this moves.
pub(super) fn writes(store: &Store) -> u64 {
    store
        .inner
        .sync
        .as_ref()
        .map_or(0, |s| s.written.load(Ordering::SeqCst))
}

/// The due calls that head their lane, on ?1 (now) and ?2 (limit). The
/// open states are written into the SQL as literals, not bound: only then
/// can SQLite use the partial indexes on open calls (`WHERE state IN
/// ('pending', 'dead')`), so a backlog stays cheap to look through.
fn ready_sql() -> String {
    let (pending, dead) = (literal(OutboxState::Pending), literal(OutboxState::Dead));
    format!(
        "SELECT {CALL_COLUMNS} FROM outbox o
         WHERE o.state = {pending} AND o.next_attempt_ms <= ?1
           AND NOT EXISTS (SELECT 1 FROM outbox p
                           WHERE p.lane = o.lane AND p.id < o.id AND p.state IN ({pending}, {dead}))
           AND NOT EXISTS (SELECT 1 FROM outbox p
                           WHERE p.stock_id = o.stock_id AND p.coupon_id IS NULL
                             AND p.id < o.id AND p.state IN ({pending}, {dead}))
         ORDER BY o.id LIMIT ?2"
    )
}

/// Calls due by `now` that head their lane (nothing older about the same
/// coupon or stock is undelivered), oldest first, skipping `in_flight`.
pub(super) fn ready(
    store: &Store,
    now: Millis,
    in_flight: &[i64],
    limit: usize,
) -> Result<Vec<OutboxCall>, LedgerError> {
    store.read(|c| {
        let mut stmt = c.prepare_cached(&ready_sql())?;
        let rows = stmt.query_map(params![now, (limit + in_flight.len()) as i64], call)?;
        let mut ready = Vec::new();
        for r in rows {
            let r = r?;
            if !in_flight.contains(&r.id) && ready.len() < limit {
                ready.push(r);
            }
        }
        Ok(ready)
    })
}

/// Records the outcome of one delivery attempt.
pub(super) fn record(
    store: &Store,
    id: i64,
    attempt: Attempt,
    now: Millis,
) -> Result<(), LedgerError> {
    store.write(move |c| {
        let mut stmt = c.prepare_cached(
            "UPDATE outbox SET attempts = attempts + 1, state = ?2, delivered_ms = ?3,
                next_attempt_ms = ?4, last_error = ?5
             WHERE id = ?1 AND state = ?6",
        )?;
        match &attempt {
            Attempt::Delivered => {
                stmt.execute(params![id, DELIVERED, now, now, None::<String>, PENDING])?
            }
            Attempt::Retry { error, at } => {
                stmt.execute(params![id, PENDING, None::<i64>, at, error, PENDING])?
            }
            Attempt::Dead { error } => {
                stmt.execute(params![id, DEAD, None::<i64>, now, error, PENDING])?
            }
        };
        Ok(())
    })
}

/// A page of calls, optionally in one state, oldest first, and how many
/// calls are in that state in all; one snapshot.
pub(super) fn page(
    store: &Store,
    state: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Page<OutboxCall>, LedgerError> {
    store.read(|c| {
        let total: i64 = c
            .prepare_cached("SELECT count(*) FROM outbox WHERE (?1 IS NULL OR state = ?1)")?
            .query_row(params![state], |r| r.get(0))?;
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {CALL_COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1) AND id > ?2 ORDER BY id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![state, after, limit], |r| {
            let c = call(r)?;
            let id = c.id;
            Ok((c, id))
        })?;
        let rows = rows.collect::<Result<Vec<_>, _>>()?;
        Ok(Page::of(rows, limit, total))
    })
}

/// A page of calls, optionally in one state, oldest first.
pub(super) fn list(
    store: &Store,
    state: Option<&str>,
    after: i64,
    limit: i64,
) -> Result<Vec<OutboxCall>, LedgerError> {
    store.read(|c| {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {CALL_COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1) AND id > ?2 ORDER BY id LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![state, after, limit], call)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    })
}

/// Puts a dead (or waiting) call back in line for an attempt now, with a
/// fresh attempt budget; journaled as entity `outbox`, event `retry`.
pub(super) fn retry(store: &Store, id: i64, origin: Origin) -> Result<OutboxCall, LedgerError> {
    let calls = store.inner.sync.clone();
    let call = store.write(move |c| {
        let found = load_call(c, id)?.ok_or_else(no_such_call)?;
        if found.state == DELIVERED {
            return Err(LedgerError::StateConflict(
                "outbox call is already delivered".into(),
            ));
        }
        if found.state == ABANDONED {
            return Err(LedgerError::StateConflict(
                "outbox call is abandoned; resync its stock or coupon to send the current state"
                    .into(),
            ));
        }
        let now = origin.now;
        c.prepare_cached(
            "UPDATE outbox SET state = ?3, attempts = 0, next_attempt_ms = ?2 WHERE id = ?1",
        )?
        .execute(params![id, now, PENDING])?;
        let detail = json!({
            "path": found.path, "stock_id": found.stock_id, "coupon_id": found.coupon_id,
            "from_state": found.state, "to_state": PENDING,
            "attempts": found.attempts, "last_error": found.last_error,
        });
        JournalRow::new(Entity::Outbox, &id.to_string(), "retry")
            .seq_id(&found.seq_id)
            .detail(detail)
            .append(c, &origin)?;
        Ok(OutboxCall {
            state: PENDING.into(),
            attempts: 0,
            next_attempt_ms: now,
            ..found
        })
    })?;
    if let Some(s) = calls {
        s.bump();
    }
    Ok(call)
}

/// Gives up on a dead call for good: it becomes `abandoned`, the journal
/// records who, when and why, and the calls behind it in its lane move on.
/// Only a dead call can be abandoned (40905); an unknown id is a 40001.
pub(super) fn abandon(
    store: &Store,
    id: i64,
    reason: &str,
    origin: Origin,
) -> Result<OutboxCall, LedgerError> {
    let reason = abandon_reason(reason)?;
    let calls = store.inner.sync.clone();
    let call = store.write(move |c| abandon_tx(c, id, &reason, &origin))?;
    // The lane is free: let the dispatcher look now.
    if let Some(s) = calls {
        s.bump();
    }
    Ok(call)
}

/// Queues fresh calls carrying the current state of a stock (`/stock/rsync`
/// then `/stock/status/rsync`) or of a coupon (`/coupon/rsync` then
/// `/coupon/status/rsync`), in the same lanes and order as every call.
/// 40401/40402 when unknown, 40905 when sync is disabled.
pub(super) fn resync(
    store: &Store,
    target: ResyncTarget,
    origin: Origin,
) -> Result<Vec<OutboxCall>, LedgerError> {
    let sync = store.inner.sync.clone();
    store.write(move |c| resync_tx(c, sync.as_ref(), &target, &origin))
}

/// Deletes up to `limit` delivered or abandoned calls that became final
/// before `before` (retention). Pending and dead calls are never deleted,
/// and neither is the journal. Answers how many were deleted.
pub(super) fn prune(store: &Store, before: Millis, limit: i64) -> Result<usize, LedgerError> {
    store.write(move |c| prune_tx(c, before, limit))
}

/// Depth and age of the outbox. Cost grows with the calls not yet
/// delivered (and the abandoned ones), not with the whole history: ids are
/// never reused, so the highest id ever given counts every call written.
pub(super) fn health(store: &Store) -> Result<OutboxHealth, LedgerError> {
    store.read(|c| {
        let count = |state: &str| -> Result<i64, LedgerError> {
            Ok(
                c.prepare_cached("SELECT count(*) FROM outbox WHERE state = ?1")?
                    .query_row([state], |r| r.get(0))?,
            )
        };
        let pending = count(PENDING)?;
        let dead = count(DEAD)?;
        let pruned_abandoned: i64 = c
            .prepare_cached("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1")?
            .query_row([PRUNED_ABANDONED], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let abandoned = count(ABANDONED)? + pruned_abandoned;
        let total: i64 = c
            .prepare_cached(
                "SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'outbox'",
            )?
            .query_row([], |r| r.get(0))?;
        let oldest_pending_ms = c
            .prepare_cached("SELECT created_ms FROM outbox WHERE state = ?1 ORDER BY id LIMIT 1")?
            .query_row([PENDING], |r| r.get(0))
            .optional()?;
        // Pending calls held back by a dead call in their lane; only worth
        // counting when something is dead.
        let blocked = if dead == 0 {
            0
        } else {
            c.prepare_cached(
                "SELECT count(*) FROM outbox o WHERE o.state = ?1 AND EXISTS (
                    SELECT 1 FROM outbox d WHERE d.state = ?2 AND d.id < o.id
                      AND (d.lane = o.lane OR (d.coupon_id IS NULL AND d.stock_id = o.stock_id)))",
            )?
            .query_row([PENDING, DEAD], |r| r.get(0))?
        };
        Ok(OutboxHealth {
            pending,
            dead,
            blocked,
            delivered: total - pending - dead - abandoned,
            abandoned,
            oldest_pending_ms,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ledger::OUTBOX_STATES;

    #[test]
    fn the_schema_allows_exactly_the_states_of_the_code() {
        let schema = super::super::schema::SCHEMA;
        let allowed = schema
            .split("state           TEXT NOT NULL CHECK (")
            .nth(1)
            .and_then(|rest| rest.split("),").next())
            .expect("the outbox's state CHECK");
        let mut words: Vec<&str> = allowed
            .split(" OR ")
            .map(|w| w.trim().trim_start_matches("state = ").trim_matches('\''))
            .collect();
        words.sort_unstable();
        let mut ours = OUTBOX_STATES.to_vec();
        ours.sort_unstable();
        assert_eq!(words, ours);
    }

    #[test]
    fn due_calls_are_found_through_the_partial_indexes_on_open_calls() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::SCHEMA).unwrap();
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", ready_sql()))
            .unwrap();
        let plan: Vec<String> = stmt
            .query_map(params![0, 10], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        for index in ["outbox_open_lane", "outbox_open_stock"] {
            assert!(plan.contains(index), "{index} unused:\n{plan}");
        }
    }
}

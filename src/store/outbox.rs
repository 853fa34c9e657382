//! The outbox table (SPEC §7): calls written with the changes that cause them,
//! and the bookkeeping of their delivery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use super::Store;
use crate::domain::coupon::random_hex;
use crate::domain::ledger::{Origin, OutboxCall, OutboxHealth, Source, SyncEvent};
use crate::domain::time::Millis;
use crate::domain::LedgerError;

/// Renders an event as the platform call it causes (the path and the business
/// fields), and counts the calls written so the dispatcher knows when to look.
pub struct SyncSink {
    render: RenderFn,
    written: AtomicU64,
}

type RenderFn = Box<dyn Fn(&SyncEvent) -> (&'static str, Value) + Send + Sync>;

impl SyncSink {
    /// A sink around a renderer.
    pub fn new(
        render: impl Fn(&SyncEvent) -> (&'static str, Value) + Send + Sync + 'static,
    ) -> SyncRenderer {
        Arc::new(SyncSink {
            render: Box::new(render),
            written: AtomicU64::new(0),
        })
    }

    fn bump(&self) {
        self.written.fetch_add(1, Ordering::SeqCst);
    }
}

/// The store's handle on the outbox renderer.
pub type SyncRenderer = Arc<SyncSink>;

const CALL_COLUMNS: &str = "id, seq_id, path, body, stock_id, coupon_id, state, attempts, \
    next_attempt_ms, created_ms, delivered_ms, last_error";

fn call(row: &Row) -> rusqlite::Result<OutboxCall> {
    Ok(OutboxCall {
        id: row.get(0)?,
        seq_id: row.get(1)?,
        path: row.get(2)?,
        body: row.get(3)?,
        stock_id: row.get(4)?,
        coupon_id: row.get(5)?,
        state: row.get(6)?,
        attempts: row.get(7)?,
        next_attempt_ms: row.get(8)?,
        created_ms: row.get(9)?,
        delivered_ms: row.get(10)?,
        last_error: row.get(11)?,
    })
}

/// Writes the call an event causes, in the caller's transaction. Changes the
/// platform itself asked for are not echoed back; without a `[platform]` there
/// is nothing to write (the journal still has the change).
pub fn enqueue(
    conn: &Connection,
    sync: Option<&SyncRenderer>,
    event: &SyncEvent,
    origin: &Origin,
) -> Result<(), LedgerError> {
    let Some(sink) = sync else { return Ok(()) };
    if origin.source == Source::Platform {
        return Ok(());
    }
    let (path, body) = (sink.render)(event);
    let lane = match event.coupon_id() {
        Some(c) => format!("coupon:{c}"),
        None => format!("stock:{}", event.stock_id()),
    };
    let seq_id = format!("sp-{}", random_hex(16).map_err(LedgerError::Internal)?);
    conn.prepare_cached(
        "INSERT INTO outbox (seq_id, path, body, lane, stock_id, coupon_id, state, next_attempt_ms, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?7)",
    )?
    .execute(params![
        seq_id,
        path,
        body.to_string(),
        lane,
        event.stock_id(),
        event.coupon_id(),
        origin.now
    ])?;
    // Counted before the commit: a rolled-back call only costs the dispatcher one look.
    sink.bump();
    Ok(())
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

impl Store {
    /// How many calls have been written (or put back in line) since start; the
    /// dispatcher looks for work when this moves.
    pub fn outbox_writes(&self) -> u64 {
        self.inner
            .sync
            .as_ref()
            .map_or(0, |s| s.written.load(Ordering::SeqCst))
    }

    /// Calls due by `now` that head their lane (nothing older about the same
    /// coupon or stock is undelivered), oldest first, skipping `in_flight`.
    pub fn outbox_ready(
        &self,
        now: Millis,
        in_flight: &[i64],
        limit: usize,
    ) -> Result<Vec<OutboxCall>, LedgerError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CALL_COLUMNS} FROM outbox o
                 WHERE o.state = 'pending' AND o.next_attempt_ms <= ?1
                   AND NOT EXISTS (SELECT 1 FROM outbox p
                                   WHERE p.lane = o.lane AND p.id < o.id AND p.state <> 'delivered')
                   AND NOT EXISTS (SELECT 1 FROM outbox p
                                   WHERE p.stock_id = o.stock_id AND p.coupon_id IS NULL
                                     AND p.id < o.id AND p.state <> 'delivered')
                 ORDER BY o.id LIMIT ?2"
            ))?;
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
    pub fn outbox_record(&self, id: i64, attempt: Attempt, now: Millis) -> Result<(), LedgerError> {
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, state = ?2, delivered_ms = ?3,
                    next_attempt_ms = ?4, last_error = ?5
                 WHERE id = ?1 AND state = 'pending'",
            )?;
            match attempt {
                Attempt::Delivered => {
                    stmt.execute(params![id, "delivered", now, now, None::<String>])?
                }
                Attempt::Retry { error, at } => {
                    stmt.execute(params![id, "pending", None::<i64>, at, error])?
                }
                Attempt::Dead { error } => {
                    stmt.execute(params![id, "dead", None::<i64>, now, error])?
                }
            };
            Ok(())
        })
    }

    /// A page of calls, optionally in one state, oldest first.
    pub fn outbox_list(
        &self,
        state: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<OutboxCall>, LedgerError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {CALL_COLUMNS} FROM outbox WHERE (?1 IS NULL OR state = ?1) AND id > ?2 ORDER BY id LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![state, after, limit], call)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Puts a dead (or waiting) call back in line for an attempt now, with a fresh attempt budget.
    pub fn outbox_retry(&self, id: i64, now: Millis) -> Result<OutboxCall, LedgerError> {
        let sink = self.inner.sync.clone();
        let call = self.write(move |c| {
            let found = c
                .prepare_cached(&format!("SELECT {CALL_COLUMNS} FROM outbox WHERE id = ?1"))?
                .query_row([id], call)
                .optional()?
                .ok_or_else(|| LedgerError::invalid("id", "no outbox call has this id"))?;
            if found.state == "delivered" {
                return Err(LedgerError::StateConflict("outbox call is already delivered".into()));
            }
            c.prepare_cached(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_ms = ?2 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            Ok(OutboxCall {
                state: "pending".into(),
                attempts: 0,
                next_attempt_ms: now,
                ..found
            })
        })?;
        if let Some(s) = sink {
            s.bump();
        }
        Ok(call)
    }

    /// Depth and age of the outbox. Cost grows with the calls not yet
    /// delivered, not with the whole history (ids are never reused or deleted).
    pub fn outbox_health(&self) -> Result<OutboxHealth, LedgerError> {
        self.read(|c| {
            let count = |state: &str| -> Result<i64, LedgerError> {
                Ok(
                    c.prepare_cached("SELECT count(*) FROM outbox WHERE state = ?1")?
                        .query_row([state], |r| r.get(0))?,
                )
            };
            let pending = count("pending")?;
            let dead = count("dead")?;
            let total: i64 = c
                .prepare_cached("SELECT coalesce(max(id), 0) FROM outbox")?
                .query_row([], |r| r.get(0))?;
            let oldest_pending_ms = c
                .prepare_cached(
                    "SELECT created_ms FROM outbox WHERE state = 'pending' ORDER BY id LIMIT 1",
                )?
                .query_row([], |r| r.get(0))
                .optional()?;
            // Pending calls held back by a dead call in their lane; only worth
            // counting when something is dead.
            let blocked = if dead == 0 {
                0
            } else {
                c.prepare_cached(
                    "SELECT count(*) FROM outbox o WHERE o.state = 'pending' AND EXISTS (
                        SELECT 1 FROM outbox d WHERE d.state = 'dead' AND d.id < o.id
                          AND (d.lane = o.lane OR (d.coupon_id IS NULL AND d.stock_id = o.stock_id)))",
                )?
                .query_row([], |r| r.get(0))?
            };
            Ok(OutboxHealth {
                pending,
                dead,
                blocked,
                delivered: total - pending - dead,
                oldest_pending_ms,
            })
        })
    }
}

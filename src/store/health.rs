//! The writer's own account of its health, and readiness: can a write commit now?
//!
//! The writer records when each batch starts and ends and whether it failed;
//! readiness adds a real write (a heartbeat in `meta`) at most once a second,
//! so a disk that filled up while nothing was written is still noticed, and a
//! disk that has room again is noticed without a restart.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Store;
use crate::domain::time::Millis;
use crate::domain::LedgerError;

/// A commit running longer than this means the writer is stalled.
const STALL_MS: Millis = 5_000;
/// How long a probe may wait for the writer before readiness gives up on it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// A probe's answer is reused for this long.
const PROBE_TTL: Duration = Duration::from_secs(1);
/// `/healthz` reports write errors this recent.
pub const RECENT_ERROR_MS: Millis = 60_000;

/// Kept by the writer thread; read by anyone.
#[derive(Default)]
pub(super) struct WriterHealth {
    /// When the batch under way started; 0 when the writer is idle.
    batch_started_ms: AtomicI64,
    last_commit_ms: AtomicI64,
    last_error_ms: AtomicI64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// The last write failed for a storage reason and none has succeeded since.
    failing: AtomicBool,
    stopped: AtomicBool,
    probe: Mutex<Option<(Instant, Readiness)>>,
}

impl WriterHealth {
    pub(super) fn batch_started(&self, now: Millis) {
        self.batch_started_ms.store(now.max(1), Ordering::SeqCst);
    }

    pub(super) fn batch_ended(&self, now: Millis, error: Option<&LedgerError>) {
        self.batch_started_ms.store(0, Ordering::SeqCst);
        match error {
            None => {
                self.last_commit_ms.store(now, Ordering::SeqCst);
                self.failing.store(false, Ordering::SeqCst);
            }
            Some(e) => self.note_error(now, e),
        }
    }

    /// Records a write that failed because of the storage.
    pub(super) fn note_error(&self, now: Millis, e: &LedgerError) {
        self.last_error_ms.store(now, Ordering::SeqCst);
        self.errors.fetch_add(1, Ordering::SeqCst);
        if matches!(e, LedgerError::StorageUnavailable(_)) {
            self.failing.store(true, Ordering::SeqCst);
        }
        *self.last_error.lock() = Some(e.to_string());
    }

    pub(super) fn stopped(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    pub(super) fn status(&self, now: Millis) -> WriterStatus {
        let started = self.batch_started_ms.load(Ordering::SeqCst);
        let last_error_ms = self.last_error_ms.load(Ordering::SeqCst);
        WriterStatus {
            stopped: self.stopped.load(Ordering::SeqCst),
            stalled_for_ms: (started > 0 && now - started > STALL_MS).then_some(now - started),
            failing: self.failing.load(Ordering::SeqCst),
            errors: self.errors.load(Ordering::SeqCst),
            recent_error: (last_error_ms > 0 && now - last_error_ms <= RECENT_ERROR_MS)
                .then(|| self.last_error.lock().clone().unwrap_or_default()),
            last_commit_ms: Some(self.last_commit_ms.load(Ordering::SeqCst)).filter(|&t| t > 0),
        }
    }
}

/// A snapshot of the writer's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterStatus {
    /// The writer thread has ended.
    pub stopped: bool,
    /// A commit has been under way this long (only past the stall limit).
    pub stalled_for_ms: Option<Millis>,
    /// The last write failed for a storage reason and none has succeeded since.
    pub failing: bool,
    /// Writes failed since start.
    pub errors: u64,
    /// The last write error, when it happened within the last minute.
    pub recent_error: Option<String>,
    pub last_commit_ms: Option<Millis>,
}

/// Whether a write can commit now, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// `reason` is one line for operators: "disk full ...", "writer stalled ...".
    NotReady {
        reason: String,
    },
}

/// The smallest real write: proves that a transaction can commit now.
pub(super) fn heartbeat(conn: &rusqlite::Connection) -> Result<(), LedgerError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('heartbeat_ms', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([crate::domain::time::now_ms().to_string()])?;
    Ok(())
}

pub(super) fn readiness(store: &Store) -> Readiness {
    let health = &store.inner.writer.health;
    let status = health.status(crate::domain::time::now_ms());
    if status.stopped {
        return Readiness::NotReady {
            reason: "writer stopped".into(),
        };
    }
    if let Some(ms) = status.stalled_for_ms {
        return Readiness::NotReady {
            reason: format!("writer stalled: a commit has been under way for {} ms", ms),
        };
    }
    let mut cached = health.probe.lock();
    if let Some((at, answer)) = cached.as_ref() {
        if at.elapsed() < PROBE_TTL {
            return answer.clone();
        }
    }
    let answer = match store.write_within(PROBE_TIMEOUT, heartbeat) {
        Ok(()) => Readiness::Ready,
        Err(LedgerError::StorageUnavailable(why)) => Readiness::NotReady { reason: why },
        Err(e) => Readiness::NotReady {
            reason: e.to_string(),
        },
    };
    *cached = Some((Instant::now(), answer.clone()));
    answer
}

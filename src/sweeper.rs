//! The expiry sweeper (docs/protocol.md, sync to the platform): every `sweep_interval_s`, coupons still
//! available after their window become expired, in bounded batches, each its
//! own short transaction so claims queue behind one batch at most. The same
//! pass deletes sync calls that were delivered or abandoned longer ago than
//! `outbox_retention_days` (outbox retention), also in bounded batches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::domain::ledger::{Origin, Source};
use crate::domain::time::{now_ms, Millis};
use crate::domain::LedgerError;
use crate::store::Store;

/// Expires every coupon due now, `batch` at a time. Returns how many it expired.
pub fn sweep(store: &Store, batch: i64) -> Result<usize, LedgerError> {
    sweep_by(store, batch, now_ms)
}

/// [`sweep`] with the time of each batch from `clock`: the bench sweeps
/// coupons it filled a moment ago by reading the clock a few days ahead.
pub fn sweep_by(
    store: &Store,
    batch: i64,
    clock: impl Fn() -> Millis,
) -> Result<usize, LedgerError> {
    let mut total = 0;
    loop {
        let origin = Origin {
            source: Source::Sweeper,
            seq_id: None,
            now: clock(),
            operator: None,
        };
        let n = store.expire_due(batch, origin)?;
        total += n;
        if (n as i64) < batch {
            return Ok(total);
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// Outbox retention, one step: deletes every delivered or abandoned call that
/// became final more than `retention_days` before `now`, `batch` per
/// transaction. Pending and dead calls stay, and the journal is never pruned.
/// Returns how many calls it deleted. Public so tests drive it with any `now`.
pub fn prune_outbox(
    store: &Store,
    now: Millis,
    retention_days: i64,
    batch: i64,
) -> Result<usize, LedgerError> {
    let before = now.saturating_sub(retention_days.max(1).saturating_mul(DAY_MS));
    let batch = batch.max(1);
    let mut total = 0;
    loop {
        let n = store.outbox_prune(before, batch)?;
        total += n;
        if (n as i64) < batch {
            return Ok(total);
        }
    }
}

/// What the sweeper thread has done since it started, for `/metrics`.
#[derive(Debug, Default)]
pub struct SweepStats {
    /// Passes run (expiry and retention).
    pub runs: AtomicU64,
    /// Coupons expired.
    pub expired: AtomicU64,
    /// Final sync calls deleted by retention.
    pub pruned: AtomicU64,
    /// Passes that ended with an error (logged at warn).
    pub errors: AtomicU64,
}

impl SweepStats {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The running sweeper thread.
pub struct Sweeper {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<SweepStats>,
}

impl Sweeper {
    /// Sweeps now and then every `interval`; no outbox retention.
    pub fn start(store: Store, interval: Duration, batch: i64) -> Result<Sweeper, String> {
        Self::start_with_retention(store, interval, batch, None)
    }

    /// Sweeps now and then every `interval`, and with `Some(days)` also deletes
    /// the delivered and abandoned sync calls older than that.
    pub fn start_with_retention(
        store: Store,
        interval: Duration,
        batch: i64,
        outbox_retention_days: Option<i64>,
    ) -> Result<Sweeper, String> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s = stop.clone();
        let stats = Arc::new(SweepStats::default());
        let counts = stats.clone();
        let thread = thread::Builder::new()
            .name("sweeper".into())
            .spawn(move || {
                let (lock, cv) = &*s;
                loop {
                    let started = Instant::now();
                    match sweep(&store, batch) {
                        Ok(0) => {}
                        Ok(n) => {
                            SweepStats::add(&counts.expired, n);
                            log::info!("sweeper: expired {n} coupons")
                        }
                        Err(e) => {
                            SweepStats::add(&counts.errors, 1);
                            log::warn!("sweeper: {e}")
                        }
                    }
                    if let Some(days) = outbox_retention_days {
                        match prune_outbox(&store, now_ms(), days, batch) {
                            Ok(0) => {}
                            Ok(n) => {
                                SweepStats::add(&counts.pruned, n);
                                log::info!("sweeper: pruned {n} old sync calls")
                            }
                            Err(e) => {
                                SweepStats::add(&counts.errors, 1);
                                log::warn!("sweeper: outbox retention: {e}")
                            }
                        }
                    }
                    SweepStats::add(&counts.runs, 1);
                    let mut stopped = lock.lock();
                    let wait = interval.saturating_sub(started.elapsed());
                    if !*stopped {
                        cv.wait_for(&mut stopped, wait);
                    }
                    if *stopped {
                        return;
                    }
                }
            })
            .map_err(|e| format!("cannot start the sweeper: {e}"))?;
        Ok(Sweeper {
            stop,
            thread: Some(thread),
            stats,
        })
    }

    /// The thread's counters, shared: they keep counting while it runs.
    pub fn stats(&self) -> Arc<SweepStats> {
        self.stats.clone()
    }

    /// Stops the sweeper after the batch in hand.
    pub fn stop(mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock() = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

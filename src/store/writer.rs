//! The single writer: one thread owns the only write connection and runs
//! write jobs in `BEGIN IMMEDIATE` transactions, grouping the jobs that queue
//! up while a commit is in flight into one transaction (group commit) with a
//! savepoint per job, so one job's refusal never undoes another's work. A
//! caller is answered only after the commit that holds its work has returned.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::Connection;

use super::health;
use super::nonces::{self, NonceUse};
use crate::domain::time::{now_ms, Millis};
use crate::domain::LedgerError;

/// Most jobs folded into one transaction, unless the store's options say otherwise.
pub const DEFAULT_MAX_BATCH: usize = 512;
/// Jobs waiting for the writer before callers block.
pub(super) const QUEUE_DEPTH: usize = 8192;

/// The answer to one write job, handed back once its commit is known.
type Reply = Box<dyn FnOnce(Result<(), LedgerError>) + Send>;

/// What must stay when a job is refused (its nonce): run again after the
/// job's savepoint is rolled back, in the same transaction.
type Redo = Box<dyn FnOnce(&Connection) -> Result<(), LedgerError> + Send>;

/// Runs inside the shared transaction and says whether its savepoint is kept,
/// with its reply and, for a refused job, what to redo.
type Run = Box<dyn FnOnce(&Connection) -> (bool, Reply, Option<Redo>) + Send>;

/// One unit of work for the writer.
pub(super) struct Job {
    run: Run,
    /// Answers the caller when the job cannot run at all (no transaction).
    fail: Box<dyn FnOnce(LedgerError) + Send>,
}

/// What the writer thread shares with the store's handles. It holds no
/// sender of the job queue, so the writer ends when the last handle drops,
/// after running every job already queued.
#[derive(Default)]
pub(super) struct WriterShared {
    pub batch_sizes: Mutex<BatchStats>,
    pub health: health::WriterHealth,
}

/// How many jobs the writer has folded into each commit, shown in `/healthz`
/// and, as a histogram, in `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchStats {
    pub commits: u64,
    pub jobs: u64,
    pub largest: u64,
    /// Commits by batch size: `buckets[i]` counts the commits of more than
    /// `BATCH_SIZE_BOUNDS[i - 1]` and at most `BATCH_SIZE_BOUNDS[i]` jobs (not cumulative).
    pub buckets: [u64; BATCH_SIZE_BOUNDS.len()],
}

/// Upper bounds of the batch-size buckets; the last one is the largest
/// `write_batch_max`, so every commit falls in one.
pub const BATCH_SIZE_BOUNDS: [u64; 13] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

impl BatchStats {
    /// Counts one commit of `n` jobs. Called by the writer thread under the
    /// lock it already takes once per commit, so it costs a claim nothing.
    fn record(&mut self, n: u64) {
        self.commits += 1;
        self.jobs += n;
        self.largest = self.largest.max(n);
        let i = BATCH_SIZE_BOUNDS.partition_point(|&b| b < n);
        if let Some(c) = self.buckets.get_mut(i.min(BATCH_SIZE_BOUNDS.len() - 1)) {
            *c += 1;
        }
    }
}

/// Queues `f` for the writer; the receiver gets its outcome after the commit.
pub(super) fn submit<T, F>(
    jobs: &SyncSender<Job>,
    f: F,
) -> Result<Receiver<Result<T, LedgerError>>, LedgerError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
{
    submit_job(jobs, move |conn| (f(conn), None))
}

/// Like [`submit`], first recording `nonce` (40104 if already seen) in the
/// job's own savepoint. The nonce stays recorded even when `f` refuses the
/// request: after the refused work is rolled back, the nonce is written again.
pub(super) fn submit_once<T, F>(
    jobs: &SyncSender<Job>,
    nonce: NonceUse,
    f: F,
) -> Result<Receiver<Result<T, LedgerError>>, LedgerError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
{
    submit_job(jobs, move |conn| {
        if let Err(e) = nonces::record(conn, &nonce) {
            return (Err(e), None);
        }
        match f(conn) {
            Ok(v) => (Ok(v), None),
            Err(e) => {
                let redo: Redo = Box::new(move |c| nonces::record(c, &nonce));
                (Err(e), Some(redo))
            }
        }
    })
}

fn submit_job<T, F>(
    jobs: &SyncSender<Job>,
    f: F,
) -> Result<Receiver<Result<T, LedgerError>>, LedgerError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> (Result<T, LedgerError>, Option<Redo>) + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel::<Result<T, LedgerError>>(1);
    let fail_tx = tx.clone();
    let job = Job {
        run: Box::new(move |conn| {
            let (result, redo) = f(conn);
            let keep = result.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let _ = tx.send(commit.and(result));
            });
            (keep, reply, redo)
        }),
        fail: Box::new(move |e| {
            let _ = fail_tx.send(Err(e));
        }),
    };
    jobs.send(job)
        .map_err(|_| LedgerError::StorageUnavailable("the writer has stopped".into()))?;
    Ok(rx)
}

/// Waits for a submitted job's outcome, at most `timeout` when given.
pub(super) fn wait<T>(
    rx: Receiver<Result<T, LedgerError>>,
    timeout: Option<Duration>,
) -> Result<T, LedgerError> {
    match timeout {
        None => rx
            .recv()
            .map_err(|_| LedgerError::StorageUnavailable("the writer dropped a job".into()))?,
        Some(t) => rx.recv_timeout(t).map_err(|e| match e {
            RecvTimeoutError::Timeout => LedgerError::StorageUnavailable(format!(
                "writer stalled: no commit within {} ms",
                t.as_millis()
            )),
            RecvTimeoutError::Disconnected => {
                LedgerError::StorageUnavailable("the writer dropped a job".into())
            }
        })?,
    }
}

pub(super) fn writer_loop(
    conn: Connection,
    rx: Receiver<Job>,
    shared: &WriterShared,
    keep_nonces_ms: Millis,
    max_batch: usize,
) {
    let mut last_purge = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut committed_since_checkpoint = false;
    loop {
        // The checkpoint runs here, after the last batch's callers were
        // answered and before the next batch starts: never inside a commit a
        // caller waits for. A full PASSIVE checkpoint lets the next write
        // transaction restart the WAL from its beginning, so it stays small.
        if committed_since_checkpoint && last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            checkpoint(&conn);
            last_checkpoint = Instant::now();
            committed_since_checkpoint = false;
        }
        let wait = if committed_since_checkpoint {
            CHECKPOINT_EVERY
        } else {
            Duration::from_secs(5)
        };
        let first = match rx.recv_timeout(wait) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if last_purge.elapsed() > Duration::from_secs(30) {
            last_purge = Instant::now();
            nonces::purge(&conn, now_ms() - keep_nonces_ms);
        }
        let Some(first) = first else { continue };
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let health = &shared.health;
        health.batch_started(now_ms());
        // Counted before the batch's callers are answered, so that a caller
        // who reads the figures right after its answer sees its own commit.
        shared.batch_sizes.lock().record(n);
        let outcome = run_batch(&conn, batch);
        health.batch_ended(now_ms(), outcome.as_ref().err());
        committed_since_checkpoint = true;
    }
}

/// How often, at most, the writer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// A PASSIVE checkpoint (it never waits for a reader); a failure is only
/// logged: the WAL keeps every committed frame until the next one succeeds.
fn checkpoint(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        log::warn!("checkpoint failed (the next one retries): {e}");
    }
}

/// Runs one statement of the writer's own bookkeeping, prepared once and
/// cached: these run several times per job, so they are not parsed each time.
pub(super) fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Rolls back what is left of a batch and answers every job so far with
/// `why`; jobs not yet run are answered with it too.
fn abandon(
    conn: &Connection,
    replies: Vec<Reply>,
    rest: impl Iterator<Item = Job>,
    why: LedgerError,
) -> Result<(), LedgerError> {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    replies.into_iter().for_each(|r| r(Err(why.clone())));
    rest.for_each(|job| (job.fail)(why.clone()));
    Err(why)
}

/// Runs a batch of jobs in one transaction, each in its own savepoint, then
/// answers every job with the commit's outcome. `Err` when the batch as a
/// whole failed (for the writer's health), with what its callers were told.
fn run_batch(conn: &Connection, batch: Vec<Job>) -> Result<(), LedgerError> {
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        log::error!("cannot begin a write transaction: {e}");
        return abandon(conn, replies, jobs, LedgerError::from(e));
    }
    while let Some(job) = jobs.next() {
        if let Err(e) = run(conn, "SAVEPOINT job") {
            log::error!("cannot open a savepoint, the batch is rolled back: {e}");
            let why = LedgerError::from(e);
            (job.fail)(why.clone());
            return abandon(conn, replies, jobs, why);
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(conn)));
        let (keep, redo) = match ran {
            Ok((keep, reply, redo)) => {
                replies.push(reply);
                (keep, redo)
            }
            Err(_) => {
                log::error!("a write job panicked; its work is rolled back");
                (false, None)
            }
        };
        let end: Result<(), LedgerError> = if keep {
            run(conn, "RELEASE job").map_err(LedgerError::from)
        } else {
            run(conn, "ROLLBACK TO job")
                .map_err(LedgerError::from)
                .and_then(|_| redo.map_or(Ok(()), |redo| redo(conn)))
                .and_then(|_| run(conn, "RELEASE job").map_err(LedgerError::from))
        };
        // A savepoint that cannot be closed, or an error that made SQLite roll
        // back the whole transaction (disk full, I/O error), poisons the batch:
        // nothing in it may be committed or acknowledged.
        if let Err(e) = end {
            log::error!("cannot close a savepoint, the batch is rolled back: {e}");
            return abandon(conn, replies, jobs, e);
        }
        if conn.is_autocommit() {
            log::error!("the write transaction was rolled back by SQLite; the batch fails");
            return abandon(
                conn,
                replies,
                jobs,
                LedgerError::StorageUnavailable("the write transaction was rolled back".into()),
            );
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            replies.into_iter().for_each(|r| r(Ok(())));
            Ok(())
        }
        Err(e) => {
            log::error!(
                "commit failed, {} jobs answered with an error: {e}",
                replies.len()
            );
            abandon(conn, replies, std::iter::empty(), LedgerError::from(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_commit_falls_in_the_smallest_bucket_that_holds_it() {
        let mut s = BatchStats::default();
        for n in [1, 2, 3, 4, 5, 512, 513, 4096] {
            s.record(n);
        }
        assert_eq!(s.commits, 8);
        assert_eq!(s.jobs, 1 + 2 + 3 + 4 + 5 + 512 + 513 + 4096);
        assert_eq!(s.largest, 4096);
        // bounds 1, 2, 4, 8, ..., 512, 1024, 2048, 4096
        assert_eq!(&s.buckets[..4], &[1, 1, 2, 1]);
        assert_eq!(s.buckets[9], 1);
        assert_eq!(s.buckets[10], 1);
        assert_eq!(s.buckets[12], 1);
        assert_eq!(s.buckets.iter().sum::<u64>(), 8);
    }
}

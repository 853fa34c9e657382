//! The single writer: one thread owns the only write connection and runs
//! write jobs in `BEGIN IMMEDIATE` transactions, grouping the jobs that queue
//! up while a commit is in flight into one transaction (group commit). A
//! caller is answered only after the commit that holds its work has returned.
//!
//! One job's refusal never undoes another's work. Almost every refusal is
//! found before the job writes anything (its checks run first, and a
//! statement the schema refuses undoes itself), so a batch first runs with no
//! savepoints at all. Only when a job refuses after it has written (the
//! connection's change count moved) is the batch rolled back and run again
//! from the start with a savepoint around each job, so that job's work alone
//! is undone. Savepoints cost every job a sub-journal copy of each page it
//! touches; this way only the rare batch pays for them.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;

use super::health;
use super::nonces::{NonceUse, Seen};
use crate::domain::time::now_ms;
use crate::domain::LedgerError;

/// Most jobs folded into one transaction, unless the store's options say otherwise.
pub const DEFAULT_MAX_BATCH: usize = 512;
/// Jobs waiting for the writer before callers block.
pub(super) const QUEUE_DEPTH: usize = 8192;

/// The answer to one write job, handed back once its commit is known.
type Reply = Box<dyn FnOnce(Result<(), LedgerError>) + Send>;

/// What one run of a job left: its caller's answer, and whether it refused.
struct Ran {
    reply: Reply,
    refused: bool,
}

/// Runs a job inside the shared transaction. It may run twice: a batch that
/// is started over runs each of its jobs again.
type Run = Box<dyn Fn(&Connection) -> Ran + Send>;

/// One unit of work for the writer.
pub(super) struct Job {
    /// Recorded before the job runs; a reused one refuses the job unrun. It
    /// stays recorded when the job refuses (it sits outside the job's savepoint).
    nonce: Option<NonceUse>,
    run: Run,
    /// The answer to a job refused without running: its nonce was reused,
    /// it panicked, or its transaction could not go on.
    refuse: Box<dyn Fn(LedgerError) -> Reply + Send>,
}

/// What the writer thread shares with the store's handles. It holds no
/// sender of the job queue, so the writer ends when the last handle drops,
/// after running every job already queued.
#[derive(Default)]
pub(super) struct WriterShared {
    pub batch_sizes: Mutex<BatchStats>,
    pub health: health::WriterHealth,
    /// Set when the writer has ended, for the background checkpointer.
    ended: Mutex<bool>,
    ended_cv: Condvar,
    /// Set when the writer and the checkpointer have closed their connections.
    closed: Mutex<bool>,
    closed_cv: Condvar,
}

impl WriterShared {
    /// Tells the background checkpointer that the writer has ended.
    pub fn end(&self) {
        *self.ended.lock() = true;
        self.ended_cv.notify_all();
    }

    /// Says that every connection of the writer's side is closed.
    pub fn close(&self) {
        *self.closed.lock() = true;
        self.closed_cv.notify_all();
    }

    /// Waits at most `timeout` for [`WriterShared::close`]; true when it came.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let mut closed = self.closed.lock();
        if !*closed {
            self.closed_cv.wait_for(&mut closed, timeout);
        }
        *closed
    }
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
    /// Batches timed: each is counted once the writer is done with it.
    pub timed: u64,
    /// Their time in all, in microseconds.
    pub timed_micros: u64,
    /// Batches by time: `durations[i]` counts those that took more than
    /// `BATCH_SECONDS_BOUNDS[i - 1]` and at most `BATCH_SECONDS_BOUNDS[i]`
    /// seconds; the last, longer than every bound (not cumulative).
    pub durations: [u64; BATCH_SECONDS_BOUNDS.len() + 1],
}

/// Upper bounds, in seconds, of the batch-time buckets: from a tenth of a
/// millisecond (a small batch on a fast disk) to a second (a stalled disk).
pub const BATCH_SECONDS_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

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

    /// Counts the time the writer spent on one batch.
    fn time(&mut self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.timed += 1;
        self.timed_micros = self.timed_micros.saturating_add(micros);
        let i = BATCH_SECONDS_BOUNDS.partition_point(|&b| b < took.as_secs_f64());
        if let Some(c) = self.durations.get_mut(i) {
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
    F: Fn(&Connection) -> Result<T, LedgerError> + Send + 'static,
{
    submit_job(jobs, None, f)
}

/// Like [`submit`], first recording `nonce` (40104 if already seen) in the
/// same transaction. The nonce stays recorded even when `f` refuses the request.
pub(super) fn submit_once<T, F>(
    jobs: &SyncSender<Job>,
    nonce: NonceUse,
    f: F,
) -> Result<Receiver<Result<T, LedgerError>>, LedgerError>
where
    T: Send + 'static,
    F: Fn(&Connection) -> Result<T, LedgerError> + Send + 'static,
{
    submit_job(jobs, Some(nonce), f)
}

fn submit_job<T, F>(
    jobs: &SyncSender<Job>,
    nonce: Option<NonceUse>,
    f: F,
) -> Result<Receiver<Result<T, LedgerError>>, LedgerError>
where
    T: Send + 'static,
    F: Fn(&Connection) -> Result<T, LedgerError> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel::<Result<T, LedgerError>>(1);
    let refuse_tx = tx.clone();
    let job = Job {
        nonce,
        run: Box::new(move |conn| {
            let result = f(conn);
            let refused = result.is_err();
            let tx = tx.clone();
            Ran {
                reply: Box::new(move |commit| {
                    let _ = tx.send(commit.and(result));
                }),
                refused,
            }
        }),
        refuse: Box::new(move |why| {
            let tx = refuse_tx.clone();
            Box::new(move |commit| {
                let _ = tx.send(commit.and(Err(why)));
            })
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
    mut seen: Seen,
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
        // Every second, so that each purge deletes a second's worth of
        // nonces, not a long pause's worth between two batches.
        if last_purge.elapsed() >= Duration::from_secs(1) {
            last_purge = Instant::now();
            seen.purge(&conn, now_ms());
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
        let started = Instant::now();
        let outcome = run_batch(&conn, batch, &mut seen);
        shared.batch_sizes.lock().time(started.elapsed());
        health.batch_ended(now_ms(), outcome.as_ref().err());
        committed_since_checkpoint = true;
    }
}

/// How often, at most, the writer checkpoints: so that the WAL can start
/// over from its beginning, and stays small.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// How long the background checkpointer waits after each pass.
const BACKGROUND_CHECKPOINT_PAUSE: Duration = Duration::from_millis(50);

/// The background checkpointer: on its own connection and thread, it keeps
/// copying committed WAL frames into the database while the writer goes on.
/// The writer's own checkpoint between batches (which lets the next write
/// transaction restart the WAL) then finds little left to copy. Before it,
/// the writer stalled about 55 ms every 250 ms under a sweep of a million
/// coupons, and claims waited that long.
pub(super) fn checkpointer_loop(conn: Connection, shared: &WriterShared) {
    let mut seen = 0;
    loop {
        // A pause after every pass, so that a stream of small commits does
        // not turn into a stream of passes, each with its own fsync.
        {
            let mut ended = shared.ended.lock();
            if !*ended {
                shared
                    .ended_cv
                    .wait_for(&mut ended, BACKGROUND_CHECKPOINT_PAUSE);
            }
            if *ended {
                return;
            }
        }
        let commits = shared.batch_sizes.lock().commits;
        if commits == seen {
            continue;
        }
        seen = commits;
        // Busy when the writer's own checkpoint holds the lock: nothing to do then.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            log::debug!("background checkpoint: {e}");
        }
    }
}

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

/// Rolls back what is left of a batch (its nonces with it) and answers every
/// job so far with `why`; jobs not yet run are answered with it too.
fn abandon(
    conn: &Connection,
    seen: &mut Seen,
    replies: Vec<Reply>,
    rest: &[Job],
    why: LedgerError,
) -> Result<(), LedgerError> {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    seen.rolled_back();
    replies.into_iter().for_each(|r| r(Err(why.clone())));
    rest.iter()
        .for_each(|job| (job.refuse)(why.clone())(Ok(())));
    Err(why)
}

/// How one run through a batch's jobs ended.
enum Attempt {
    /// Every job ran; their replies wait for the commit.
    Ran(Vec<Reply>),
    /// A job refused after writing, with no savepoint to undo its work alone:
    /// the batch must start over with a savepoint per job.
    StartOver,
    /// The transaction cannot go on: why, the replies so far, and how many jobs ran.
    Broken(LedgerError, Vec<Reply>, usize),
}

/// Runs a batch of jobs in one transaction, then answers every job with the
/// commit's outcome. `Err` when the batch as a whole failed (for the
/// writer's health), with what its callers were told.
fn run_batch(conn: &Connection, batch: Vec<Job>, seen: &mut Seen) -> Result<(), LedgerError> {
    let mut attempt = run_jobs(conn, &batch, false, seen);
    if let Attempt::StartOver = attempt {
        seen.rolled_back();
        attempt = match conn.execute_batch("ROLLBACK") {
            Ok(()) => run_jobs(conn, &batch, true, seen),
            Err(e) => Attempt::Broken(LedgerError::from(e), Vec::new(), 0),
        };
    }
    let replies = match attempt {
        Attempt::Ran(replies) => replies,
        Attempt::Broken(why, replies, ran) => {
            return abandon(
                conn,
                seen,
                replies,
                batch.get(ran..).unwrap_or_default(),
                why,
            )
        }
        Attempt::StartOver => {
            // Cannot happen: with savepoints every job's work can be undone.
            let why = LedgerError::Internal("a batch could not be run with savepoints".into());
            return abandon(conn, seen, Vec::new(), &batch, why);
        }
    };
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            seen.committed();
            replies.into_iter().for_each(|r| r(Ok(())));
            Ok(())
        }
        Err(e) => {
            log::error!(
                "commit failed, {} jobs answered with an error: {e}",
                replies.len()
            );
            abandon(conn, seen, replies, &[], LedgerError::from(e))
        }
    }
}

/// Runs every job of `batch` in a new transaction, each in its own savepoint
/// when `guarded` (its nonce outside it, so a refused job's nonce stays used).
/// Unguarded, the first job that must be undone stops the run.
fn run_jobs(conn: &Connection, batch: &[Job], guarded: bool, seen: &mut Seen) -> Attempt {
    let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        log::error!("cannot begin a write transaction: {e}");
        return Attempt::Broken(LedgerError::from(e), replies, 0);
    }
    let now = now_ms();
    for (i, job) in batch.iter().enumerate() {
        let end = match job.nonce.as_ref().map(|n| seen.record(conn, n, now)) {
            Some(Err(refused)) => {
                replies.push((job.refuse)(refused));
                Ok(())
            }
            _ => {
                let Some(undo) = run_job(conn, job, guarded, &mut replies) else {
                    return Attempt::StartOver;
                };
                undo
            }
        };
        // A savepoint that cannot be closed, or an error that made SQLite roll
        // back the whole transaction (disk full, I/O error), poisons the batch:
        // nothing in it may be committed or acknowledged.
        if let Err(e) = end {
            log::error!("a savepoint failed, the batch is rolled back: {e}");
            return Attempt::Broken(e, replies, i + 1);
        }
        if conn.is_autocommit() {
            log::error!("the write transaction was rolled back by SQLite; the batch fails");
            let why =
                LedgerError::StorageUnavailable("the write transaction was rolled back".into());
            return Attempt::Broken(why, replies, i + 1);
        }
    }
    Attempt::Ran(replies)
}

/// Runs one job, in a savepoint when `guarded`, and queues its reply. `None`
/// when, unguarded, it refused after writing (the batch must start over);
/// otherwise whether its savepoint closed.
fn run_job(
    conn: &Connection,
    job: &Job,
    guarded: bool,
    replies: &mut Vec<Reply>,
) -> Option<Result<(), LedgerError>> {
    if guarded {
        if let Err(e) = run(conn, "SAVEPOINT job") {
            let e = LedgerError::from(e);
            replies.push((job.refuse)(e.clone()));
            return Some(Err(e));
        }
    }
    let before = conn.total_changes();
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(conn)));
    let undo = match ran {
        Ok(Ran { reply, refused }) => {
            replies.push(reply);
            refused && conn.total_changes() != before
        }
        Err(_) => {
            log::error!("a write job panicked; its work is rolled back");
            replies.push((job.refuse)(LedgerError::Internal(
                "the write failed unexpectedly".into(),
            )));
            true
        }
    };
    match (guarded, undo) {
        (false, false) => Some(Ok(())),
        (false, true) => None,
        (true, false) => Some(run(conn, "RELEASE job").map_err(LedgerError::from)),
        (true, true) => Some(
            run(conn, "ROLLBACK TO job")
                .and_then(|_| run(conn, "RELEASE job"))
                .map_err(LedgerError::from),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn ledger() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (k INTEGER PRIMARY KEY);
             CREATE TABLE nonces (seen_ms INTEGER, api_key TEXT, nonce TEXT,
                                  PRIMARY KEY (seen_ms, api_key, nonce)) WITHOUT ROWID;",
        )
        .unwrap();
        conn
    }

    fn rows(conn: &Connection) -> Vec<i64> {
        let mut stmt = conn.prepare("SELECT k FROM t ORDER BY k").unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn nonce(n: &str) -> NonceUse {
        NonceUse {
            api_key: "k".into(),
            nonce: n.into(),
        }
    }

    /// A job that inserts `k`, then refuses when `refuse`; counts its runs.
    fn insert(
        k: i64,
        refuse: bool,
        runs: &Arc<AtomicUsize>,
    ) -> impl Fn(&Connection) -> Result<i64, LedgerError> {
        let runs = runs.clone();
        move |c| {
            runs.fetch_add(1, Ordering::SeqCst);
            c.execute("INSERT INTO t (k) VALUES (?1)", [k])?;
            if refuse {
                return Err(LedgerError::SoldOut);
            }
            Ok(k)
        }
    }

    fn seen(conn: &Connection) -> Seen {
        Seen::load(conn, 605_000, now_ms()).unwrap()
    }

    /// Queues the jobs `make` submits, then runs them as one batch.
    fn batch(conn: &Connection, seen: &mut Seen, make: impl FnOnce(&SyncSender<Job>)) {
        let (tx, rx) = mpsc::sync_channel::<Job>(64);
        make(&tx);
        let jobs: Vec<Job> = rx.try_iter().collect();
        let _ = run_batch(conn, jobs, seen);
    }

    #[test]
    fn a_refusal_that_wrote_starts_the_batch_over_and_undoes_only_its_own_work() {
        let conn = ledger();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut answers = Vec::new();
        batch(&conn, &mut seen(&conn), |q| {
            answers.push(submit(q, insert(1, false, &runs)).unwrap());
            answers.push(submit_once(q, nonce("n2"), insert(2, true, &runs)).unwrap());
            answers.push(submit(q, insert(3, false, &runs)).unwrap());
            answers.push(submit(q, |_| Err::<i64, _>(LedgerError::UserLimit)).unwrap());
        });
        let got: Vec<_> = answers.into_iter().map(|rx| rx.recv().unwrap()).collect();
        assert_eq!(got[0], Ok(1));
        assert_eq!(got[1], Err(LedgerError::SoldOut));
        assert_eq!(got[2], Ok(3));
        assert_eq!(got[3], Err(LedgerError::UserLimit));
        assert_eq!(
            rows(&conn),
            [1, 3],
            "the refused job's row is gone, the others stay"
        );
        let nonces: i64 = conn
            .query_row("SELECT count(*) FROM nonces", [], |r| r.get(0))
            .unwrap();
        assert_eq!(nonces, 1, "the refused job's nonce stays used");
        // Jobs 1 and 2 ran, 2 refused after writing, then 1, 2 and 3 ran again.
        assert_eq!(runs.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn a_refusal_that_wrote_nothing_keeps_its_nonce_without_starting_over() {
        let conn = ledger();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let mut answers = Vec::new();
        batch(&conn, &mut seen(&conn), |q| {
            answers.push(submit(q, insert(1, false, &runs)).unwrap());
            answers.push(
                submit_once(q, nonce("n1"), move |_| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    Err::<i64, _>(LedgerError::SoldOut)
                })
                .unwrap(),
            );
            answers.push(submit_once(q, nonce("n1"), insert(9, false, &runs)).unwrap());
        });
        let got: Vec<_> = answers.into_iter().map(|rx| rx.recv().unwrap()).collect();
        assert_eq!(
            got,
            [
                Ok(1),
                Err(LedgerError::SoldOut),
                Err(LedgerError::NonceReused)
            ]
        );
        assert_eq!(rows(&conn), [1]);
        let nonces: i64 = conn
            .query_row("SELECT count(*) FROM nonces", [], |r| r.get(0))
            .unwrap();
        assert_eq!(nonces, 1);
        assert_eq!(runs.load(Ordering::SeqCst), 2, "each job ran once");
    }

    /// The fast path rests on SQLite's change count: a statement the schema
    /// refuses undoes itself and counts nothing, while rows a trigger writes
    /// count. If a SQLite upgrade changed either, this fails.
    #[test]
    fn the_change_count_sees_trigger_writes_and_not_refused_statements() {
        let conn = ledger();
        conn.execute_batch(
            "CREATE TABLE side (k INTEGER);
             CREATE TRIGGER t_rules BEFORE INSERT ON t WHEN NEW.k < 0
             BEGIN SELECT RAISE(ABORT, 'refused'); END;
             CREATE TRIGGER t_side AFTER INSERT ON t BEGIN INSERT INTO side VALUES (NEW.k); END;
             BEGIN;",
        )
        .unwrap();
        let before = conn.total_changes();
        assert!(conn.execute("INSERT INTO t (k) VALUES (-1)", []).is_err());
        assert_eq!(
            conn.total_changes(),
            before,
            "a refused statement counts nothing"
        );
        conn.execute("INSERT INTO t (k) VALUES (5)", []).unwrap();
        assert_eq!(
            conn.total_changes(),
            before + 2,
            "the trigger's row counts too"
        );
    }

    #[test]
    fn a_panicking_job_is_undone_and_the_rest_of_its_batch_commits() {
        let conn = ledger();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut answers = Vec::new();
        batch(&conn, &mut seen(&conn), |q| {
            answers.push(submit(q, insert(1, false, &runs)).unwrap());
            answers.push(
                submit(q, |c: &Connection| -> Result<i64, LedgerError> {
                    c.execute("INSERT INTO t (k) VALUES (2)", [])?;
                    panic!("a bug in a job")
                })
                .unwrap(),
            );
            answers.push(submit(q, insert(3, false, &runs)).unwrap());
        });
        let mut got = answers.into_iter().map(|rx| rx.recv());
        assert_eq!(got.next(), Some(Ok(Ok(1))));
        assert!(
            matches!(got.next(), Some(Ok(Err(LedgerError::Internal(_))))),
            "the panicking job's caller is answered with an internal error"
        );
        assert_eq!(got.next(), Some(Ok(Ok(3))));
        assert_eq!(rows(&conn), [1, 3]);
    }

    #[test]
    fn a_batch_that_cannot_commit_gives_back_its_nonces() {
        let conn = ledger();
        let mut seen = seen(&conn);
        let mut answers = Vec::new();
        batch(&conn, &mut seen, |q| {
            answers.push(submit_once(q, nonce("n1"), insert(1, false, &Arc::default())).unwrap());
            // As when SQLite rolls the transaction back itself (disk full).
            answers.push(
                submit(q, |c: &Connection| -> Result<i64, LedgerError> {
                    c.execute_batch("ROLLBACK")?;
                    Ok(2)
                })
                .unwrap(),
            );
            answers.push(submit_once(q, nonce("n3"), insert(3, false, &Arc::default())).unwrap());
        });
        for rx in answers {
            assert!(
                matches!(rx.recv(), Ok(Err(LedgerError::StorageUnavailable(_)))),
                "no job of the batch is answered Ok"
            );
        }
        assert_eq!(rows(&conn), Vec::<i64>::new());
        let mut again = Vec::new();
        batch(&conn, &mut seen, |q| {
            again.push(submit_once(q, nonce("n1"), insert(1, false, &Arc::default())).unwrap());
            again.push(submit_once(q, nonce("n3"), insert(3, false, &Arc::default())).unwrap());
        });
        let got: Vec<_> = again.into_iter().map(|rx| rx.recv().unwrap()).collect();
        assert_eq!(got, [Ok(1), Ok(3)], "the retries may use the same nonces");
    }

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

    #[test]
    fn each_batch_time_falls_in_the_smallest_bucket_that_holds_it() {
        let mut s = BatchStats::default();
        for micros in [50, 100, 101, 3_000, 1_000_000, 1_000_001, 60_000_000] {
            s.time(Duration::from_micros(micros));
        }
        assert_eq!(s.timed, 7);
        assert_eq!(
            s.timed_micros,
            50 + 100 + 101 + 3_000 + 1_000_000 + 1_000_001 + 60_000_000
        );
        // bounds 0.1, 0.25, 0.5, 1, 2.5, 5, 10, ..., 1000 ms, then longer
        assert_eq!(&s.durations[..2], &[2, 1]);
        assert_eq!(s.durations[5], 1);
        assert_eq!(s.durations[11], 1);
        assert_eq!(s.durations[12], 2);
        assert_eq!(s.durations.iter().sum::<u64>(), 7);
    }
}

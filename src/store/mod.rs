//! Every SQL statement of the program lives under this module.
//!
//! One writer thread owns the only write connection and runs write jobs in
//! `BEGIN IMMEDIATE` transactions, grouping the jobs that queue up while a
//! commit is in flight into one transaction (group commit) with a savepoint per
//! job, so one job's refusal never undoes another's work. A caller is answered
//! only after the commit that holds its work has returned. Reads use a small
//! pool of read-only connections.

mod backup;
mod check;
mod fill;
mod health;
mod ledger;
mod outbox;
mod rows;
mod vouchers;

pub use backup::{backup, BackupReport};
pub use check::check_database;
pub use health::{Readiness, WriterStatus};
pub use outbox::{Attempt, SyncRenderer, SyncSink};

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags};

use crate::config::SyncMode;
use crate::domain::time::{now_ms, Millis};
use crate::domain::LedgerError;

/// The whole schema, applied to a new database.
pub const SCHEMA: &str = include_str!("../../schema.sql");
/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;
/// Migrations from version `i + 1` to `i + 2`, applied in order on start.
const MIGRATIONS: &[&str] = &[];

/// Most jobs folded into one transaction, unless [`StoreOptions::max_batch`] says otherwise.
pub const DEFAULT_MAX_BATCH: usize = 512;
/// Jobs waiting for the writer before callers block.
const QUEUE_DEPTH: usize = 8192;
const MAX_IDLE_READERS: usize = 16;

/// The answer to one write job, handed back once its commit is known.
type Reply = Box<dyn FnOnce(Result<(), LedgerError>) + Send>;

/// Runs inside the shared transaction and says whether its savepoint is kept.
type Run = Box<dyn FnOnce(&Connection) -> (bool, Reply) + Send>;

/// One unit of work for the writer.
struct Job {
    run: Run,
    /// Answers the caller when the job cannot run at all (no transaction).
    fail: Box<dyn FnOnce(LedgerError) + Send>,
}

/// A nonce to record together with a request's work (SPEC §3 replay refusal).
#[derive(Debug, Clone)]
pub struct NonceUse {
    pub api_key: String,
    pub nonce: String,
}

/// Options of [`Store::open`].
#[derive(Clone)]
pub struct StoreOptions {
    pub sync: SyncMode,
    /// Nonces are kept for twice this window.
    pub timestamp_window_s: i64,
    /// Renders SP-side changes as platform calls for the outbox; `None`: sync disabled.
    pub sync_renderer: Option<SyncRenderer>,
    /// Most jobs the writer folds into one transaction (group commit); 1
    /// commits every job on its own. [`DEFAULT_MAX_BATCH`] unless benchmarking.
    pub max_batch: usize,
}

/// The ledger database: the writer queue and the reader pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    jobs: SyncSender<Job>,
    readers: Mutex<Vec<Connection>>,
    sync: Option<SyncRenderer>,
    writer: Arc<WriterShared>,
}

/// What the writer thread shares with the store's handles. It holds no
/// sender of the job queue, so the writer ends when the last handle drops,
/// after running every job already queued.
#[derive(Default)]
struct WriterShared {
    batch_sizes: Mutex<BatchStats>,
    health: health::WriterHealth,
}

/// How many jobs the writer has folded into each commit, for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchStats {
    pub commits: u64,
    pub jobs: u64,
    pub largest: u64,
}

fn internal(what: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Internal(format!("{what}: {e}"))
}

/// Opens the write connection with the durability settings, and migrates the schema.
fn open_writer(path: &Path, sync: SyncMode) -> Result<Connection, String> {
    let conn = Connection::open(path)
        .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
    let sync = match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    };
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| format!("cannot use database {}: {e}", path.display()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "database {}: WAL mode unavailable (got {mode})",
            path.display()
        ));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;"
    ))
    .map_err(|e| format!("database {}: {e}", path.display()))?;
    migrate(&conn).map_err(|e| format!("database {}: {e}", path.display()))?;
    Ok(conn)
}

/// Brings a database to [`SCHEMA_VERSION`]; refuses one written by a newer build.
fn migrate(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !(0..=SCHEMA_VERSION).contains(&version) {
        return Err(format!(
            "schema version {version} is newer than this coupon-ledger understands ({SCHEMA_VERSION}); use a newer build"
        ));
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    if version == 0 {
        sql.push_str(SCHEMA);
    } else {
        for step in &MIGRATIONS[(version as usize - 1)..] {
            sql.push_str(step);
        }
    }
    sql.push_str(&format!(
        "\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
    ));
    conn.execute_batch(&sql).map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("schema migration from version {version} failed: {e}")
    })
}

impl Store {
    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, String> {
        let conn = open_writer(path, options.sync)?;
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        let store = Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                jobs: tx,
                readers: Mutex::new(Vec::new()),
                sync: options.sync_renderer.clone(),
                writer: Arc::new(WriterShared::default()),
            }),
        };
        let shared = Arc::clone(&store.inner.writer);
        let max_batch = options.max_batch.max(1);
        // A timestamp is accepted within ±window of now, so a nonce can come back
        // for 2 × window after it was first seen; a few seconds cover rounding.
        let keep_nonces_ms = options
            .timestamp_window_s
            .saturating_mul(2000)
            .saturating_add(5000);
        thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                writer_loop(conn, rx, &shared, keep_nonces_ms, max_batch);
                shared.health.stopped();
            })
            .map_err(|e| format!("cannot start the writer thread: {e}"))?;
        // A database that cannot be written is refused now, not at the first claim.
        store.probe().map_err(|e| match e {
            LedgerError::StorageUnavailable(why) | LedgerError::Internal(why) => {
                format!("database {} cannot be written: {why}", path.display())
            }
            other => format!("database {} cannot be written: {other}", path.display()),
        })?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Group-commit statistics so far.
    pub fn batch_stats(&self) -> BatchStats {
        *self.inner.writer.batch_sizes.lock()
    }

    /// Runs `f` in the writer's transaction; answers after the commit. An `Err`
    /// from `f` rolls back `f`'s work only.
    pub fn write<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let rx = self.submit(f)?;
        let result = rx
            .recv()
            .map_err(|_| LedgerError::StorageUnavailable("the writer dropped a job".into()))?;
        self.note(&result);
        result
    }

    /// Like [`Store::write`], but gives up waiting after `timeout` (the job
    /// may still run later).
    pub fn write_within<T, F>(&self, timeout: Duration, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let rx = self.submit(f)?;
        let result = rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => LedgerError::StorageUnavailable(format!(
                "writer stalled: no commit within {} ms",
                timeout.as_millis()
            )),
            RecvTimeoutError::Disconnected => {
                LedgerError::StorageUnavailable("the writer dropped a job".into())
            }
        })?;
        self.note(&result);
        result
    }

    /// Queues `f` for the writer; the receiver gets its outcome after the commit.
    fn submit<T, F>(&self, f: F) -> Result<Receiver<Result<T, LedgerError>>, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Result<T, LedgerError>>(1);
        let fail_tx = tx.clone();
        let job = Job {
            run: Box::new(move |conn| {
                let result = f(conn);
                let keep = result.is_ok();
                let reply: Reply = Box::new(move |commit| {
                    let _ = tx.send(commit.and(result));
                });
                (keep, reply)
            }),
            fail: Box::new(move |e| {
                let _ = fail_tx.send(Err(e));
            }),
        };
        self.inner
            .jobs
            .send(job)
            .map_err(|_| LedgerError::StorageUnavailable("the writer has stopped".into()))?;
        Ok(rx)
    }

    /// A write refused by the storage counts against the writer's health.
    fn note<T>(&self, result: &Result<T, LedgerError>) {
        if let Err(e @ LedgerError::StorageUnavailable(_)) = result {
            self.inner.writer.health.note_error(now_ms(), e);
        }
    }

    /// Commits a tiny write (a heartbeat in `meta`) through the writer: proves
    /// that a write can commit now.
    pub fn probe(&self) -> Result<(), LedgerError> {
        self.write(health::heartbeat)
    }

    /// What the writer knows of its own health, without touching the database.
    pub fn writer_status(&self) -> WriterStatus {
        self.inner.writer.health.status(now_ms())
    }

    /// Whether a write can commit now: a fresh probe at most once a second,
    /// bounded in time so a stalled writer is reported, not waited on.
    pub fn readiness(&self) -> Readiness {
        health::readiness(self)
    }

    /// Like [`Store::write`], first recording `nonce` (40104 if already seen). The
    /// nonce stays recorded even when `f` refuses the request.
    pub fn write_once<T, F>(&self, nonce: Option<NonceUse>, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let Some(nonce) = nonce else {
            return self.write(f);
        };
        self.write(move |conn| {
            record_nonce(conn, &nonce)?;
            conn.execute_batch("SAVEPOINT work")?;
            let result = f(conn);
            if result.is_err() {
                conn.execute_batch("ROLLBACK TO work")?;
            }
            conn.execute_batch("RELEASE work")?;
            Ok(result)
        })?
    }

    /// Records a nonce on its own, for requests that only read.
    pub fn use_nonce(&self, nonce: NonceUse) -> Result<(), LedgerError> {
        self.write(move |conn| record_nonce(conn, &nonce))
    }

    /// Runs `f` on a pooled read-only connection inside one read transaction,
    /// so it sees one consistent snapshot.
    pub fn read<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        F: FnOnce(&Connection) -> Result<T, LedgerError>,
    {
        let pooled = self.inner.readers.lock().pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.inner.path)?,
        };
        conn.execute_batch("BEGIN")?;
        let result = f(&conn);
        let ended = conn.execute_batch("COMMIT");
        if ended.is_ok() {
            let mut pool = self.inner.readers.lock();
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
        result
    }
}

fn open_reader(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| internal("open reader", e))?;
    conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = ON;")?;
    Ok(conn)
}

fn record_nonce(conn: &Connection, nonce: &NonceUse) -> Result<(), LedgerError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO nonces (api_key, nonce, seen_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
        )?
        .execute(rusqlite::params![nonce.api_key, nonce.nonce, now_ms()])?;
    if inserted == 0 {
        return Err(LedgerError::NonceReused);
    }
    Ok(())
}

fn writer_loop(
    conn: Connection,
    rx: Receiver<Job>,
    shared: &WriterShared,
    keep_nonces_ms: Millis,
    max_batch: usize,
) {
    let mut last_purge = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if last_purge.elapsed() > Duration::from_secs(30) {
            last_purge = Instant::now();
            purge_nonces(&conn, now_ms() - keep_nonces_ms);
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
        let outcome = run_batch(&conn, batch);
        health.batch_ended(now_ms(), outcome.as_ref().err());
        let mut stats = shared.batch_sizes.lock();
        stats.commits += 1;
        stats.jobs += n;
        stats.largest = stats.largest.max(n);
    }
}

fn purge_nonces(conn: &Connection, before: Millis) {
    if let Err(e) = conn.execute("DELETE FROM nonces WHERE seen_ms < ?1", [before]) {
        log::warn!("could not purge old nonces: {e}");
    }
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
        if let Err(e) = conn.execute_batch("SAVEPOINT job") {
            log::error!("cannot open a savepoint, the batch is rolled back: {e}");
            let why = LedgerError::from(e);
            (job.fail)(why.clone());
            return abandon(conn, replies, jobs, why);
        }
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.run)(conn)));
        let keep = match ran {
            Ok((keep, reply)) => {
                replies.push(reply);
                keep
            }
            Err(_) => {
                log::error!("a write job panicked; its work is rolled back");
                false
            }
        };
        let end = if keep {
            conn.execute_batch("RELEASE job")
        } else {
            conn.execute_batch("ROLLBACK TO job; RELEASE job")
        };
        // A savepoint that cannot be closed, or an error that made SQLite roll
        // back the whole transaction (disk full, I/O error), poisons the batch:
        // nothing in it may be committed or acknowledged.
        if let Err(e) = end {
            log::error!("cannot close a savepoint, the batch is rolled back: {e}");
            return abandon(conn, replies, jobs, LedgerError::from(e));
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

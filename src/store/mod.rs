//! Every SQL statement of the program lives under this module.
//!
//! Writes go to one writer thread that commits them in groups ([`writer`]);
//! each write runs in a [`tx::Tx`] and checks the ledger's rules in code (for
//! precise codes) before the schema's constraints check them again. Reads use
//! a pool of read-only connections, each read one consistent snapshot.
//!
//! The store's whole public API is the `impl Store` below, one subject after
//! another; each method is a thin door into the subject's module.

mod activity;
mod backup;
mod check;
mod coupons;
mod fill;
mod health;
mod journal;
mod nonces;
mod outbox;
mod redemptions;
mod report;
mod schema;
mod stocks;
mod tx;
mod vouchers;
mod writer;

pub use activity::HourCount;
pub use backup::{backup, backup_with, BackupReport};
pub use check::{check_database, check_database_to, Depth as CheckDepth};
pub use fill::FILL_BATCH;
use fill::FILL_JOBS_IN_FLIGHT;
pub use health::{Readiness, WriterStatus};
pub use nonces::NonceUse;
pub use outbox::{Attempt, SyncCalls};
pub use schema::{PAGE_SIZE, SCHEMA, SCHEMA_VERSION};
pub use writer::{BatchStats, BATCH_SECONDS_BOUNDS, BATCH_SIZE_BOUNDS, DEFAULT_MAX_BATCH};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OptionalExtension};

use crate::config::Durability;
use crate::domain::ledger::{
    BatchOutcome, ClaimRequest, Coupon, CouponQuery, DeactivateRequest, JournalEntry, Origin,
    OutboxCall, OutboxHealth, Page, Redemption, ResyncTarget, Stock, StockCounts, StockPatch,
};
use crate::domain::money::Fen;
use crate::domain::report::ReportRow;
use crate::domain::stock::{StockSpec, StockStatus};
use crate::domain::time::{now_ms, Millis};
use crate::domain::voucher::{
    Verification, VerifyRequest, Voucher, VoucherQuery, VoucherSpec, VoucherType,
};
use crate::domain::LedgerError;
use journal::Entity;
use tx::Tx;
use writer::{Job, WriterShared};

/// Most read-only connections open at once. Each is opened once and then
/// pooled, so a busy server never opens one per request; a read that finds
/// all of them in use waits for one. Reads take microseconds and the machine
/// has few cores, so more would only cost memory: each connection holds its
/// own copy of the schema, statements and page cache (about 250 KB under
/// load; 1,000 of them took the server to 266 MB).
const MAX_READERS: usize = 64;

/// How long a read waits for a free connection before it is refused.
const READER_WAIT: Duration = Duration::from_secs(10);

/// The read-only connections: the idle ones, and how many are open in all.
#[derive(Default)]
struct Readers {
    idle: Vec<Connection>,
    open: usize,
}

/// A connection taken from the pool; back to it when dropped (closed
/// instead when `keep` is false, e.g. after a failed transaction).
struct Reader<'s> {
    conn: Option<Connection>,
    keep: bool,
    inner: &'s Inner,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        let mut readers = self.inner.readers.lock();
        match self.conn.take() {
            Some(conn) if self.keep => readers.idle.push(conn),
            _ => readers.open -= 1,
        }
        drop(readers);
        self.inner.reader_free.notify_one();
    }
}

/// Options of [`Store::open`].
#[derive(Clone)]
pub struct StoreOptions {
    /// SQLite's `synchronous` setting.
    pub durability: Durability,
    /// Nonces are kept for twice this window.
    pub timestamp_window_s: i64,
    /// How SP-side changes become platform calls; `None`: sync disabled.
    pub sync_calls: Option<Arc<SyncCalls>>,
    /// Most jobs in one transaction; 1 commits every job on its own.
    /// [`DEFAULT_MAX_BATCH`] unless benchmarking.
    pub max_batch: usize,
}

/// See [`Store::closing`].
pub struct Closing(Arc<WriterShared>);

impl Closing {
    /// Waits at most `timeout` for the writer to run what was queued and
    /// close the database (the WAL checkpointed into it); true when it did.
    pub fn wait(&self, timeout: Duration) -> bool {
        self.0.wait_closed(timeout)
    }
}

/// The ledger database: the writer queue and the reader pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Fields drop in this order: the pooled readers close before the job queue
/// closes, so that the writer's thread, which then ends, closes the last
/// connections (its own, then the checkpointer's, which checkpoints the WAL
/// into the database and removes it).
struct Inner {
    readers: Mutex<Readers>,
    reader_free: Condvar,
    path: PathBuf,
    jobs: SyncSender<Job>,
    sync: Option<Arc<SyncCalls>>,
    writer: Arc<WriterShared>,
    /// Outbox changes made through this store other than new calls (which
    /// `SyncCalls` counts): with those, the version of the outbox's health.
    outbox_changes: AtomicU64,
    /// The outbox's health at a version, so `/healthz` reads the database
    /// only when the outbox has changed.
    outbox_health: Mutex<Option<(u64, OutboxHealth)>>,
}

impl Store {
    // ------------------------------------------------------------ the database

    /// Opens (creating if needed) the database and starts the writer thread.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, String> {
        let conn = schema::open_writer(path, options.durability)?;
        let checkpointer = schema::open_checkpointer(path, options.durability)?;
        let (tx, rx) = mpsc::sync_channel::<Job>(writer::QUEUE_DEPTH);
        let store = Store {
            inner: Arc::new(Inner {
                readers: Mutex::new(Readers::default()),
                reader_free: Condvar::new(),
                path: path.to_path_buf(),
                jobs: tx,
                sync: options.sync_calls.clone(),
                writer: Arc::new(WriterShared::default()),
                outbox_changes: AtomicU64::new(0),
                outbox_health: Mutex::new(None),
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
        let seen = nonces::Seen::load(&conn, keep_nonces_ms, now_ms()).map_err(|e| {
            format!(
                "database {}: cannot read the nonces of the replay window: {e}",
                path.display()
            )
        })?;
        let shared_ckpt = Arc::clone(&store.inner.writer);
        let checkpointer = thread::Builder::new()
            .name("ledger-checkpoint".into())
            .spawn(move || writer::checkpointer_loop(checkpointer, &shared_ckpt));
        let checkpointer = match checkpointer {
            Ok(handle) => Some(handle),
            Err(e) => {
                // The writer's own checkpoints still keep the WAL in check.
                log::warn!("cannot start the background checkpointer: {e}");
                None
            }
        };
        let started = thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || {
                writer::writer_loop(conn, rx, &shared, seen, max_batch);
                shared.end();
                if let Some(handle) = checkpointer {
                    let _ = handle.join();
                }
                shared.health.stopped();
                shared.close();
            });
        if let Err(e) = started {
            store.inner.writer.end();
            return Err(format!("cannot start the writer thread: {e}"));
        }
        Ok(store)
    }

    /// A handle that outlives the store, to wait until the writer has
    /// closed the database after the last store handle is dropped.
    pub fn closing(&self) -> Closing {
        Closing(Arc::clone(&self.inner.writer))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in the writer's transaction; answers after the commit. An `Err`
    /// from `f` rolls back `f`'s work only.
    pub fn write<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let result = writer::wait(writer::submit(&self.inner.jobs, f)?, None);
        self.note(&result);
        result
    }

    /// Like [`Store::write`], but gives up waiting after `timeout` (the job
    /// may still run later).
    pub fn write_within<T, F>(&self, timeout: Duration, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let result = writer::wait(writer::submit(&self.inner.jobs, f)?, Some(timeout));
        self.note(&result);
        result
    }

    /// Runs `f` on a pooled read-only connection inside one read transaction,
    /// so it sees one consistent snapshot.
    pub fn read<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        F: FnOnce(&Connection) -> Result<T, LedgerError>,
    {
        let mut reader = self.reader()?;
        let Some(conn) = reader.conn.as_ref() else {
            return Err(LedgerError::Internal(
                "a pooled reader without a connection".into(),
            ));
        };
        conn.execute_batch("BEGIN")?;
        let result = f(conn);
        reader.keep = conn.execute_batch("COMMIT").is_ok();
        result
    }

    /// Read-only connections open now (idle or in use); never more than 64.
    pub fn readers_open(&self) -> usize {
        self.inner.readers.lock().open
    }

    /// A read-only connection: an idle one, a new one while fewer than
    /// [`MAX_READERS`] are open, or else the first one given back.
    fn reader(&self) -> Result<Reader<'_>, LedgerError> {
        let inner = &*self.inner;
        let deadline = std::time::Instant::now() + READER_WAIT;
        let mut readers = inner.readers.lock();
        loop {
            if let Some(conn) = readers.idle.pop() {
                return Ok(Reader {
                    conn: Some(conn),
                    keep: false,
                    inner,
                });
            }
            if readers.open < MAX_READERS {
                readers.open += 1;
                drop(readers);
                // Counted before it is opened, and given back by the guard if
                // the open fails.
                let mut reader = Reader {
                    conn: None,
                    keep: false,
                    inner,
                };
                reader.conn = Some(schema::open_reader(&inner.path)?);
                return Ok(reader);
            }
            if inner
                .reader_free
                .wait_until(&mut readers, deadline)
                .timed_out()
            {
                return Err(LedgerError::StorageUnavailable(format!(
                    "no read connection free within {} s",
                    READER_WAIT.as_secs()
                )));
            }
        }
    }

    // ------------------------------------------------------------ health

    /// Group-commit statistics so far.
    pub fn batch_stats(&self) -> BatchStats {
        *self.inner.writer.batch_sizes.lock()
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

    // ------------------------------------------------------------ nonces

    /// Records a nonce on its own, for requests that only read (40104 if seen).
    pub fn use_nonce(&self, nonce: NonceUse) -> Result<(), LedgerError> {
        self.write_once(Some(nonce), |_| Ok(()))
    }

    // ------------------------------------------------------------ stocks

    /// Creates a stock; the same definition again answers the existing stock.
    pub fn create_stock(&self, spec: StockSpec, origin: Origin) -> Result<Stock, LedgerError> {
        self.write_tx(None, origin, move |tx| stocks::create(tx, spec.clone()))
    }

    /// Edits a stock's editable fields.
    pub fn patch_stock(
        &self,
        stock_id: &str,
        patch: StockPatch,
        origin: Origin,
    ) -> Result<Stock, LedgerError> {
        let id = stock_id.to_string();
        self.write_tx(None, origin, move |tx| {
            stocks::patch(tx, &id, patch.clone())
        })
    }

    /// Moves a stock along its state machine.
    pub fn set_stock_status(
        &self,
        stock_id: &str,
        to: StockStatus,
        origin: Origin,
    ) -> Result<Stock, LedgerError> {
        let id = stock_id.to_string();
        self.write_tx(None, origin, move |tx| stocks::set_status(tx, &id, to))
    }

    /// One stock (40401 when unknown).
    pub fn stock(&self, stock_id: &str) -> Result<Stock, LedgerError> {
        self.read(|c| stocks::get(c, stock_id))
    }

    /// One stock, read in the transaction that records `nonce` (40104 if
    /// seen): a signed read takes one trip through the writer, whose cache
    /// holds the stock, instead of that trip and a read connection's.
    pub fn stock_once(&self, nonce: NonceUse, stock_id: &str) -> Result<Stock, LedgerError> {
        let stock_id = stock_id.to_string();
        self.write_once(Some(nonce), move |c| stocks::get(c, &stock_id))
    }

    /// One stock with its counts by state.
    pub fn stock_with_counts(&self, stock_id: &str) -> Result<(Stock, StockCounts), LedgerError> {
        self.read(|c| Ok((stocks::get(c, stock_id)?, stocks::counts(c, stock_id)?)))
    }

    /// Every stock with its counts, oldest first.
    pub fn stocks_with_counts(&self) -> Result<Vec<(Stock, StockCounts)>, LedgerError> {
        self.read(|c| {
            stocks::all(c)?
                .into_iter()
                .map(|s| {
                    let counts = stocks::counts(c, &s.spec.stock_id)?;
                    Ok((s, counts))
                })
                .collect()
        })
    }

    /// A stock's journal, oldest first (40401 when unknown).
    pub fn stock_journal(&self, stock_id: &str) -> Result<Vec<JournalEntry>, LedgerError> {
        self.read(|c| {
            stocks::get(c, stock_id)?;
            journal::of(c, Entity::Stock, stock_id)
        })
    }

    // ------------------------------------------------------------ coupons

    /// 领券 or an operator issue: every claim rule, idempotent by request id.
    /// The nonce, when given, is recorded in the same transaction.
    pub fn claim(
        &self,
        nonce: Option<NonceUse>,
        req: ClaimRequest,
        origin: Origin,
    ) -> Result<Coupon, LedgerError> {
        self.write_tx(nonce, origin, move |tx| coupons::claim(tx, &req))
    }

    /// Expires or deactivates one or a batch of coupons, all or nothing.
    pub fn deactivate(
        &self,
        nonce: Option<NonceUse>,
        req: DeactivateRequest,
        origin: Origin,
    ) -> Result<BatchOutcome, LedgerError> {
        self.write_tx(nonce, origin, move |tx| coupons::deactivate(tx, &req))
    }

    /// Expires one bounded batch of coupons whose window has passed (one short transaction).
    pub fn expire_due(&self, limit: i64, origin: Origin) -> Result<usize, LedgerError> {
        self.write_tx(None, origin, move |tx| coupons::expire_due(tx, limit))
    }

    /// One coupon (40402 when unknown).
    pub fn coupon(&self, coupon_id: &str) -> Result<Coupon, LedgerError> {
        self.read(|c| coupons::get(c, coupon_id))
    }

    /// One coupon with its whole journal.
    pub fn coupon_with_journal(
        &self,
        coupon_id: &str,
    ) -> Result<(Coupon, Vec<JournalEntry>), LedgerError> {
        self.read(|c| {
            let coupon = coupons::get(c, coupon_id)?;
            Ok((coupon, journal::of(c, Entity::Coupon, coupon_id)?))
        })
    }

    /// One coupon and its stock, read together.
    pub fn coupon_with_stock(&self, coupon_id: &str) -> Result<(Coupon, Stock), LedgerError> {
        self.read(|c| coupons::with_stock(c, coupon_id))
    }

    /// Like [`Store::coupon_with_stock`], read in the transaction that
    /// records `nonce` (40104 if seen), as [`Store::stock_once`].
    pub fn coupon_with_stock_once(
        &self,
        nonce: NonceUse,
        coupon_id: &str,
    ) -> Result<(Coupon, Stock), LedgerError> {
        let coupon_id = coupon_id.to_string();
        self.write_once(Some(nonce), move |c| coupons::with_stock(c, &coupon_id))
    }

    /// A page of coupons in issue order, the cursor of the next page, and how
    /// many match in all (one snapshot).
    pub fn coupons(&self, q: &CouponQuery) -> Result<Page<Coupon>, LedgerError> {
        self.read(|c| coupons::page(c, q))
    }

    /// Issues `n` coupons of `stock_id` to `n` new users, [`FILL_BATCH`] per
    /// write job, as the operator; for benchmarks. The stock must be running,
    /// inside its window, with room for them. On an error, earlier jobs stay.
    pub fn bulk_fill(&self, stock_id: &str, n: u64) -> Result<u64, LedgerError> {
        let run = crate::domain::coupon::random_hex(4).map_err(LedgerError::Internal)?;
        // Refused up front when there is no room for all of them, so that a
        // fill that cannot finish leaves nothing behind (each job checks again).
        let stock = self.stock(stock_id)?;
        if stock
            .issued
            .saturating_add(i64::try_from(n).unwrap_or(i64::MAX))
            > stock.spec.max_coupons
        {
            return Err(LedgerError::SoldOut);
        }
        let mut in_flight = std::collections::VecDeque::new();
        let (mut queued, mut done) = (0u64, 0u64);
        while done < n {
            // Keep the writer fed: it folds the queued jobs into large
            // transactions, while each job stays small (see `FILL_BATCH`).
            while queued < n && in_flight.len() < FILL_JOBS_IN_FLIGHT {
                let count = (n - queued).min(FILL_BATCH);
                let (id, run, first) = (stock_id.to_string(), run.clone(), queued);
                let origin = Origin {
                    source: crate::domain::ledger::Source::Admin,
                    seq_id: None,
                    now: now_ms(),
                    operator: None,
                };
                let sync = self.inner.sync.clone();
                let rx = writer::submit(&self.inner.jobs, move |conn: &Connection| {
                    fill::fill(
                        &Tx::new(conn, &origin, sync.as_ref()),
                        &id,
                        &run,
                        first,
                        count,
                    )
                    .map(|()| count)
                })?;
                in_flight.push_back(rx);
                queued += count;
            }
            let Some(rx) = in_flight.pop_front() else {
                break;
            };
            let result = writer::wait(rx, None);
            self.note(&result);
            done += result?;
        }
        Ok(done)
    }

    // ------------------------------------------------------------ activity

    /// Coupon journal events per hour and event since `since_ms`, hours
    /// starting on the hour of `offset_ms` (the operator's chart).
    pub fn coupon_activity(
        &self,
        since_ms: Millis,
        offset_ms: i64,
    ) -> Result<Vec<HourCount>, LedgerError> {
        self.read(|c| activity::coupon_events_per_hour(c, since_ms, offset_ms))
    }

    // ------------------------------------------------------------ redemptions

    /// Redeems a coupon against an order, idempotent by `order_id`.
    pub fn redeem(
        &self,
        coupon_id: &str,
        order_id: &str,
        order_amount: Fen,
        origin: Origin,
    ) -> Result<Redemption, LedgerError> {
        let (id, order) = (coupon_id.to_string(), order_id.to_string());
        self.write_tx(None, origin, move |tx| {
            redemptions::redeem(tx, &id, &order, order_amount)
        })
    }

    /// Undoes the redemption of `order_id` while the coupon's window is open.
    pub fn unredeem(
        &self,
        coupon_id: &str,
        order_id: &str,
        origin: Origin,
    ) -> Result<Redemption, LedgerError> {
        let (id, order) = (coupon_id.to_string(), order_id.to_string());
        self.write_tx(None, origin, move |tx| {
            redemptions::unredeem(tx, &id, &order)
        })
    }

    // ------------------------------------------------------------ vouchers

    /// Imports vouchers, all or nothing.
    pub fn import_vouchers(
        &self,
        specs: Vec<VoucherSpec>,
        origin: Origin,
    ) -> Result<usize, LedgerError> {
        self.write(move |c| vouchers::import_tx(c, &specs, &origin))
    }

    /// One voucher with its verifications, newest last.
    pub fn voucher(
        &self,
        kind: VoucherType,
        coupon_no: &str,
    ) -> Result<(Voucher, Vec<Verification>), LedgerError> {
        self.read(|c| vouchers::with_verifications(c, kind, coupon_no))
    }

    /// A page of vouchers in import order, each with its shops, and how many
    /// match in all (one snapshot).
    pub fn vouchers(&self, q: &VoucherQuery) -> Result<Page<Voucher>, LedgerError> {
        self.read(|c| vouchers::page(c, q))
    }

    /// The pre-redemption check: the voucher if it can be used at this shop now.
    pub fn prepare_voucher(
        &self,
        nonce: NonceUse,
        kind: VoucherType,
        coupon_no: &str,
        shop_id: i64,
        now: Millis,
    ) -> Result<Voucher, LedgerError> {
        let coupon_no = coupon_no.to_string();
        self.write_once(Some(nonce), move |c| {
            vouchers::prepared(c, kind, &coupon_no, shop_id, now)
        })
    }

    /// Consumes uses atomically, idempotent by the request's key.
    pub fn verify_voucher(
        &self,
        nonce: NonceUse,
        req: VerifyRequest,
        origin: Origin,
    ) -> Result<Verification, LedgerError> {
        self.write_once(Some(nonce), move |c| vouchers::verify_tx(c, &req, &origin))
    }

    /// Gives a verify's uses back within the window, once. Returns the uses left.
    pub fn cancel_verification(
        &self,
        nonce: NonceUse,
        verify_id: &str,
        shop_id: i64,
        issuer: &str,
        window_ms: Millis,
        origin: Origin,
    ) -> Result<(Verification, i64), LedgerError> {
        let (id, issuer) = (verify_id.to_string(), issuer.to_string());
        self.write_once(Some(nonce), move |c| {
            vouchers::cancel_tx(c, &id, shop_id, &issuer, window_ms, &origin)
        })
    }

    // ------------------------------------------------------------ outbox

    /// How many calls have been written (or put back in line) since start; the
    /// dispatcher looks for work when this moves.
    pub fn outbox_writes(&self) -> u64 {
        outbox::writes(self)
    }

    /// Calls due by `now` that head their lane, oldest first, skipping `in_flight`.
    pub fn outbox_ready(
        &self,
        now: Millis,
        in_flight: &[i64],
        limit: usize,
    ) -> Result<Vec<OutboxCall>, LedgerError> {
        outbox::ready(self, now, in_flight, limit)
    }

    /// Records the outcome of one delivery attempt.
    pub fn outbox_record(&self, id: i64, attempt: Attempt, now: Millis) -> Result<(), LedgerError> {
        let result = outbox::record(self, id, attempt, now);
        self.outbox_changed();
        result
    }

    /// A page of calls, optionally in one state, oldest first.
    pub fn outbox_list(
        &self,
        state: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<OutboxCall>, LedgerError> {
        outbox::list(self, state, after, limit)
    }

    /// A page of calls, optionally in one state, oldest first, and how many
    /// are in that state in all (one snapshot).
    pub fn outbox_page(
        &self,
        state: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Page<OutboxCall>, LedgerError> {
        outbox::page(self, state, after, limit)
    }

    /// Puts a dead call back in line for an attempt now, with a fresh attempt
    /// budget (journaled).
    pub fn outbox_retry(&self, id: i64, origin: Origin) -> Result<OutboxCall, LedgerError> {
        let result = outbox::retry(self, id, origin);
        self.outbox_changed();
        result
    }

    /// Gives up on a dead call for good (journaled); the calls behind it move on.
    pub fn outbox_abandon(
        &self,
        id: i64,
        reason: &str,
        origin: Origin,
    ) -> Result<OutboxCall, LedgerError> {
        let result = outbox::abandon(self, id, reason, origin);
        self.outbox_changed();
        result
    }

    /// Queues fresh calls carrying the current state of a stock or coupon.
    pub fn outbox_resync(
        &self,
        target: ResyncTarget,
        origin: Origin,
    ) -> Result<Vec<OutboxCall>, LedgerError> {
        let result = outbox::resync(self, target, origin);
        self.outbox_changed();
        result
    }

    /// Deletes up to `limit` delivered or abandoned calls final before `before`.
    pub fn outbox_prune(&self, before: Millis, limit: i64) -> Result<usize, LedgerError> {
        let result = outbox::prune(self, before, limit);
        self.outbox_changed();
        result
    }

    /// Depth and age of the outbox; read again only when the outbox changed.
    pub fn outbox_health(&self) -> Result<OutboxHealth, LedgerError> {
        let version = self.inner.outbox_changes.load(Ordering::SeqCst) + outbox::writes(self);
        if let Some((v, h)) = self.inner.outbox_health.lock().as_ref() {
            if *v == version {
                return Ok(*h);
            }
        }
        let health = outbox::health(self)?;
        *self.inner.outbox_health.lock() = Some((version, health));
        Ok(health)
    }

    fn outbox_changed(&self) {
        self.inner.outbox_changes.fetch_add(1, Ordering::SeqCst);
    }

    // ------------------------------------------------------------ reports

    /// The daily statement's events: every coupon and voucher event journaled
    /// in `[from, to)`, with its amounts, in one snapshot.
    pub fn report_rows(&self, from: Millis, to: Millis) -> Result<Vec<ReportRow>, LedgerError> {
        self.read(|c| report::rows(c, from, to))
    }

    // ------------------------------------------------------------ meta

    /// Reads a value of the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, LedgerError> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()?)
        })
    }

    /// Writes values of the `meta` table, all in one transaction.
    pub fn set_meta(&self, pairs: Vec<(String, String)>) -> Result<(), LedgerError> {
        self.write(move |c| {
            for (k, v) in &pairs {
                c.prepare_cached(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )?
                .execute([k, v])?;
            }
            Ok(())
        })
    }

    /// True when the database holds no stock yet.
    pub fn is_empty(&self) -> Result<bool, LedgerError> {
        self.read(|c| {
            let n: i64 = c.query_row("SELECT count(*) FROM stocks", [], |r| r.get(0))?;
            Ok(n == 0)
        })
    }

    // ------------------------------------------------------------ plumbing

    /// Runs `f` as one write in a [`Tx`] (with the store's sync calls), first
    /// recording `nonce` when given. The nonce stays recorded even when `f`
    /// refuses the request (its work is rolled back, the nonce is used up).
    fn write_tx<T, F>(
        &self,
        nonce: Option<NonceUse>,
        origin: Origin,
        f: F,
    ) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: Fn(&Tx) -> Result<T, LedgerError> + Send + 'static,
    {
        let sync = self.inner.sync.clone();
        let work = move |conn: &Connection| f(&Tx::new(conn, &origin, sync.as_ref()));
        self.write_once(nonce, work)
    }

    /// Like [`Store::write`], first recording `nonce` (40104 if already seen).
    /// The nonce stays recorded even when `f` refuses the request.
    pub(crate) fn write_once<T, F>(&self, nonce: Option<NonceUse>, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let Some(nonce) = nonce else {
            return self.write(f);
        };
        let result = writer::wait(writer::submit_once(&self.inner.jobs, nonce, f)?, None);
        self.note(&result);
        result
    }

    /// A write refused by the storage counts against the writer's health.
    fn note<T>(&self, result: &Result<T, LedgerError>) {
        if let Err(e @ LedgerError::StorageUnavailable(_)) = result {
            self.inner.writer.health.note_error(now_ms(), e);
        }
    }
}

//! The database file: the schema and its migrations, and the connections
//! (one writer with the durability settings, read-only readers).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::config::Durability;
use crate::domain::LedgerError;

/// The whole schema, applied to a new database.
pub const SCHEMA: &str = include_str!("../../schema.sql");
/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 6;
/// The page size of a database this build makes (and of a backup's copy).
///
/// A claim inserts into three indexes on random keys (the coupon id, the
/// idempotency key, the holder), so each one dirties about three leaf pages,
/// and a commit writes every dirty page whole to the WAL, checksummed, then
/// again at the checkpoint. Pages of 2 KiB halve those bytes; the trees are a
/// level deeper at most. Measured with `bench` on 2 cores, against 4 KiB:
/// the writer without HTTP +18 % at 64 connections, claims +3 % at 64 and
/// +15 % at 256, and on a ledger of a million coupons claims +11 %, the
/// writer +14 % and the bulk fill +70 %. Pages of 1 KiB were slower on the
/// million (deeper trees), and no smaller on disk.
///
/// SQLite fixes the size when the file is made, before WAL mode is set, so
/// an existing ledger keeps its pages; a backup is written at this size, and
/// a ledger restored from one has them.
pub const PAGE_SIZE: i64 = 2048;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;
/// Migrations from version `i + 1` to `i + 2`, applied in order on start.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0002_outbox_abandon.sql"),
    include_str!("../../migrations/0003_journal_operator.sql"),
    include_str!("../../migrations/0004_lean_claims.sql"),
    include_str!("../../migrations/0005_journal_by_coupon.sql"),
    include_str!("../../migrations/0006_nonces_by_time.sql"),
];

/// CHECK constraints of version 3 that list values with IN, and the same
/// rule without it (version 4): SQLite builds a temporary table for an IN
/// list of more than two values each time a statement checks it. Text as a
/// new database has it, whitespace folded.
const CHECK_REWRITES: &[(&str, &str, &str)] = &[
    (
        "coupons",
        "CHECK (coupon_type IN (1, 2, 3))",
        "CHECK (coupon_type BETWEEN 1 AND 3)",
    ),
    (
        "journal",
        "CHECK (entity IN ('stock', 'coupon', 'voucher', 'outbox'))",
        "CHECK (entity = 'stock' OR entity = 'coupon' OR entity = 'voucher' OR entity = 'outbox')",
    ),
    (
        "journal",
        "CHECK (source IN ('platform', 'admin', 'sweeper', 'shop'))",
        "CHECK (source = 'platform' OR source = 'admin' OR source = 'sweeper' OR source = 'shop')",
    ),
    (
        "outbox",
        "CHECK (path IN ('/stock/rsync', '/coupon/rsync', '/stock/status/rsync', '/coupon/status/rsync'))",
        "CHECK (path = '/stock/rsync' OR path = '/coupon/rsync' OR path = '/stock/status/rsync' OR path = '/coupon/status/rsync')",
    ),
    (
        "outbox",
        "CHECK (state IN ('pending', 'delivered', 'dead', 'abandoned'))",
        "CHECK (state = 'pending' OR state = 'delivered' OR state = 'dead' OR state = 'abandoned')",
    ),
];

/// Opens the write connection with the durability settings, and migrates the schema.
pub(super) fn open_writer(path: &Path, durability: Durability) -> Result<Connection, String> {
    let conn = Connection::open(path)
        .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // Only a new, empty file takes it; an existing one keeps its own.
    conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE}"))
        .map_err(|e| format!("cannot use database {}: {e}", path.display()))?;
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
        // temp_store = FILE, SQLite's own default: a statement's sub-journal
        // (every claim's insert keeps one, for its triggers) is then held in
        // memory in one 64 KiB piece, and goes to a temp file only past that
        // size, which no claim reaches. With temp_store = MEMORY it was held
        // in 1 KiB pieces, allocated anew for each statement: 28 allocations
        // a claim, a tenth of the writer's instructions. A 16 MiB page cache
        // holds the indexes' inner pages (64 MiB bought no claims, even on a
        // million coupons, and took 60 MB more of a long-running server's
        // memory: the leaves of the random-key indexes outgrow any cache, and
        // the OS's page cache serves them);
        // wal_autocheckpoint = 0: checkpoints run beside the writer and
        // between its batches (`writer::checkpointer_loop`), never inside a
        // commit the callers wait for; journal_size_limit: a WAL that grew in
        // a burst is cut back to 64 MiB when it starts over.
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = FILE; PRAGMA cache_size = -16384; PRAGMA wal_autocheckpoint = 0;
         PRAGMA journal_size_limit = 67108864;"
    ))
    .map_err(|e| format!("database {}: {e}", path.display()))?;
    migrate(&conn).map_err(|e| format!("database {}: {e}", path.display()))?;
    // Every statement the writer runs stays prepared: the default cache of 16
    // is smaller than one claim's set plus the journal, nonce and outbox ones.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
    sql.push_str(&format!("\nPRAGMA user_version = {SCHEMA_VERSION};"));
    let migrated = conn.execute_batch(&sql).and_then(|()| {
        if version > 0 && version < 4 {
            rewrite_checks(conn)?;
        }
        conn.execute_batch("COMMIT")
    });
    migrated.map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("schema migration from version {version} failed: {e}")
    })
}

/// Rewrites the CHECKs of [`CHECK_REWRITES`] in place, in the migration's
/// transaction. Changing a CHECK into an equivalent one leaves every stored row
/// valid and the file format unchanged, which is the case SQLite documents
/// editing `sqlite_schema` for; copying a table of millions of coupons would
/// make the upgrade take minutes instead.
fn rewrite_checks(conn: &Connection) -> rusqlite::Result<()> {
    let schema_version: i64 = conn.query_row("PRAGMA schema_version", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA writable_schema = ON")?;
    let rewritten = (|| {
        for table in ["coupons", "journal", "outbox"] {
            let sql: String = conn.query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )?;
            let mut folded = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            for (_, old, new) in CHECK_REWRITES.iter().filter(|(t, _, _)| *t == table) {
                folded = folded.replace(old, new);
            }
            conn.execute(
                "UPDATE sqlite_schema SET sql = ?2 WHERE type = 'table' AND name = ?1",
                [table, folded.as_str()],
            )?;
        }
        conn.execute_batch(&format!("PRAGMA schema_version = {}", schema_version + 1))
    })();
    conn.execute_batch("PRAGMA writable_schema = RESET")?;
    rewritten
}

/// Opens the connection of the background checkpointer: it writes nothing
/// but the database pages it copies from the WAL, and syncs them as the
/// writer would (`synchronous` decides whether a checkpoint syncs).
pub(super) fn open_checkpointer(path: &Path, durability: Durability) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -1024;"
    ))
    .map_err(|e| format!("database {}: {e}", path.display()))?;
    Ok(conn)
}

pub(super) fn open_reader(path: &Path) -> Result<Connection, LedgerError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(LedgerError::from)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(
        "PRAGMA busy_timeout = 5000; PRAGMA query_only = ON; PRAGMA temp_store = MEMORY;\n         PRAGMA cache_size = -1024;",
    )?;
    Ok(conn)
}

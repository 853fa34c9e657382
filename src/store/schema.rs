//! The database file: the schema and its migrations, and the connections
//! (one writer with the durability settings, read-only readers).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::config::Durability;
use crate::domain::LedgerError;

/// The whole schema, applied to a new database.
pub const SCHEMA: &str = include_str!("../../schema.sql");
/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 3;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;
/// Migrations from version `i + 1` to `i + 2`, applied in order on start.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0002_outbox_abandon.sql"),
    include_str!("../../migrations/0003_journal_operator.sql"),
];

/// Opens the write connection with the durability settings, and migrates the schema.
pub(super) fn open_writer(path: &Path, durability: Durability) -> Result<Connection, String> {
    let conn = Connection::open(path)
        .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
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
        // temp_store = MEMORY: each job's savepoint keeps its sub-journal in
        // memory instead of a temp file (a fifth of the writer's time went
        // there); a 64 MiB page cache keeps the hot indexes in memory;
        // wal_autocheckpoint = 0: the writer checkpoints between batches
        // (`writer::checkpoint`), not inside a commit the callers wait for.
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = 0;"
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
    sql.push_str(&format!(
        "\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
    ));
    conn.execute_batch(&sql).map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("schema migration from version {version} failed: {e}")
    })
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

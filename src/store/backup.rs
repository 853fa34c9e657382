//! `coupon-ledger backup`: an online, consistent copy of a live ledger.
//!
//! `VACUUM INTO` copies one read snapshot (in WAL mode it never blocks the
//! writer), into a file beside the destination; the copy is synced, checked
//! with every invariant of `check`, and only then renamed to the destination.
//! The copy has the page size of a new database ([`super::schema::PAGE_SIZE`]),
//! whatever the source's: restoring from a backup is how an older ledger gets it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::check_database;

/// What a finished backup holds.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub dest: PathBuf,
    pub bytes: u64,
    pub coupons: i64,
    pub elapsed: Duration,
}

/// Copies `db` to `dest` (which must not exist) and verifies the copy.
pub fn backup(db: &Path, dest: &Path) -> Result<BackupReport, String> {
    backup_with(db, dest, &mut |_| {})
}

/// [`backup`], telling `step` what it is doing (copy, sync, check, rename),
/// for a progress line.
pub fn backup_with(
    db: &Path,
    dest: &Path,
    step: &mut dyn FnMut(&str),
) -> Result<BackupReport, String> {
    let started = Instant::now();
    if !db.exists() {
        return Err(format!("{}: no such database", db.display()));
    }
    if dest.exists() {
        return Err(format!(
            "{}: already exists; choose a new file (a backup never overwrites)",
            dest.display()
        ));
    }
    let mut partial = dest.as_os_str().to_os_string();
    partial.push(format!(".partial-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let result = copy_and_verify(db, &partial, dest, step);
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let coupons = result?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport {
        dest: dest.to_path_buf(),
        bytes,
        coupons,
        elapsed: started.elapsed(),
    })
}

fn copy_and_verify(
    db: &Path,
    partial: &Path,
    dest: &Path,
    step: &mut dyn FnMut(&str),
) -> Result<i64, String> {
    step("copying one consistent snapshot (VACUUM INTO)");
    let source = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    // The copy is written with the page size of a new database.
    source
        .execute_batch(&format!(
            "PRAGMA busy_timeout = 5000; PRAGMA page_size = {};",
            super::schema::PAGE_SIZE
        ))
        .map_err(|e| format!("cannot read {}: {e}", db.display()))?;
    let target = partial
        .to_str()
        .ok_or_else(|| format!("{}: the path is not UTF-8", partial.display()))?;
    source
        .execute("VACUUM INTO ?1", [target])
        .map_err(|e| format!("cannot copy {} to {}: {e}", db.display(), partial.display()))?;
    drop(source);
    step("syncing the copy to disk");
    File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
    step("checking every ledger invariant on the copy");
    let violations = check_database(partial)?;
    if !violations.is_empty() {
        return Err(format!(
            "the copy fails the ledger checks ({} violations, first: {}); kept nothing",
            violations.len(),
            violations[0]
        ));
    }
    let coupons = Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM coupons", [], |r| r.get(0)))
        .map_err(|e| format!("cannot read {}: {e}", partial.display()))?;
    step("renaming into place");
    std::fs::rename(partial, dest).map_err(|e| {
        format!(
            "cannot rename {} to {}: {e}",
            partial.display(),
            dest.display()
        )
    })?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is synced.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(coupons)
}

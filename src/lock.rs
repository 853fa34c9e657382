//! One server per database: an exclusive OS file lock on `DB.lock`, held for
//! the life of the process (the kernel drops it when the process ends, even
//! after `kill -9`). The file holds the holder's pid, for the refusal message.
//!
//! `DB` is the database's resolved path, not the name it was given: a
//! symlink, `..` or a relative name of the same file takes the same lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The held lock of one database; released when dropped.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
    path: PathBuf,
}

/// How long a lock held by someone else is waited for before refusing. A
/// process that just exited, or a child forked elsewhere between fork and
/// exec, can hold it for a moment; a running server holds it for good.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);

fn try_lock_briefly(file: &File) -> Result<(), TryLockError> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

/// `ledger.db` → `ledger.db.lock`, beside the database's resolved path.
pub fn lock_path(db: &Path) -> Result<PathBuf, String> {
    let real = resolve(db, MAX_SYMLINKS)
        .map_err(|e| format!("cannot resolve the database path {}: {e}", db.display()))?;
    let mut name = real.into_os_string();
    name.push(".lock");
    Ok(PathBuf::from(name))
}

/// Symlinks followed at most while resolving a database path, as the kernel does.
const MAX_SYMLINKS: u32 = 40;

/// The path `db` names with every symlink and `.`/`..` resolved. The database
/// need not exist yet (it is created on open): then its directory is
/// resolved and its name joined, after following a symlink that points to
/// the file to be created.
fn resolve(db: &Path, links_left: u32) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        done => return done,
    }
    let name = db
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let is_link = std::fs::symlink_metadata(db).is_ok_and(|m| m.file_type().is_symlink());
    if is_link && links_left > 0 {
        // A dangling symlink: the database will be created where it points.
        return resolve(&dir.join(std::fs::read_link(db)?), links_left - 1);
    }
    Ok(std::fs::canonicalize(dir)?.join(name))
}

impl DbLock {
    /// Takes the lock of `db` without waiting; refuses with one line naming
    /// the database and the holder's pid when another process holds it.
    pub fn acquire(db: &Path) -> Result<DbLock, String> {
        let path = lock_path(db)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open lock file {}: {e}", path.display()))?;
        match try_lock_briefly(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "another process".to_string(),
                    pid => format!("another process (pid {pid})"),
                };
                return Err(format!(
                    "database {} is in use by {holder}; stop it first, or use the running server's admin API (lock file {})",
                    db.display(),
                    path.display()
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        let pid = std::process::id();
        let written = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"))
            .and_then(|_| file.flush());
        if let Err(e) = written {
            return Err(format!("cannot write lock file {}: {e}", path.display()));
        }
        Ok(DbLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_database_is_refused_with_the_pid() {
        let dir = std::env::temp_dir().join(format!("cl-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("x.db");
        let first = DbLock::acquire(&db).unwrap();
        let e = DbLock::acquire(&db).unwrap_err();
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("x.db"), "{e}");
        drop(first);
        DbLock::acquire(&db).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_name_of_one_database_has_the_same_lock_file() {
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("cl-lock-names-{}", std::process::id()));
        let real = dir.join("real");
        std::fs::create_dir_all(&real).unwrap();
        symlink(&real, dir.join("alias")).unwrap();
        symlink("real/x.db", dir.join("link.db")).unwrap();
        let want = std::fs::canonicalize(&real).unwrap().join("x.db.lock");
        // Before the database exists, and after.
        for create in [false, true] {
            if create {
                std::fs::write(real.join("x.db"), b"").unwrap();
            }
            for name in ["real/x.db", "alias/x.db", "link.db", "real/../alias/./x.db"] {
                assert_eq!(lock_path(&dir.join(name)).unwrap(), want, "{name}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

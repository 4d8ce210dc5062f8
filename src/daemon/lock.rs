//! One daemon per publish log. Two daemons on the same database would both publish the same
//! queue (each thinks the other's attempts are its own interrupted ones), so the daemon
//! holds an exclusive `flock` on `<database>.lock`, beside the database, for as long as it
//! runs, and writes its process id into it for the message a second one prints.
//!
//! `flock` rather than a PID file alone: the kernel drops the lock when the holder exits in
//! any way (SIGKILL, a crash), so a stale file never keeps the daemon from starting, and the
//! file is opened close-on-exec, so programs the `exec` adapter runs do not inherit it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    /// A daemon held this lock before (the file named a process): this database has a
    /// history, and a missing database file is a loss, not a first start.
    pub ran_before: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another cadenced{} is already running on the publish log {}: stop it first \
         (`systemctl stop cadenced`), or give this one a `database` of its own \
         (lock file {})",
        .pid.map(|p| format!(" (process {p})")).unwrap_or_default(),
        .database.display(),
        .lock.display()
    )]
    Held {
        database: PathBuf,
        lock: PathBuf,
        pid: Option<u32>,
    },
    #[error("cannot lock {}: {source}; the state folder must be writable by the daemon", .lock.display())]
    Io {
        lock: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `<database>.lock`, beside the database.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    database.with_file_name(name)
}

impl DaemonLock {
    /// Takes the lock for `database` (creating its folder, like the store does), or says
    /// which process holds it.
    pub fn acquire(database: &Path) -> Result<DaemonLock, LockError> {
        let lock = lock_path(database);
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        if let Some(parent) = lock.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io)?;
        let locked = file.try_lock();
        let mut text = String::new();
        // At most a line: the file is ours, but anyone could have written to it.
        let _ = (&file).take(64).read_to_string(&mut text);
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    database: database.to_path_buf(),
                    lock,
                    pid: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(DaemonLock {
            _file: file,
            ran_before: !text.trim().is_empty(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state/cadenced.sqlite");
        let first = DaemonLock::acquire(&db).unwrap();
        assert!(!first.ran_before);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("state/cadenced.sqlite.lock")).unwrap(),
            format!("{}\n", std::process::id())
        );
        let err = DaemonLock::acquire(&db).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!(
                "another cadenced (process {}) is already running on the publish log",
                std::process::id()
            )),
            "{msg}"
        );
        assert!(msg.contains("state/cadenced.sqlite.lock"), "{msg}");
        // Another database beside it is another daemon's business.
        let _other = DaemonLock::acquire(&dir.path().join("state/other.sqlite")).unwrap();
        drop(first);
        let again = DaemonLock::acquire(&db).unwrap();
        assert!(
            again.ran_before,
            "the lock file says a daemon ran on this database"
        );
    }
}

//! [`RunLock`]: one process at a time trains in a run directory.
//!
//! The lock is a file `<run>/lock` created exclusively (`O_CREAT | O_EXCL`, atomic on POSIX
//! filesystems, NFS included) holding the holder's host, pid and start time as JSON. It is
//! removed when the [`RunLock`] is dropped. A lock left by a process that died without removing
//! it (SIGKILL, power loss) is *stale*: on the same host, a lock whose pid no longer runs is
//! taken over with a message; a lock of another host is never taken over (its process cannot
//! be checked from here) and is reported with what it says.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Name of the lock file in a run directory.
pub const LOCK_FILE: &str = "lock";

/// Who holds a lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Host name of the holder.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// When it took the lock, seconds since the Unix epoch.
    pub since_unix: u64,
}

impl LockHolder {
    /// This process.
    pub fn this_process() -> Self {
        Self {
            host: host_name(),
            pid: std::process::id(),
            since_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// Whether the holder is known to be gone: it ran on this host and its pid no longer runs.
    pub fn is_stale(&self) -> bool {
        self.host == host_name() && !pid_is_running(self.pid)
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs().saturating_sub(self.since_unix))
            .unwrap_or(0);
        write!(
            f,
            "process {} on host {} (since {age} s ago)",
            self.pid, self.host
        )
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`, then `$HOSTNAME`, else `localhost`).
pub fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether process `pid` runs on this host. Where `/proc` is missing it answers `true`, so a
/// lock is never taken from a process that might still run.
pub fn pid_is_running(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    match fs::read_to_string(proc_root.join(pid.to_string()).join("stat")) {
        // A zombie (state `Z`) has exited; it only waits for its parent to reap it.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The lock on a run directory, held until dropped.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    holder: LockHolder,
}

impl RunLock {
    /// Takes the lock of run directory `dir` (which must exist). A stale lock of this host is
    /// taken over, saying so on stderr; a live one (or another host's) is an error naming its
    /// holder and the lock file.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let me = LockHolder::this_process();
        for _attempt in 0..5 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    let json = serde_json::to_vec(&me).context("cannot serialise the lock")?;
                    f.write_all(&json)
                        .and_then(|()| f.sync_all())
                        .with_context(|| format!("cannot write the run lock {}", path.display()))?;
                    return Ok(Self { path, holder: me });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create the run lock {}", path.display()));
                }
            }
            match read_holder(&path) {
                // Removed in between: try again.
                Ok(None) => continue,
                Ok(Some(holder)) if holder.is_stale() => {
                    eprintln!(
                        "fbrl: taking over the stale lock {} of {holder}, which no longer runs",
                        path.display()
                    );
                    match fs::remove_file(&path) {
                        Ok(()) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            return Err(e).with_context(|| {
                                format!("cannot remove the stale run lock {}", path.display())
                            });
                        }
                    }
                }
                Ok(Some(holder)) => bail!(
                    "{} is in use: {holder} holds its lock {} (another `fbrl train` or \
                     experiment worker is training this run); wait for it to finish, or stop \
                     it; if that process is gone, delete the lock file",
                    dir.display(),
                    path.display()
                ),
                // A lock being written right now reads as empty or partial: give it a moment.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        match read_holder(&path) {
            Ok(Some(holder)) => bail!(
                "{} is in use: {holder} holds its lock {}",
                dir.display(),
                path.display()
            ),
            _ => bail!(
                "cannot take the run lock {}: it exists but does not say who holds it; if no \
                 process trains this run, delete it",
                path.display()
            ),
        }
    }

    /// [`RunLock::acquire`], except that a lock held by process `from` of this host is taken
    /// over (the file rewritten atomically with this process as holder): a parent that decided
    /// about the run under its lock hands it to the worker it started, with no moment in
    /// which another process could take it.
    pub fn acquire_from(dir: &Path, from: Option<u32>) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        if let Some(from) = from
            && let Ok(Some(holder)) = read_holder(&path)
            && holder.host == host_name()
            && holder.pid == from
        {
            let me = LockHolder::this_process();
            let tmp = dir.join(format!("{LOCK_FILE}.{}.tmp", me.pid));
            let json = serde_json::to_vec(&me).context("cannot serialise the lock")?;
            fs::write(&tmp, &json)
                .and_then(|()| fs::rename(&tmp, &path))
                .with_context(|| format!("cannot take over the run lock {}", path.display()))?;
            return Ok(Self { path, holder: me });
        }
        Self::acquire(dir)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Only remove the file if it is still ours (it may have been deleted by hand and
        // taken by another process since).
        if let Ok(Some(holder)) = read_holder(&self.path)
            && holder == self.holder
        {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Who holds the lock of run directory `dir`, unless nobody does or the holder is known to be
/// gone (see [`LockHolder::is_stale`]).
pub fn live_holder(dir: &Path) -> Option<LockHolder> {
    match read_holder(&dir.join(LOCK_FILE)) {
        Ok(Some(holder)) if !holder.is_stale() => Some(holder),
        _ => None,
    }
}

/// The holder written in a lock file; `None` if the file does not exist.
fn read_holder(path: &Path) -> Result<Option<LockHolder>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("run lock {} is not readable", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read the run lock {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        let e = format!("{:#}", RunLock::acquire(dir.path()).unwrap_err());
        assert!(
            e.contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        assert!(e.contains(LOCK_FILE), "{e}");
        drop(lock);
        assert!(!dir.path().join(LOCK_FILE).exists());
        let _again = RunLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_lock_is_handed_over_only_by_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        // A live process of this host (the parent of this test) holds the lock.
        let parent = LockHolder {
            host: host_name(),
            pid: std::os::unix::process::parent_id(),
            since_unix: 0,
        };
        fs::write(&path, serde_json::to_vec(&parent).unwrap()).unwrap();
        // Named as the one handing over: taken, and this process is now the holder.
        let lock = RunLock::acquire_from(dir.path(), Some(parent.pid)).unwrap();
        let holder = read_holder(&path).unwrap().unwrap();
        assert_eq!(holder.pid, std::process::id());
        drop(lock);
        assert!(!path.exists());
        // Not named: the live holder keeps it.
        fs::write(&path, serde_json::to_vec(&parent).unwrap()).unwrap();
        let e = format!(
            "{:#}",
            RunLock::acquire_from(dir.path(), Some(parent.pid + 1)).unwrap_err()
        );
        assert!(e.contains("is in use"), "{e}");
        assert!(RunLock::acquire_from(dir.path(), None).is_err());
    }

    #[test]
    fn a_stale_lock_of_this_host_is_taken_over_and_another_hosts_is_not() {
        let dir = tempfile::tempdir().unwrap();
        // A child that has exited and been reaped: its pid no longer runs.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = LockHolder {
            host: host_name(),
            pid: dead,
            since_unix: 0,
        };
        assert!(stale.is_stale());
        let path = dir.path().join(LOCK_FILE);
        fs::write(&path, serde_json::to_vec(&stale).unwrap()).unwrap();
        let lock = RunLock::acquire(dir.path()).unwrap();
        drop(lock);

        let remote = LockHolder {
            host: format!("{}-elsewhere", host_name()),
            pid: dead,
            since_unix: 0,
        };
        fs::write(&path, serde_json::to_vec(&remote).unwrap()).unwrap();
        let e = format!("{:#}", RunLock::acquire(dir.path()).unwrap_err());
        assert!(e.contains("-elsewhere"), "{e}");
    }
}

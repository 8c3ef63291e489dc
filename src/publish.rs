//! Crash-safe publishing: build a directory where no reader looks, then make
//! it appear in one atomic rename.
//!
//! A [`Staging`] directory lives on the destination's filesystem (so the final
//! step is a rename, never a copy): under `<home>/tmp` when the destination is
//! inside the home, else as a hidden `.microsnap-staging-*` entry beside the
//! destination. Listing and reindexing skip hidden entries, so a staging dir
//! is never mistaken for an artifact.
//!
//! Liveness: each staging dir `X` has a lock file `X.lock` that its owner holds
//! an exclusive `flock` on for as long as it lives. The kernel drops the lock
//! when the owner dies, however it dies, so [`clean_stale`] can tell a crashed
//! process's leftovers from a live one's without trusting PIDs (which get
//! reused).
use crate::error::{Error, IoContext, Result};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Every staging entry's file name starts with this.
pub const STAGING_PREFIX: &str = ".microsnap-staging-";
const LOCK_SUFFIX: &str = ".lock";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory being filled, invisible to readers until published. Dropping
/// an unpublished `Staging` removes it.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    lock_path: PathBuf,
    lock: Option<File>,
}

impl Staging {
    /// Stage directly inside `area` (which must exist). `Home::staging_area_for`
    /// picks the area for a destination: on its filesystem, where no reader looks.
    pub fn new(area: &Path, purpose: &str) -> Result<Staging> {
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let base = format!(
                "{STAGING_PREFIX}{purpose}-{}-{n}-{nanos:08x}",
                std::process::id()
            );
            let dir = area.join(&base);
            let lock_path = area.join(format!("{base}{LOCK_SUFFIX}"));
            let lock = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&lock_path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("create staging lock", &lock_path, e)),
            };
            if !try_lock_exclusive(&lock).ctx("lock", &lock_path)? || !same_inode(&lock, &lock_path)
            {
                // A cleaner got between create and lock and removed it: retry
                // under a fresh name.
                continue;
            }
            fs::create_dir(&dir).ctx("create staging", &dir)?;
            return Ok(Staging {
                dir,
                lock_path,
                lock: Some(lock),
            });
        }
        Err(Error::Internal(format!(
            "could not create a staging directory in {}",
            area.display()
        )))
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Atomically rename the staged directory to `dest`, which must not exist.
    pub fn publish(mut self, dest: &Path) -> Result<()> {
        sync_dir(&self.dir)?;
        crate::fault::point("publish.before_rename")?;
        rename_noreplace(&self.dir, dest)?;
        let synced = crate::fault::point("publish.after_rename").and_then(|()| sync_parent(dest));
        if let Err(e) = synced {
            // Not durably published: take it back, so a failed publish
            // leaves nothing behind (Drop removes it from staging).
            let _ = renameat2(dest, &self.dir, libc::RENAME_NOREPLACE);
            return Err(e);
        }
        self.release();
        Ok(())
    }

    /// Put the staged directory at `dest`, replacing what is there. The old
    /// content is swapped out atomically (RENAME_EXCHANGE) and only removed
    /// after the new one is in place, so a crash leaves old or new, never
    /// neither; a swapped-out leftover is stale staging, cleaned on next open.
    /// Returns the staging that now holds the old content (when there was
    /// any): dropping it deletes that, so a caller inside a transaction can
    /// delete it after committing.
    pub fn replace(mut self, dest: &Path) -> Result<Option<Staging>> {
        sync_dir(&self.dir)?;
        crate::fault::point("publish.before_exchange")?;
        match rename_exchange(&self.dir, dest) {
            Ok(()) => {
                let synced =
                    crate::fault::point("publish.after_exchange").and_then(|()| sync_parent(dest));
                if let Err(e) = synced {
                    // Swap the old content back rather than let Drop delete
                    // it under a call that reports failure.
                    let _ = rename_exchange(&self.dir, dest);
                    return Err(e);
                }
                // self.dir now holds the old content; Drop removes it.
                Ok(Some(self))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                rename_noreplace(&self.dir, dest)?;
                sync_parent(dest)?;
                self.release();
                Ok(None)
            }
            Err(e) => Err(Error::io("replace", dest, e)),
        }
    }

    /// Move an existing directory into this staging area (for removal: the
    /// artifact vanishes atomically, and its bytes are deleted afterwards,
    /// by Drop or, after a crash, by the next `clean_stale`).
    pub fn take(&self, victim: &Path) -> Result<()> {
        let into = self.dir.join("victim");
        fs::rename(victim, &into).ctx("move away", victim)?;
        crate::fault::point("publish.take.after_move")?;
        sync_parent(victim)
    }

    fn release(&mut self) {
        let _ = fs::remove_file(&self.lock_path);
        self.lock = None;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = fs::remove_dir_all(&self.dir);
            self.release();
        }
    }
}

/// Remove staging entries in `area` whose owners are gone. Live ones (their
/// lock is held, by this process or another) are left alone. Returns how
/// many were removed: non-zero means some process died mid-operation.
pub fn clean_stale(area: &Path) -> Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(area) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("read", area, e)),
    };
    for entry in entries {
        let entry = entry.ctx("read", area)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(STAGING_PREFIX) || name.ends_with(LOCK_SUFFIX) {
            continue;
        }
        let dir = entry.path();
        let lock_path = area.join(format!("{name}{LOCK_SUFFIX}"));
        match File::open(&lock_path) {
            Ok(lock) => {
                if try_lock_exclusive(&lock).ctx("lock", &lock_path)? {
                    remove_tree(&dir)?;
                    let _ = fs::remove_file(&lock_path);
                    removed += 1;
                }
            }
            // Dirs are only created after their lock is held and are removed
            // before it, so a dir without a lock file is a crashed cleanup.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                remove_tree(&dir)?;
                removed += 1;
            }
            Err(e) => return Err(Error::io("open", &lock_path, e)),
        }
    }
    // Lock files whose directory is gone (crash between the two unlinks).
    for entry in fs::read_dir(area).ctx("read", area)? {
        let entry = entry.ctx("read", area)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name
            .strip_prefix(STAGING_PREFIX)
            .and_then(|n| n.strip_suffix(LOCK_SUFFIX))
        {
            if !area.join(format!("{STAGING_PREFIX}{base}")).exists() {
                if let Ok(lock) = File::open(entry.path()) {
                    if try_lock_exclusive(&lock).unwrap_or(false) {
                        let _ = fs::remove_file(entry.path());
                        removed += 1;
                    }
                }
            }
        }
    }
    Ok(removed)
}

/// True for names that listing and indexing must never treat as artifacts.
pub fn is_staging_name(name: &str) -> bool {
    name.starts_with(STAGING_PREFIX)
}

fn remove_tree(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove stale staging", dir, e)),
    }
}

fn same_inode(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Non-blocking exclusive flock: Ok(false) when someone else holds it.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// renameat2(2) relative to the working directory. `flags` are the kernel's
/// `RENAME_*` bits (callers pass libc's constants).
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    Ok(renameat_with(
        CWD,
        from,
        CWD,
        to,
        RenameFlags::from_bits_retain(flags),
    )?)
}

/// rename that fails if `to` exists (plain rename(2) would silently replace
/// an empty directory there).
fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    use rustix::io::Errno;
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if Errno::from_io_error(&e) == Some(Errno::EXIST) => {
            Err(Error::AlreadyExists(to.display().to_string()))
        }
        Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::INVAL | Errno::NOSYS)) => {
            // Filesystem without RENAME_NOREPLACE: best effort check-then-rename.
            if fs::symlink_metadata(to).is_ok() {
                return Err(Error::AlreadyExists(to.display().to_string()));
            }
            fs::rename(from, to).ctx("publish", to)
        }
        Err(e) => Err(Error::io("publish", to, e)),
    }
}

fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    renameat2(a, b, libc::RENAME_EXCHANGE)
}

/// fsync a directory so a rename or a new entry in it survives a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("sync", dir)
}

/// Start writing `len` bytes of `file` from `offset` (0: to its end) back
/// to disk now, without waiting for it. A file written this way as it is filled is
/// mostly on disk when it is fsynced before publishing, so that fsync is
/// short instead of writing everything at the end. Advisory: the fsync
/// that follows is what makes the data durable, so a failure here is
/// ignored.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain syscall on a descriptor `file` keeps open; it reads
    // no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn publish_is_atomic_and_refuses_existing() {
        let t = tempfile::tempdir().unwrap();
        let s = Staging::new(t.path(), "t").unwrap();
        fs::write(s.path().join("f"), b"new").unwrap();
        let dest = t.path().join("dest");
        s.publish(&dest).unwrap();
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"new");
        assert_eq!(listing(t.path()), vec!["dest"]);

        // An existing (even empty) destination is never replaced by publish.
        let empty = t.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let s = Staging::new(t.path(), "t").unwrap();
        let e = s.publish(&empty).unwrap_err();
        assert_eq!(e.code(), crate::error::ErrorCode::AlreadyExists);
        assert_eq!(listing(t.path()), vec!["dest", "empty"]);
    }

    #[test]
    fn replace_swaps_and_removes_old() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("dest");
        fs::create_dir(&dest).unwrap();
        fs::write(dest.join("f"), b"old").unwrap();
        let s = Staging::new(t.path(), "t").unwrap();
        fs::write(s.path().join("f"), b"new").unwrap();
        drop(s.replace(&dest).unwrap());
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"new");
        assert_eq!(listing(t.path()), vec!["dest"]);
    }

    #[test]
    fn drop_removes_unpublished() {
        let t = tempfile::tempdir().unwrap();
        let s = Staging::new(t.path(), "t").unwrap();
        fs::write(s.path().join("f"), b"x").unwrap();
        drop(s);
        assert!(listing(t.path()).is_empty());
    }

    #[test]
    fn clean_stale_spares_live_and_removes_dead() {
        let t = tempfile::tempdir().unwrap();
        let live = Staging::new(t.path(), "live").unwrap();
        // Simulate a dead owner: a staging dir with an unlocked lock file,
        // and one whose lock file is gone.
        let dead = t.path().join(format!("{STAGING_PREFIX}dead-1"));
        fs::create_dir(&dead).unwrap();
        fs::write(dead.join("upper.ext4"), b"half").unwrap();
        fs::write(t.path().join(format!("{STAGING_PREFIX}dead-1.lock")), b"").unwrap();
        let orphan = t.path().join(format!("{STAGING_PREFIX}orphan-2"));
        fs::create_dir(&orphan).unwrap();
        fs::write(t.path().join("unrelated"), b"keep").unwrap();
        clean_stale(t.path()).unwrap();
        let names = listing(t.path());
        assert!(live.path().exists());
        assert!(!dead.exists() && !orphan.exists(), "{names:?}");
        assert_eq!(names.len(), 3, "{names:?}"); // live dir, its lock, unrelated
        drop(live);
        assert_eq!(listing(t.path()), vec!["unrelated"]);
    }
}

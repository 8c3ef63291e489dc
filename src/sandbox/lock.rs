//! The lock that says a sandbox is running, on `sandboxes/<name>/lock`.
//!
//! It is an open-file-description record lock (`F_OFD_SETLK`) over the whole
//! file, not a `flock`, for one reason: `F_OFD_GETLK` can ask whether a
//! running holder exists *without taking the lock*, so listing sandboxes
//! never makes a concurrent start, snapshot or remove fail. Like a flock it
//! belongs to the open file description, so the kernel drops it when its
//! holder dies, however it dies.
//!
//! Exclusive = running (or being removed); shared = held still for reading
//! (a snapshot copy): several readers at once, and none of them reads as
//! running.
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Exclusive,
    Shared,
}

/// A held lock, released when dropped. It unlocks explicitly rather than
/// just closing: a process forked meanwhile by another thread (any host that
/// spawns processes) shares the open file description until it execs, so a
/// plain close could leave a stopped sandbox reading as running.
#[derive(Debug)]
pub struct SandboxLock(File);

impl Drop for SandboxLock {
    fn drop(&mut self) {
        // On failure the close that follows is the fallback.
        let _ = ofd_lock(&self.0, libc::F_OFD_SETLK, libc::F_UNLCK as libc::c_short);
    }
}

fn whole_file(kind: libc::c_short) -> libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value (l_pid must
    // be 0 for OFD locks, l_start/l_len 0 cover the whole file).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// One fcntl OFD lock call on the whole file; returns the (possibly
/// updated) lock description.
fn ofd_lock(file: &File, cmd: libc::c_int, kind: libc::c_short) -> io::Result<libc::flock> {
    let mut fl = whole_file(kind);
    // SAFETY: a valid descriptor owned by `file`, and a pointer to a live,
    // initialized flock for the duration of the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
    if rc == 0 {
        Ok(fl)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

/// Take the lock without waiting: `Ok(None)` when a conflicting holder exists.
pub fn try_lock(path: &Path, mode: LockMode) -> io::Result<Option<SandboxLock>> {
    let file = open(path)?;
    let kind = match mode {
        LockMode::Exclusive => libc::F_WRLCK,
        LockMode::Shared => libc::F_RDLCK,
    } as libc::c_short;
    match ofd_lock(&file, libc::F_OFD_SETLK, kind) {
        Ok(_) => Ok(Some(SandboxLock(file))),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// True when someone holds the lock exclusively (the sandbox is running).
/// Takes nothing, so it never disturbs a concurrent start or snapshot.
pub fn is_held_exclusively(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    // GETLK asks "could I take a shared lock?": only an exclusive holder
    // conflicts, and it is reported instead of F_UNLCK.
    match ofd_lock(&file, libc::F_OFD_GETLK, libc::F_RDLCK as libc::c_short) {
        Ok(fl) => fl.l_type != libc::F_UNLCK as libc::c_short,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_conflicts_shared_share_and_probing_takes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("lock");
        assert!(!is_held_exclusively(&p));
        let a = try_lock(&p, LockMode::Shared).unwrap().expect("shared");
        let b = try_lock(&p, LockMode::Shared)
            .unwrap()
            .expect("second shared");
        assert!(!is_held_exclusively(&p), "readers are not running");
        assert!(try_lock(&p, LockMode::Exclusive).unwrap().is_none());
        drop((a, b));
        let x = try_lock(&p, LockMode::Exclusive)
            .unwrap()
            .expect("exclusive");
        assert!(is_held_exclusively(&p));
        assert!(try_lock(&p, LockMode::Shared).unwrap().is_none());
        // Probing many times never makes the holder's peers fail.
        for _ in 0..100 {
            assert!(is_held_exclusively(&p));
        }
        drop(x);
        assert!(!is_held_exclusively(&p));
        // A probe in progress does not block a start either.
        let _y = try_lock(&p, LockMode::Exclusive)
            .unwrap()
            .expect("after release");
    }
}

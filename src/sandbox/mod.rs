//! Sandboxes: the disk state and lifecycle record of each sandbox that a
//! runtime boots. microsnap never runs a VM; it owns the upper image, the
//! record, and the lock that says "running".
//!
//! Running means a live [`RunningSandbox`] holds the exclusive lock on
//! `sandboxes/<name>/lock` (see `sandbox_lock`). The kernel releases that lock when its holder dies,
//! so a record that says running while nobody holds the lock is *crashed*.
pub mod lock;

use crate::artifact;
use crate::db::index;
use crate::db::sandbox_table::{self, SandboxRow, SandboxStatus};
use crate::db::Db;
use crate::disk;
use crate::error::{Error, IoContext, Result};
use crate::home::{validate_bare_name, Home};
use crate::image;
use crate::integrity::{self, Algorithm};
use crate::manifest::{DiskFormat, ImagePin};
use crate::progress::Monitor;
use crate::publish::Staging;
use crate::sparse;
use crate::timefmt;
use lock::{LockMode, SandboxLock};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Default size of a fresh upper: 4 GiB, sparse, so it costs nothing until written.
pub const DEFAULT_UPPER_SIZE: u64 = 4 << 30;
const LOCK_FILE: &str = "lock";

/// What a sandbox's state reads as right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxState {
    /// Created and never started.
    Created,
    /// A live handle holds the lock.
    Running,
    Stopped,
    /// Recorded as running but nobody holds the lock: its holder died.
    Crashed,
}

impl SandboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Created => "created",
            SandboxState::Running => "running",
            SandboxState::Stopped => "stopped",
            SandboxState::Crashed => "crashed",
        }
    }
}

/// A sandbox as its record and lock say it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sandbox {
    pub name: String,
    pub state: SandboxState,
    pub image: ImagePin,
    /// Absolute path of the upper image file.
    pub upper_path: PathBuf,
    pub format: DiskFormat,
    pub fstype: String,
    pub size_bytes: u64,
    /// Digest of the snapshot this sandbox was created from.
    pub from_snapshot: Option<String>,
    pub created_at: String,
}

/// Where a new sandbox's disk comes from.
#[derive(Clone, Debug)]
pub enum SandboxSource {
    /// A fresh sparse upper of `size_bytes` (default 4 GiB) on a local image.
    Image {
        image: String,
        size_bytes: Option<u64>,
        fstype: Option<String>,
    },
    /// A private writable copy of a snapshot's upper; its image is the
    /// snapshot's pinned image.
    Snapshot { name_or_path: String },
    /// A copy of an existing upper file (raw or qcow2, detected), on a local image.
    Upper {
        path: PathBuf,
        fstype: String,
        image: String,
    },
}

/// A started sandbox: holds the lock until [`RunningSandbox::stop`] or drop.
/// Dropping without stopping leaves the record "running" with no holder,
/// which reads as crashed, exactly as if the process had died.
#[derive(Debug)]
pub struct RunningSandbox {
    home: Home,
    name: String,
    _lock: SandboxLock,
}

impl RunningSandbox {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Record the sandbox as stopped and release the lock.
    pub fn stop(self) -> Result<()> {
        set_status(self.home.db(), &self.name, SandboxStatus::Stopped)
        // the lock is released when `self` drops here
    }

    pub fn info(&self) -> Result<Sandbox> {
        get(&self.home, &self.name)
    }
}

fn set_status(db: &Db, name: &str, status: SandboxStatus) -> Result<()> {
    db.write(|tx| sandbox_table::set_status(tx, name, status))
}

/// Create a sandbox (never started: call [`start`] to run it).
pub fn create(
    home: &Home,
    name: &str,
    source: &SandboxSource,
    monitor: &Monitor,
) -> Result<Sandbox> {
    validate_bare_name("sandbox", name)?;
    let dest = home.sandboxes_dir().join(name);
    if home.db().read(|c| sandbox_table::get(c, name))?.is_some() || dest.exists() {
        return Err(Error::AlreadyExists(format!("sandbox {name}")));
    }
    // From resolving the image to recording the sandbox, the pin is not in
    // the sandboxes table yet: keep image prune away until it is.
    let _in_use = image::ImageUseGuard::acquire(&home.images_dir())?;
    let staging = Staging::new(&home.staging_area_for(&home.sandboxes_dir())?, "sandbox")?;
    // The snapshot copied, if any: its path and digest, checked again when
    // the sandbox is recorded.
    let mut copied: Option<(PathBuf, String)> = None;
    let row = match source {
        SandboxSource::Image {
            image,
            size_bytes,
            fstype,
        } => {
            let pin = image::resolve(&home.images_dir(), image)?;
            let size = size_bytes.unwrap_or(DEFAULT_UPPER_SIZE);
            // A file length is an off_t: past i64::MAX no filesystem can
            // hold it, and set_len would fail with a bare conversion error.
            if size == 0 || size > i64::MAX as u64 {
                return Err(Error::InvalidArgument(format!(
                    "upper size_bytes {size} is out of range (1 to {})",
                    i64::MAX
                )));
            }
            let fstype = fstype.clone().unwrap_or_else(|| "ext4".to_string());
            let file = upper_file_name(DiskFormat::Raw, &fstype);
            let path = staging.path().join(&file);
            let f = File::create(&path).ctx("create upper", &path)?;
            f.set_len(size).ctx("size upper", &path)?;
            f.sync_all().ctx("sync", &path)?;
            new_row(name, &pin, &file, DiskFormat::Raw, &fstype, size, None)
        }
        SandboxSource::Snapshot { name_or_path } => {
            let art = artifact::resolve(home, name_or_path)?;
            if let Some(why) = art.descriptor.restore_blocker() {
                return Err(Error::Unsupported(format!(
                    "cannot make a sandbox from {}: {why}",
                    art.path.display()
                )));
            }
            let disk = art.disk_upper("sandbox creation")?;
            let d = &art.descriptor;
            let (format, fstype) = match (d.disk_format(), d.fstype()) {
                (Some(format), Some(fstype)) => (format, fstype),
                // A disk upper always has both; disk_upper() refused the rest.
                _ => return Err(Error::Internal("disk upper without format".into())),
            };
            let file = upper_file_name(format, fstype);
            // Copied from the upper the artifact was opened with, so the copy
            // is of that snapshot even if its name is replaced meanwhile.
            let (src, dst) = (art.upper_path(), staging.path().join(&file));
            // Never boot from a corrupted snapshot: recorded integrity is
            // checked, in the same pass as the copy when the algorithm allows.
            let recorded = disk.spec.integrity.as_ref();
            match recorded.map(|i| (i, Algorithm::from_name(&i.algorithm))) {
                Some((rec, Some(algorithm))) => {
                    integrity::copy_and_check_from(
                        disk.file,
                        &src,
                        &dst,
                        algorithm,
                        &rec.digest,
                        monitor,
                    )?;
                }
                _ => {
                    artifact::verify_artifact(&art, monitor)?;
                    sparse::copy_sparse_from(disk.file, &src, &dst, monitor)?;
                }
            }
            copied = Some((art.path.clone(), art.digest.clone()));
            new_row(
                name,
                d.image(),
                &file,
                format,
                fstype,
                disk.spec.size_bytes,
                Some(art.digest.clone()),
            )
        }
        SandboxSource::Upper {
            path,
            fstype,
            image,
        } => {
            if fstype.is_empty() {
                return Err(Error::InvalidArgument("fstype is empty".into()));
            }
            let meta = std::fs::metadata(path).ctx("read upper", path)?;
            if !meta.is_file() {
                return Err(Error::InvalidArgument(format!(
                    "upper {} is not a regular file",
                    path.display()
                )));
            }
            let format = disk::detect_format(path)?;
            disk::check_upper(path, format)?;
            let pin = image::resolve(&home.images_dir(), image)?;
            let file = upper_file_name(format, fstype);
            sparse::copy_sparse(path, &staging.path().join(&file), monitor)?;
            new_row(name, &pin, &file, format, fstype, meta.len(), None)
        }
    };
    crate::fault::point("sandbox.create.after_copy")?;
    monitor.check()?;
    // Hold the new sandbox's lock until its record exists, so a directory
    // without a record is recognisably orphaned (see `remove_orphans`).
    let lock_path = staging.path().join(LOCK_FILE);
    let creating = lock::try_lock(&lock_path, LockMode::Exclusive)
        .ctx("lock", &lock_path)?
        .ok_or_else(|| Error::Internal(format!("new lock {} is held", lock_path.display())))?;
    // Held until recorded: a crash in between leaves it stale, so the next open cleans up.
    let _recording = Staging::new(&home.tmp_dir(), "recording")?;
    staging.publish(&dest)?;
    crate::fault::point("sandbox.create.before_insert")?;
    let recorded = home.db().write(|tx| {
        // A snapshot removed since it was copied (a prune, which keeps what
        // a recorded sandbox was made from) must not be named by the new
        // sandbox: removals decide under this same write lock, so checked
        // here it cannot vanish before the row is in.
        if let Some((path, digest)) = &copied {
            let opens = |p: &Path| artifact::digest_at(p).as_deref() == Some(digest.as_str());
            let present = opens(path)
                || index::find_by_digest(tx, digest)?
                    .iter()
                    .any(|r| opens(Path::new(&r.artifact_path)));
            if !present {
                return Err(Error::SnapshotNotFound(format!(
                    "{} (removed while the sandbox was being created)",
                    path.display()
                )));
            }
        }
        sandbox_table::insert(tx, &row)
    });
    if let Err(e) = recorded {
        // publish refused an existing directory, so the name was ours: the
        // snapshot is gone or the database failed. Leave no directory
        // without a record.
        let _ = std::fs::remove_dir_all(&dest);
        return Err(e);
    }
    // Recorded: release the lock, or the new sandbox would read as running.
    drop(creating);
    get(home, name)
}

fn upper_file_name(format: DiskFormat, fstype: &str) -> String {
    match format {
        DiskFormat::Qcow2 => "upper.qcow2".to_string(),
        DiskFormat::Raw if fstype == "ext4" || fstype.is_empty() => "upper.ext4".to_string(),
        DiskFormat::Raw => format!("upper.{}", sanitize_ext(fstype)),
    }
}

fn sanitize_ext(fstype: &str) -> String {
    let s: String = fstype
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    if s.is_empty() {
        "img".into()
    } else {
        s
    }
}

fn new_row(
    name: &str,
    pin: &ImagePin,
    upper_file: &str,
    format: DiskFormat,
    fstype: &str,
    size: u64,
    from_snapshot: Option<String>,
) -> SandboxRow {
    let created_at = timefmt::now_rfc3339();
    let created_at_unix_nanos = timefmt::parse_rfc3339(&created_at).unwrap_or(0);
    SandboxRow {
        name: name.to_string(),
        status: SandboxStatus::Created,
        image_ref: pin.reference.clone(),
        image_manifest_digest: pin.manifest_digest.clone(),
        upper_file: upper_file.to_string(),
        format: format.as_str().to_string(),
        fstype: fstype.to_string(),
        size_bytes: size,
        from_snapshot,
        created_at,
        created_at_unix_nanos,
    }
}

/// Open the lock file and take the lock, or `SandboxRunning` if a
/// conflicting holder has it.
fn acquire(dir: &Path, name: &str, mode: LockMode) -> Result<SandboxLock> {
    let path = dir.join(LOCK_FILE);
    lock::try_lock(&path, mode)
        .ctx("lock", &path)?
        .ok_or_else(|| Error::SandboxRunning(name.to_string()))
}

/// Start a stopped, crashed or never-started sandbox.
pub fn start(home: &Home, name: &str) -> Result<RunningSandbox> {
    let row = get_row(home, name)?;
    let lock = acquire(
        &home.sandboxes_dir().join(&row.name),
        name,
        LockMode::Exclusive,
    )?;
    set_status(home.db(), name, SandboxStatus::Running)?;
    Ok(RunningSandbox {
        home: home.clone(),
        name: name.to_string(),
        _lock: lock,
    })
}

/// Hold a sandbox still (its lock) while something reads its upper, e.g. a
/// snapshot copy, so it cannot be started meanwhile. Fails with
/// `SandboxRunning` if it is running. The hold is shared: several readers
/// (two snapshots of one sandbox) may hold it at once, and a held sandbox
/// does not read as running.
pub fn hold(home: &Home, name: &str) -> Result<(Sandbox, SandboxLock)> {
    let row = get_row(home, name)?;
    let lock = acquire(
        &home.sandboxes_dir().join(&row.name),
        name,
        LockMode::Shared,
    )?;
    Ok((to_sandbox(home, row, false), lock))
}

/// Mark a sandbox stopped without a live handle: the way to clear a crashed
/// record. A running sandbox (lock held) must be stopped through its handle.
pub fn stop(home: &Home, name: &str) -> Result<Sandbox> {
    {
        let (_, _lock) = hold(home, name)?;
        set_status(home.db(), name, SandboxStatus::Stopped)?;
    }
    // Read back only after releasing the lock: while we hold it, `get`
    // would see a holder and report the sandbox as running.
    get(home, name)
}

fn get_row(home: &Home, name: &str) -> Result<SandboxRow> {
    home.db()
        .read(|c| sandbox_table::get(c, name))?
        .ok_or_else(|| Error::SandboxNotFound(name.to_string()))
}

pub fn get(home: &Home, name: &str) -> Result<Sandbox> {
    let row = get_row(home, name)?;
    let running = is_locked(&home.sandboxes_dir().join(&row.name));
    Ok(to_sandbox(home, row, running))
}

pub fn list(home: &Home) -> Result<Vec<Sandbox>> {
    let rows = home.db().read(sandbox_table::list)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let running = is_locked(&home.sandboxes_dir().join(&row.name));
            to_sandbox(home, row, running)
        })
        .collect())
}

/// Remove a sandbox that is not running: its record and its directory.
pub fn remove(home: &Home, name: &str) -> Result<()> {
    // Exclusive: never pull the directory from under a snapshot copy.
    let row = get_row(home, name)?;
    let dir = home.sandboxes_dir().join(&row.name);
    let lock = acquire(&dir, name, LockMode::Exclusive)?;
    let trash = Staging::new(&home.staging_area_for(&home.sandboxes_dir())?, "remove")?;
    trash.take(&dir)?;
    drop(lock);
    home.db()
        .write(|tx| sandbox_table::delete(tx, name).map(|_| ()))?;
    drop(trash);
    Ok(())
}

/// Remove sandbox directories that have no record and whose lock nobody
/// holds: left by a create that died between publishing the directory and
/// inserting its record (a live create holds the lock). Returns how many.
pub fn remove_orphans(home: &Home) -> Result<usize> {
    let dir = home.sandboxes_dir();
    let mut removed = 0;
    for entry in std::fs::read_dir(&dir).ctx("read", &dir)? {
        let entry = entry.ctx("read", &dir)?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if name.starts_with('.') || home.db().read(|c| sandbox_table::get(c, &name))?.is_some() {
            continue;
        }
        let Ok(lock) = acquire(&entry.path(), &name, LockMode::Exclusive) else {
            continue;
        };
        // Re-check under the lock: a create may have recorded it meanwhile.
        if home.db().read(|c| sandbox_table::get(c, &name))?.is_none() {
            let trash = Staging::new(&home.staging_area_for(&dir)?, "remove")?;
            trash.take(&entry.path())?;
            removed += 1;
        }
        drop(lock);
    }
    Ok(removed)
}

fn is_locked(dir: &Path) -> bool {
    lock::is_held_exclusively(&dir.join(LOCK_FILE))
}

fn to_sandbox(home: &Home, row: SandboxRow, locked: bool) -> Sandbox {
    let state = match (row.status, locked) {
        (_, true) => SandboxState::Running,
        (SandboxStatus::Running, false) => SandboxState::Crashed,
        (SandboxStatus::Created, false) => SandboxState::Created,
        (SandboxStatus::Stopped, false) => SandboxState::Stopped,
    };
    Sandbox {
        upper_path: home.sandboxes_dir().join(&row.name).join(&row.upper_file),
        name: row.name,
        state,
        image: ImagePin {
            reference: row.image_ref,
            manifest_digest: row.image_manifest_digest,
        },
        format: row.format.parse().unwrap_or(DiskFormat::Raw),
        fstype: row.fstype,
        size_bytes: row.size_bytes,
        from_snapshot: row.from_snapshot,
        created_at: row.created_at,
    }
}

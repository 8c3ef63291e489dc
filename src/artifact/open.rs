//! Opening one artifact as one consistent view.
//!
//! Publish, replace and remove change artifacts only by renaming whole
//! directories, and a published descriptor file (`manifest.json` or
//! `snapshot.json`) is never rewritten in place. So an artifact opened as a
//! directory descriptor, with its descriptor file and upper opened through
//! that directory descriptor (`openat`), stays one artifact for as
//! long as the descriptors live: a replace or remove afterwards renames the
//! directory away (and may unlink its files), but what was opened keeps its
//! bytes. Every read of an operation goes through these descriptors, never
//! through the path again, so a reader never mixes two artifacts.
//!
//! The one window left is between opening the directory and opening the
//! files in it: a remove may empty it in between. Then the directory at the
//! path is no longer the one opened, and the open starts again from the path.
use super::descriptor::{ArtifactFormat, Descriptor, DESCRIPTOR_FILES};
use super::Artifact;
use crate::disk;
use crate::error::{Error, Result};
use crate::manifest::read_capped;
use std::ffi::CString;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// How often an open restarts because the directory at the path was
/// replaced or removed under it, before it gives up: each restart means a
/// writer won a race, so this bounds a reader only against a writer that
/// replaces the same name thousands of times in a row.
const MAX_RESTARTS: usize = 64;

/// What one opened artifact holds, shared by clones of it: the upper's file
/// descriptor (one per artifact, so a listing of many stays far from the
/// descriptor limit; none for a checkpoint-state snapshot), and the
/// descriptor file as read.
#[derive(Debug)]
pub(crate) struct View {
    descriptor_bytes: Vec<u8>,
    descriptor_metadata: Metadata,
    upper: Option<File>,
}

impl View {
    pub(crate) fn upper(&self) -> Option<&File> {
        self.upper.as_ref()
    }
    pub(crate) fn descriptor_bytes(&self) -> &[u8] {
        &self.descriptor_bytes
    }
    pub(crate) fn descriptor_metadata(&self) -> &Metadata {
        &self.descriptor_metadata
    }
}

enum Attempt {
    Opened(Box<Artifact>),
    /// The directory at the path changed while it was being opened.
    Moved,
}

/// Open the artifact directory `dir` (absolute) and check its metadata (no
/// hashing): the descriptor parses, the upper is a regular file of the
/// recorded size whose magic agrees with the recorded format, and a qcow2
/// upper has no backing file.
pub(crate) fn open_view(dir: &Path) -> Result<Artifact> {
    for _ in 0..MAX_RESTARTS {
        if let Attempt::Opened(art) = open_once(dir)? {
            return Ok(*art);
        }
    }
    Err(Error::SnapshotNotFound(format!(
        "{} (replaced or removed {MAX_RESTARTS} times while being opened)",
        dir.display()
    )))
}

fn open_once(dir: &Path) -> Result<Attempt> {
    let dir_file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::SnapshotNotFound(dir.display().to_string()))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            return Err(Error::InvalidArgument(format!(
                "{} is not a directory",
                dir.display()
            )))
        }
        Err(e) => return Err(Error::io("open", dir, e)),
    };
    let Some((format, descriptor_file)) = open_descriptor_file(&dir_file, dir)? else {
        let names = DESCRIPTOR_FILES.map(|(_, name)| name).join(" or ");
        return vanished(
            &dir_file,
            dir,
            Error::SnapshotNotFound(format!("{} (no {names})", dir.display())),
        );
    };
    let descriptor_path = dir.join(format.descriptor_file());
    let descriptor_bytes = read_capped(&descriptor_file, &descriptor_path)?;
    let (descriptor, digest) =
        Descriptor::parse(format, &descriptor_bytes).map_err(|e| match e {
            Error::InvalidManifest(msg) => {
                Error::InvalidManifest(format!("{}: {msg}", descriptor_path.display()))
            }
            other => other,
        })?;
    let descriptor_metadata = descriptor_file
        .metadata()
        .map_err(|e| Error::io("stat", &descriptor_path, e))?;
    drop(descriptor_file);
    let upper_spec = descriptor.upper();
    let upper = match &upper_spec {
        None => None,
        Some(spec) => {
            let upper_path = dir.join(&spec.file);
            let upper = match open_in(&dir_file, &spec.file, libc::O_NOFOLLOW) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return vanished(
                        &dir_file,
                        dir,
                        Error::InvalidManifest(format!(
                            "missing upper file {}",
                            upper_path.display()
                        )),
                    );
                }
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                    return Err(not_regular(&upper_path));
                }
                // `upper.ext4/` passes both formats' name check (a trailing
                // separator is not a path component) but names no file.
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                    return Err(not_regular(&upper_path));
                }
                Err(e) => return Err(Error::io("open", &upper_path, e)),
            };
            let meta = upper
                .metadata()
                .map_err(|e| Error::io("stat", &upper_path, e))?;
            if !meta.file_type().is_file() {
                return Err(not_regular(&upper_path));
            }
            if meta.len() != spec.size_bytes {
                return Err(Error::IntegrityMismatch {
                    path: upper_path.display().to_string(),
                    expected: format!("size {}", spec.size_bytes),
                    actual: format!("size {}", meta.len()),
                });
            }
            if let Some(disk_format) = descriptor.disk_format() {
                disk::check_upper_file(&upper, &upper_path, disk_format)?;
            }
            Some(upper)
        }
    };
    Ok(Attempt::Opened(Box::new(Artifact {
        path: dir.to_path_buf(),
        digest,
        descriptor,
        upper_spec,
        view: Arc::new(View {
            descriptor_bytes,
            descriptor_metadata,
            upper,
        }),
    })))
}

/// Open the first descriptor file of [`DESCRIPTOR_FILES`] that `dir` holds.
fn open_descriptor_file(dir_file: &File, dir: &Path) -> Result<Option<(ArtifactFormat, File)>> {
    for (format, name) in DESCRIPTOR_FILES {
        match open_in(dir_file, name, 0) {
            Ok(f) => return Ok(Some((format, f))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("open", &dir.join(name), e)),
        }
    }
    Ok(None)
}

/// The identity of the artifact now at `dir`, if one opens there: for a
/// check under a lock that the artifact at a path is still the one opened.
pub(crate) fn digest_at(dir: &Path) -> Option<String> {
    open_view(dir).ok().map(|a| a.digest)
}

fn not_regular(upper: &Path) -> Error {
    Error::InvalidManifest(format!("upper {} is not a regular file", upper.display()))
}

/// A file of the opened directory is missing: the directory was replaced or
/// removed meanwhile (open again from the path), or the artifact really
/// lacks it (`missing`).
fn vanished(opened: &File, path: &Path, missing: Error) -> Result<Attempt> {
    if moved(opened, path)? {
        Ok(Attempt::Moved)
    } else {
        Err(missing)
    }
}

/// Whether the directory now at `path` is not the one `opened` (renamed away,
/// replaced, or removed).
fn moved(opened: &File, path: &Path) -> Result<bool> {
    let mine = opened.metadata().map_err(|e| Error::io("stat", path, e))?;
    Ok(match std::fs::metadata(path) {
        Ok(now) => now.dev() != mine.dev() || now.ino() != mine.ino(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::io("stat", path, e)),
    })
}

/// `openat(dir, name, O_RDONLY | O_CLOEXEC | extra)`: `name` is one plain
/// file name (the manifest guarantees it for the upper).
fn open_in(dir: &File, name: &str, extra: libc::c_int) -> io::Result<File> {
    let c_name = CString::new(Path::new(name).as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file name contains NUL"))?;
    // SAFETY: `dir` is an open descriptor for the call's duration and
    // `c_name` a valid NUL-terminated string.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC | extra,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

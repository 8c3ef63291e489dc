//! One snapshot artifact: a directory holding its descriptor
//! (`manifest.json` of microsandbox v0.6.3 or `snapshot.json` of v0.6.14,
//! see `descriptor`) and the upper file. This module opens and checks one
//! (`open_dir`), lists a directory of them (`list_dir`), resolves what a user
//! typed to one (`reference`), verifies its recorded integrity (`verify`) and
//! keeps its index row in step (`indexing`). Snapshot and sandbox operations
//! both build on it.
mod descriptor;
mod indexing;
mod open;
mod reference;
mod verify;

pub use descriptor::{
    has_descriptor, integrity_for_v0614, ArtifactFormat, Descriptor, DESCRIPTOR_FILES,
};
pub use indexing::{bare_name_of, index_artifact, row_for};
pub(crate) use open::digest_at;
pub use reference::{locate, open, resolve, resolve_digest, Locator};
pub use verify::{verify_artifact, verify_artifact_with, UpperVerifyStatus, VerifyReport};

use crate::error::{Error, IoContext, Result};
use crate::manifest::Upper;
use open::View;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A snapshot artifact on disk whose metadata has been checked, held open:
/// its reads go through the descriptors opened with it (see `open`), so it
/// stays the artifact it was when opened, whatever is renamed over its path.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// Absolute path of the artifact directory (where it was when opened).
    pub path: PathBuf,
    /// Canonical descriptor digest (`sha256:...`): the snapshot's identity.
    pub digest: String,
    pub descriptor: Descriptor,
    /// `descriptor.upper()`, worked out once.
    upper_spec: Option<Upper>,
    view: Arc<View>,
}

/// An artifact's upper: what the descriptor says of it, and the file as
/// opened with the artifact.
#[derive(Clone, Copy, Debug)]
pub struct DiskUpper<'a> {
    pub spec: &'a Upper,
    pub file: &'a File,
}

impl Artifact {
    /// The format of the artifact's descriptor.
    pub fn format(&self) -> ArtifactFormat {
        self.descriptor.format()
    }

    /// The v0.6.3 manifest, for an artifact in that format.
    pub fn manifest(&self) -> Option<&crate::manifest::Manifest> {
        match &self.descriptor {
            Descriptor::Manifest(m) => Some(m),
            Descriptor::Snapshot(_) => None,
        }
    }

    /// The upper as the descriptor records it; `None` for a checkpoint-state
    /// (v0.6.14) snapshot, which has no payload in its directory.
    pub fn upper_spec(&self) -> Option<&Upper> {
        self.upper_spec.as_ref()
    }

    /// Where the upper was when the artifact was opened (for messages;
    /// reads go through [`Artifact::disk_upper`]). The directory itself for
    /// a snapshot without an upper.
    pub fn upper_path(&self) -> PathBuf {
        match &self.upper_spec {
            Some(u) => self.path.join(&u.file),
            None => self.path.clone(),
        }
    }

    /// The upper for an operation (`what`, e.g. "verify") that reads it, or
    /// `Unsupported` for a snapshot that has none.
    pub fn disk_upper(&self, what: &str) -> Result<DiskUpper<'_>> {
        match (&self.upper_spec, self.view.upper()) {
            (Some(spec), Some(file)) => Ok(DiskUpper { spec, file }),
            _ => Err(Error::Unsupported(format!(
                "{what} of {}: it is a checkpoint-state snapshot (microsandbox v0.6.14), \
                 which has no disk upper; checkpoint-state snapshot {what} is not available",
                self.path.display()
            ))),
        }
    }

    /// The descriptor file's bytes as read when the artifact was opened.
    pub fn descriptor_bytes(&self) -> &[u8] {
        self.view.descriptor_bytes()
    }

    /// The metadata of the descriptor file as opened (its mode and mtime go
    /// into archives).
    pub fn descriptor_metadata(&self) -> &std::fs::Metadata {
        self.view.descriptor_metadata()
    }

    /// The same artifact, reported at `path`: for one just opened in staging
    /// and then renamed there (the descriptors follow the rename).
    pub(crate) fn moved_to(mut self, path: PathBuf) -> Artifact {
        self.path = path;
        self
    }
}

/// Two artifacts are equal when they are the same snapshot at the same path.
impl PartialEq for Artifact {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
            && self.digest == other.digest
            && self.descriptor == other.descriptor
    }
}
impl Eq for Artifact {}

/// Artifacts of one directory, plus the entries that could not be read.
#[derive(Debug, Default)]
pub struct DirListing {
    pub artifacts: Vec<Artifact>,
    pub skipped: Vec<(PathBuf, Error)>,
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).ctx("resolve", p)
}

/// Open the artifact directory `dir` and check its metadata (no hashing):
/// the manifest parses, the upper is a regular file of the recorded size
/// whose magic agrees with the recorded format, and a qcow2 upper has no
/// backing file. A directory that is replaced or removed while it is being
/// opened reads as the one found after (or as not found), never as a mix.
pub fn open_dir(dir: &Path) -> Result<Artifact> {
    open::open_view(&absolute(dir)?)
}

/// Parse every artifact directly inside `dir` without touching the index.
/// Unreadable or malformed entries are reported in `skipped`, not fatal.
/// Each artifact holds its upper open: for a directory of thousands, use
/// [`for_each_in_dir`], which holds one at a time.
pub fn list_dir(dir: &Path) -> Result<DirListing> {
    let mut out = DirListing::default();
    for_each_in_dir(dir, |path, opened| {
        match opened {
            Ok(a) => out.artifacts.push(a),
            Err(e) => out.skipped.push((path, e)),
        }
        Ok(Visit::Continue)
    })?;
    Ok(out)
}

/// What a [`for_each_in_dir`] visitor wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visit {
    Continue,
    Stop,
}

/// Open each artifact directly inside `dir` in name order, hidden entries
/// skipped, and hand it (or why it could not be opened) to `f` with its
/// path; each is closed again unless `f` keeps it. An error from `f` stops
/// the walk and is returned.
pub fn for_each_in_dir(
    dir: &Path,
    mut f: impl FnMut(PathBuf, Result<Artifact>) -> Result<Visit>,
) -> Result<()> {
    let dir = absolute(dir)?;
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::InvalidArgument(format!(
                "no such directory: {}",
                dir.display()
            )))
        }
        Err(e) => return Err(Error::io("read", &dir, e)),
    };
    let mut paths = Vec::new();
    for entry in rd {
        let entry = entry.ctx("read", &dir)?;
        let name = entry.file_name();
        let hidden = name.to_string_lossy().starts_with('.');
        if hidden || !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        paths.push(entry.path());
    }
    paths.sort();
    for p in paths {
        let opened = open_dir(&p);
        if f(p, opened)? == Visit::Stop {
            break;
        }
    }
    Ok(())
}

/// An artifact that vanished under us (a concurrent remove won the race) is
/// `snapshot_not_found`, not an I/O failure.
pub(crate) fn removed_meanwhile(e: Error, reference: &str) -> Error {
    match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Error::SnapshotNotFound(format!("{reference} (removed concurrently)"))
        }
        _ => e,
    }
}

//! One snapshot artifact: a directory holding `manifest.json` and the upper
//! file. This module opens and checks one (`open_dir`), lists a directory of
//! them (`list_dir`), resolves what a user typed to one (`reference`),
//! verifies its recorded integrity (`verify`) and keeps its index row in step
//! (`indexing`). Snapshot and sandbox operations both build on it.
mod indexing;
mod open;
mod reference;
mod verify;

pub use indexing::{bare_name_of, index_artifact, row_for};
pub use reference::{locate, open, resolve, resolve_digest, Locator};
pub use verify::{verify_artifact, verify_artifact_with, UpperVerifyStatus, VerifyReport};

use crate::error::{Error, IoContext, Result};
use crate::manifest::Manifest;
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
    /// Canonical manifest digest (`sha256:...`): the snapshot's identity.
    pub digest: String,
    pub manifest: Manifest,
    view: Arc<View>,
}

impl Artifact {
    /// Where the upper was when the artifact was opened (for messages, and
    /// for callers that want the path; reads should use [`Artifact::upper`]).
    pub fn upper_path(&self) -> PathBuf {
        self.path.join(&self.manifest.upper.file)
    }

    /// The upper file as opened with the artifact.
    pub fn upper(&self) -> &File {
        self.view.upper()
    }

    /// `manifest.json`'s bytes as read when the artifact was opened.
    pub fn manifest_bytes(&self) -> &[u8] {
        self.view.manifest_bytes()
    }

    /// The metadata of `manifest.json` as opened (its mode and mtime go into
    /// archives).
    pub fn manifest_metadata(&self) -> &std::fs::Metadata {
        self.view.manifest_metadata()
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
        self.path == other.path && self.digest == other.digest && self.manifest == other.manifest
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

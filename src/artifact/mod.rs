//! One snapshot artifact: a directory holding `manifest.json` and the upper
//! file. This module opens and checks one (`open_dir`), lists a directory of
//! them (`list_dir`), resolves what a user typed to one (`reference`),
//! verifies its recorded integrity (`verify`) and keeps its index row in step
//! (`indexing`). Snapshot and sandbox operations both build on it.
mod indexing;
mod reference;
mod verify;

pub use indexing::{index_artifact, row_for};
pub use reference::{artifact_dir, locate, open, resolve, resolve_digest, Locator};
pub use verify::{verify_artifact, verify_artifact_with, UpperVerifyStatus, VerifyReport};

use crate::disk;
use crate::error::{Error, IoContext, Result};
use crate::manifest::{Manifest, MANIFEST_FILE};
use std::path::{Path, PathBuf};

/// A snapshot artifact on disk whose metadata has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// Absolute path of the artifact directory.
    pub path: PathBuf,
    /// Canonical manifest digest (`sha256:...`): the snapshot's identity.
    pub digest: String,
    pub manifest: Manifest,
}

impl Artifact {
    pub fn upper_path(&self) -> PathBuf {
        self.path.join(&self.manifest.upper.file)
    }
}


/// Artifacts of one directory, plus the entries that could not be read.
#[derive(Debug, Default)]
pub struct DirListing {
    pub artifacts: Vec<Artifact>,
    pub skipped: Vec<(PathBuf, Error)>,
}


pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).ctx("resolve", p)
}

/// Check an artifact directory's metadata (no hashing): the manifest parses,
/// the upper is a regular file of the recorded size whose magic agrees with
/// the recorded format, and a qcow2 upper has no backing file.
pub fn open_dir(dir: &Path) -> Result<Artifact> {
    let dir = absolute(dir)?;
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::InvalidArgument(format!(
                "{} is not a directory",
                dir.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::SnapshotNotFound(dir.display().to_string()))
        }
        Err(e) => return Err(Error::io("open", &dir, e)),
    }
    if !dir.join(MANIFEST_FILE).exists() {
        return Err(Error::SnapshotNotFound(format!(
            "{} (no {MANIFEST_FILE})",
            dir.display()
        )));
    }
    // A concurrent remove may move the directory away at any point below:
    // that reads as not found, not as a malformed artifact.
    let gone = || Error::SnapshotNotFound(format!("{} (removed concurrently)", dir.display()));
    let (manifest, digest) = Manifest::read_dir(&dir).map_err(|e| {
        if dir.join(MANIFEST_FILE).exists() {
            e
        } else {
            gone()
        }
    })?;
    let upper = dir.join(&manifest.upper.file);
    let meta = match std::fs::symlink_metadata(&upper) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.join(MANIFEST_FILE).exists() => {
            return Err(gone())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::InvalidManifest(format!(
                "missing upper file {}",
                upper.display()
            )))
        }
        Err(e) => return Err(Error::io("stat", &upper, e)),
    };
    if !meta.file_type().is_file() {
        return Err(Error::InvalidManifest(format!(
            "upper {} is not a regular file",
            upper.display()
        )));
    }
    if meta.len() != manifest.upper.size_bytes {
        return Err(Error::IntegrityMismatch {
            path: upper.display().to_string(),
            expected: format!("size {}", manifest.upper.size_bytes),
            actual: format!("size {}", meta.len()),
        });
    }
    disk::check_upper(&upper, manifest.format)?;
    Ok(Artifact {
        path: dir,
        digest,
        manifest,
    })
}


/// Parse every artifact directly inside `dir` without touching the index.
/// Unreadable or malformed entries are reported in `skipped`, not fatal.
pub fn list_dir(dir: &Path) -> Result<DirListing> {
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
    let mut out = DirListing::default();
    for p in paths {
        match open_dir(&p) {
            Ok(a) => out.artifacts.push(a),
            Err(e) => out.skipped.push((p, e)),
        }
    }
    Ok(out)
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


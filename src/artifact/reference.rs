//! What a user-supplied snapshot reference means: a bare name, a path or a
//! digest, and the artifact it resolves to.
use super::{absolute, index_artifact, list_dir, open_dir, Artifact};
use crate::db::index;
use crate::error::{Error, Result};
use crate::home::{validate_bare_name, Home};
use std::path::{Path, PathBuf};

/// What a user-supplied reference means.
pub enum Locator {
    Path(PathBuf),
    Digest(String),
    Name(String),
}

pub fn locate(s: &str) -> Result<Locator> {
    if s.is_empty() {
        return Err(Error::InvalidArgument("empty snapshot reference".into()));
    }
    if s.contains('/') || s == "." || s == ".." {
        return Ok(Locator::Path(absolute(Path::new(s))?));
    }
    if s.contains(':') {
        return Ok(Locator::Digest(s.to_string()));
    }
    validate_bare_name("snapshot", s)?;
    Ok(Locator::Name(s.to_string()))
}

/// Where a bare name or path points, without touching the index.
pub fn artifact_dir(home: &Home, path_or_name: &str) -> Result<PathBuf> {
    match locate(path_or_name)? {
        Locator::Path(p) => Ok(p),
        Locator::Name(n) => Ok(home.snapshots_dir().join(n)),
        Locator::Digest(d) => Err(Error::InvalidArgument(format!(
            "expected a bare name or a path, got a digest: {d}"
        ))),
    }
}


/// Open by bare name (under the home's snapshots directory) or path. An
/// artifact in the snapshots directory that the index lacks is indexed.
pub fn open(home: &Home, path_or_name: &str) -> Result<Artifact> {
    let art = open_dir(&artifact_dir(home, path_or_name)?)?;
    if art.path.parent() == Some(home.snapshots_dir().as_path()) {
        let key = art.path.to_string_lossy().into_owned();
        let indexed = home.db().read(|c| index::find_by_path(c, &key))?;
        if indexed.map(|r| r.digest) != Some(art.digest.clone()) {
            index_artifact(home, &art)?;
        }
    }
    Ok(art)
}

/// Resolve a name, digest or path to a checked artifact.
pub fn resolve(home: &Home, reference: &str) -> Result<Artifact> {
    match locate(reference)? {
        Locator::Digest(d) => resolve_digest(home, &d),
        _ => open(home, reference),
    }
}

/// Find an artifact by digest: the index first, then the snapshots directory
/// (whose artifacts get indexed on the way).
pub fn resolve_digest(home: &Home, digest: &str) -> Result<Artifact> {
    let rows = home.db().read(|c| index::find_by_digest(c, digest))?;
    for row in rows {
        if let Ok(art) = open_dir(Path::new(&row.artifact_path)) {
            if art.digest == digest {
                return Ok(art);
            }
        }
    }
    let listing = list_dir(&home.snapshots_dir())?;
    for art in listing.artifacts {
        if art.digest == digest {
            index_artifact(home, &art)?;
            return Ok(art);
        }
    }
    Err(Error::SnapshotNotFound(digest.to_string()))
}


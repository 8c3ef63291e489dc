//! What a user-supplied snapshot reference means: a bare name, a path or a
//! digest, and the artifact it resolves to.
use super::{absolute, for_each_in_dir, index_artifact, open_dir, Artifact, Visit};
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

/// The one resolver: what every operation that takes a snapshot reference
/// (open, get, inspect, verify, export, remove, fork) calls. A bare name is
/// `<home>/snapshots/<name>` and nothing else, a path is that directory, and
/// a digest resolves through the index. An artifact in the snapshots
/// directory that the index lacks (or has stale) is indexed on the way.
pub fn resolve(home: &Home, reference: &str) -> Result<Artifact> {
    let art = match locate(reference)? {
        Locator::Digest(d) => return resolve_digest(home, &d),
        Locator::Path(p) => open_dir(&p)?,
        Locator::Name(n) => open_dir(&home.snapshots_dir().join(n))?,
    };
    if art.path.parent() == Some(home.snapshots_dir().as_path()) {
        let key = art.path.to_string_lossy().into_owned();
        let indexed = home.db().read(|c| index::find_by_path(c, &key))?;
        if indexed.map(|r| r.digest) != Some(art.digest.clone()) {
            index_artifact(home, &art)?;
        }
    }
    Ok(art)
}

/// Open a snapshot by bare name, path or digest: [`resolve`].
pub fn open(home: &Home, reference: &str) -> Result<Artifact> {
    resolve(home, reference)
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
    let mut found = None;
    for_each_in_dir(&home.snapshots_dir(), |_, opened| {
        Ok(match opened {
            Ok(art) if art.digest == digest => {
                found = Some(art);
                Visit::Stop
            }
            _ => Visit::Continue,
        })
    })?;
    let art = found.ok_or_else(|| Error::SnapshotNotFound(digest.to_string()))?;
    index_artifact(home, &art)?;
    Ok(art)
}

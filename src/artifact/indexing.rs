//! Keeping an artifact's row in the snapshot index in step with the artifact.
use super::Artifact;
use crate::db::index::{self, IndexRow};
use crate::error::Result;
use crate::home::Home;
use crate::manifest::Manifest;
use crate::timefmt;

/// The index row of `art` in `home`. Its name is the bare name only for an
/// artifact directly in the home's snapshots directory, the one place a bare
/// name resolves to; an artifact elsewhere is known by its path alone.
pub fn row_for(home: &Home, art: &Artifact) -> IndexRow {
    let m = &art.manifest;
    let now = timefmt::now_unix_nanos();
    IndexRow {
        artifact_path: art.path.to_string_lossy().into_owned(),
        digest: art.digest.clone(),
        name: bare_name_of(home, &art.path),
        parent_digest: m.parent.clone(),
        image_ref: m.image.reference.clone(),
        image_manifest_digest: m.image.manifest_digest.clone(),
        format: m.format.as_str().to_string(),
        fstype: m.fstype.clone(),
        size_bytes: Some(m.upper.size_bytes),
        created_at: m.created_at.clone(),
        // Like microsandbox, an unparsable created_at indexes as "now".
        created_at_unix_nanos: timefmt::parse_rfc3339(&m.created_at).unwrap_or(now),
        indexed_at_unix_nanos: now,
        labels: m.labels.clone(),
        integrity_algorithm: m.upper.integrity.as_ref().map(|i| i.algorithm.clone()),
    }
}

/// Upsert an artifact's index row.
pub fn index_artifact(home: &Home, art: &Artifact) -> Result<()> {
    let row = row_for(home, art);
    // Re-checked under the write lock: a remove unindexes after moving the
    // directory away, so a reader that opened the artifact just before must
    // not put the row back (nor a stale digest over a force-replace's).
    home.db().write(|tx| match Manifest::read_dir(&art.path) {
        Ok((_, digest)) if digest == art.digest => index::upsert(tx, &row),
        _ => Ok(()),
    })
}

/// The bare name that resolves to the artifact directory `path` in `home`:
/// its file name when it sits directly in the snapshots directory, else none.
pub fn bare_name_of(home: &Home, path: &std::path::Path) -> Option<String> {
    if path.parent() != Some(home.snapshots_dir().as_path()) {
        return None;
    }
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

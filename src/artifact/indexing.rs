//! Keeping an artifact's row in the snapshot index in step with the artifact.
use super::Artifact;
use crate::db::index::{self, IndexRow};
use crate::error::Result;
use crate::home::Home;
use crate::timefmt;

/// The index row of `art` in `home`. Its name is the bare name only for an
/// artifact directly in the home's snapshots directory, the one place a bare
/// name resolves to; an artifact elsewhere is known by its path alone.
pub fn row_for(home: &Home, art: &Artifact) -> IndexRow {
    let d = &art.descriptor;
    let upper = art.upper_spec();
    let now = timefmt::now_unix_nanos();
    IndexRow {
        artifact_path: art.path.to_string_lossy().into_owned(),
        digest: art.digest.clone(),
        name: bare_name_of(home, &art.path),
        parent_digest: d.parent().map(str::to_string),
        image_ref: d.image().reference.clone(),
        image_manifest_digest: d.image().manifest_digest.clone(),
        // Empty for a checkpoint-state snapshot, which has no disk.
        format: d
            .disk_format()
            .map(|f| f.as_str().to_string())
            .unwrap_or_default(),
        fstype: d.fstype().unwrap_or_default().to_string(),
        size_bytes: upper.map(|u| u.size_bytes),
        created_at: d.created_at().to_string(),
        // Like microsandbox, an unparsable created_at indexes as "now".
        created_at_unix_nanos: timefmt::parse_rfc3339(d.created_at()).unwrap_or(now),
        indexed_at_unix_nanos: now,
        labels: d.labels().clone(),
        integrity_algorithm: upper
            .and_then(|u| u.integrity.as_ref())
            .map(|i| i.algorithm.clone()),
        artifact_format: art.format().name().to_string(),
    }
}

/// Upsert an artifact's index row.
pub fn index_artifact(home: &Home, art: &Artifact) -> Result<()> {
    let row = row_for(home, art);
    // Re-checked under the write lock: a remove unindexes after moving the
    // directory away, so a reader that opened the artifact just before must
    // not put the row back (nor a stale digest over a force-replace's).
    home.db()
        .write(|tx| match super::open::digest_at(&art.path) {
            Some(digest) if digest == art.digest => index::upsert(tx, &row),
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

//! Snapshot operations: create, open, get, list, list_dir, remove, reindex,
//! verify, and prune (retention, `prune.rs`). An artifact is a directory (`manifest.json` + the upper file); the
//! directory is the source of truth and the index is a cache of it. One
//! artifact on its own (open, resolve, verify) is `crate::artifact`.
pub use crate::artifact::{
    list_dir, open, open_dir, resolve, verify_artifact, Artifact, DirListing, UpperVerifyStatus,
    VerifyReport,
};

mod descriptor_for;
mod prune;

pub use prune::{
    parse_duration, prune, GroupBy, KeepReason, KeptSnapshot, PruneOptions, PruneReport,
    PrunedSnapshot,
};

use crate::artifact::{
    self, absolute, bare_name_of, for_each_in_dir, index_artifact, locate, removed_meanwhile,
    resolve_digest, row_for, ArtifactFormat, Locator, Visit,
};
use crate::db::index::{self, IndexRow};
use crate::db::sandbox_table;
use crate::error::{Error, IoContext, Result};
use crate::home::{validate_bare_name, Home};
use crate::integrity::{self, Algorithm};
use crate::manifest::{Upper, UpperIntegrity};
use crate::progress::Monitor;
use crate::publish::{self, Staging};
use crate::sandbox;
use crate::sparse;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A lightweight view of an indexed snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHandle {
    pub digest: String,
    pub name: Option<String>,
    pub parent_digest: Option<String>,
    pub image_ref: String,
    pub image_manifest_digest: String,
    pub format: String,
    pub fstype: String,
    pub size_bytes: Option<u64>,
    pub path: PathBuf,
    pub created_at: String,
    pub created_at_unix_nanos: i64,
    pub labels: BTreeMap<String, String>,
    pub child_count: u64,
    /// The descriptor's format: `msb-v0.6.3` or `msb-v0.6.14`.
    pub artifact_format: String,
}

impl SnapshotHandle {
    /// A handle from an index row. The name is shown only where the bare name
    /// resolves to this artifact (`snapshots/<name>` of `home`), whatever an
    /// older index recorded.
    fn from_row(home: &Home, row: IndexRow, child_count: u64) -> Self {
        SnapshotHandle {
            digest: row.digest,
            name: bare_name_of(home, Path::new(&row.artifact_path))
                .filter(|n| row.name.as_ref() == Some(n)),
            parent_digest: row.parent_digest,
            image_ref: row.image_ref,
            image_manifest_digest: row.image_manifest_digest,
            format: row.format,
            fstype: row.fstype,
            size_bytes: row.size_bytes,
            path: PathBuf::from(row.artifact_path),
            created_at: row.created_at,
            created_at_unix_nanos: row.created_at_unix_nanos,
            labels: row.labels,
            child_count,
            artifact_format: row.artifact_format,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Bare name under the home's snapshots directory (exclusive with `path`).
    pub name: Option<String>,
    /// Explicit artifact directory (exclusive with `name`).
    pub path: Option<PathBuf>,
    pub labels: BTreeMap<String, String>,
    /// Replace an existing artifact at the destination.
    pub force: bool,
    pub record_integrity: bool,
    /// Algorithm for recorded integrity; `None` = the format's default
    /// (`Algorithm::DEFAULT` for v0.6.3, BLAKE3 merkle for v0.6.14).
    pub integrity_algorithm: Option<Algorithm>,
    /// The descriptor's format: v0.6.3 `manifest.json` (default) or v0.6.14
    /// `snapshot.json`.
    pub format: ArtifactFormat,
}

fn handle_for(home: &Home, row: IndexRow) -> Result<SnapshotHandle> {
    let children = home.db().read(|c| index::child_count(c, &row.digest))?;
    Ok(SnapshotHandle::from_row(home, row, children))
}

fn handle_at(home: &Home, dir: &Path) -> Result<SnapshotHandle> {
    let key = dir.to_string_lossy().into_owned();
    if let Some(row) = home.db().read(|c| index::find_by_path(c, &key))? {
        if artifact::has_descriptor(dir) {
            return handle_for(home, row);
        }
    }
    let art = open_dir(dir)?;
    index_artifact(home, &art)?;
    handle_for(home, row_for(home, &art))
}

/// Look up a handle by bare name, digest or artifact path.
pub fn get(home: &Home, reference: &str) -> Result<SnapshotHandle> {
    match locate(reference)? {
        Locator::Path(p) => handle_at(home, &p),
        Locator::Digest(d) => {
            let art = resolve_digest(home, &d)?;
            handle_at(home, &art.path)
        }
        // A bare name is `snapshots/<name>` and nothing else: never an
        // indexed artifact elsewhere that happens to have that file name.
        Locator::Name(n) => handle_at(home, &home.snapshots_dir().join(n)),
    }
}

/// Indexed snapshots, newest first.
pub fn list(home: &Home) -> Result<Vec<SnapshotHandle>> {
    let mut handles = Vec::new();
    list_each(home, |h| {
        handles.push(h);
        Ok(())
    })?;
    Ok(handles)
}

/// [`list`], one handle at a time: `f` gets each as the index is read, so a
/// caller that only encodes them (the C ABI's listing) never holds them all.
/// An error from `f` stops the listing and is returned. `f` runs inside the
/// index's read transaction: it must not use the home's database.
pub fn list_each(home: &Home, mut f: impl FnMut(SnapshotHandle) -> Result<()>) -> Result<()> {
    home.db().read(|c| {
        let counts = index::child_counts(c)?;
        index::for_each(c, |row| {
            let n = counts.get(&row.digest).copied().unwrap_or(0);
            f(SnapshotHandle::from_row(home, row, n))
        })
    })
}

/// Create a snapshot of a stopped, crashed or never-started sandbox.
pub fn create(
    home: &Home,
    source_sandbox: &str,
    opts: &CreateOptions,
    monitor: &Monitor,
) -> Result<Artifact> {
    let dest = match (&opts.name, &opts.path) {
        (Some(n), None) => {
            validate_bare_name("snapshot", n)?;
            home.snapshots_dir().join(n)
        }
        (None, Some(p)) if !p.as_os_str().is_empty() => {
            let p = absolute(p)?;
            match p.file_name().and_then(|n| n.to_str()) {
                Some(n) if !publish::is_staging_name(n) => {}
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "invalid artifact path {}",
                        p.display()
                    )))
                }
            }
            p
        }
        _ => {
            return Err(Error::InvalidArgument(
                "set exactly one of name or path".into(),
            ))
        }
    };
    for k in opts.labels.keys() {
        if k.is_empty() {
            return Err(Error::InvalidArgument("empty label key".into()));
        }
    }
    // Checked before any byte is copied; only used with record_integrity.
    let algorithm = match (opts.record_integrity, opts.integrity_algorithm) {
        (false, None) => None,
        (_, requested) => Some(descriptor_for::integrity_algorithm(opts.format, requested)?),
    };
    if dest.exists() {
        if !opts.force {
            return Err(Error::AlreadyExists(dest.display().to_string()));
        }
        refuse_non_artifact(&dest)?;
    }
    // Holding the sandbox's lock for the whole copy means it cannot be
    // started while we read its disk; a running one fails here.
    let (sb, _hold) = sandbox::hold(home, source_sandbox)?;
    let parent_dir = dest
        .parent()
        .ok_or_else(|| Error::InvalidArgument(format!("invalid path {}", dest.display())))?;
    let staging = Staging::new(&home.staging_area_for(parent_dir)?, "snapshot")?;
    let upper_file = sb
        .upper_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upper.ext4".into());
    let staged_upper = staging.path().join(&upper_file);
    // With integrity, the digest is computed in the same pass as the copy.
    // The merkle leaves come with the SHA-256 merkle digest: recorded as the
    // snapshot's leaf list, they let a push read only what its target lacks.
    let mut leaves = Vec::new();
    let integrity = if let Some(algorithm) = algorithm.filter(|_| opts.record_integrity) {
        let source = std::fs::File::open(&sb.upper_path).ctx("open", &sb.upper_path)?;
        let (_, digest) = integrity::copy_and_compute_leaves(
            &source,
            &sb.upper_path,
            &staged_upper,
            algorithm,
            monitor,
            (algorithm == Algorithm::MerkleSha256V1).then_some(&mut leaves),
        )?;
        Some(UpperIntegrity {
            algorithm: algorithm.name().to_string(),
            digest,
        })
    } else {
        sparse::copy_sparse(&sb.upper_path, &staged_upper, monitor)?;
        None
    };
    crate::fault::point("snapshot.create.after_copy")?;
    let size_bytes = std::fs::metadata(&staged_upper)
        .ctx("stat", &staged_upper)?
        .len();
    let upper = Upper {
        file: upper_file,
        size_bytes,
        integrity,
    };
    descriptor_for::write_descriptor(opts.format, &sb, &opts.labels, upper, staging.path())?;
    crate::fault::point("snapshot.create.after_manifest")?;
    monitor.check()?;
    // Opened in staging: the descriptors follow the rename, so the artifact
    // returned is the one this call published, whatever replaces it later.
    let art = open_dir(staging.path())?.moved_to(dest.clone());
    let row = row_for(home, &art);
    // Held until indexed: a crash in between leaves it stale, so the next open reindexes.
    let _indexing = Staging::new(&home.tmp_dir(), "indexing")?;
    // Published and indexed in one write transaction, so the index never
    // shows the name's row with another artifact than the one at the path
    // (a forced replace changes both at once). The replaced artifact is
    // deleted after the commit, when `old` drops.
    let _old = home.db().write(|tx| {
        let old = if opts.force {
            refuse_non_artifact(&dest)?;
            staging.replace(&dest)?
        } else {
            staging.publish(&dest)?;
            None
        };
        crate::fault::point("snapshot.create.before_index")?;
        index::upsert(tx, &row)?;
        Ok(old)
    })?;
    if let Some(upper) = art.upper_spec().filter(|_| !leaves.is_empty()) {
        crate::leaf_list::save(home, &art.digest, upper.size_bytes, &leaves);
    }
    Ok(art)
}

/// Force must never wipe something that is not a snapshot (a mistyped path).
fn refuse_non_artifact(dest: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", dest, e)),
    };
    let is_artifact = meta.is_dir() && artifact::has_descriptor(dest);
    let is_empty_dir = meta.is_dir()
        && std::fs::read_dir(dest)
            .map(|mut r| r.next().is_none())
            .unwrap_or(false);
    if is_artifact || is_empty_dir {
        Ok(())
    } else {
        Err(Error::AlreadyExists(format!(
            "{} exists and is not a snapshot artifact; refusing to replace it",
            dest.display()
        )))
    }
}

/// Verify by name, digest or path.
pub fn verify(home: &Home, reference: &str, monitor: &Monitor) -> Result<VerifyReport> {
    verify_artifact(&resolve(home, reference)?, monitor)
}

/// Remove an artifact and its index row. Refuses while indexed children
/// exist (and this is the last copy of the digest) unless `force`. Whether
/// a sandbox was made from it does not matter here: the sandbox has its own
/// copy of the disk (prune is stricter, see [`remove_at`]).
pub fn remove(home: &Home, reference: &str, force: bool) -> Result<()> {
    let dir = match locate(reference)? {
        Locator::Digest(d) => {
            let rows = home.db().read(|c| index::find_by_digest(c, &d))?;
            match rows.len() {
                0 => resolve_digest(home, &d)?.path,
                1 => PathBuf::from(&rows[0].artifact_path),
                n => {
                    return Err(Error::InvalidArgument(format!(
                        "{d} has {n} copies; remove one by path"
                    )))
                }
            }
        }
        // Only ever `snapshots/<name>`: a bare name must never reach (and
        // delete) a directory outside the home through an index row.
        Locator::Name(n) => home.snapshots_dir().join(n),
        Locator::Path(p) => p,
    };
    let checks = RemoveChecks {
        force,
        sandboxes: false,
    };
    remove_dir(home, &dir, reference, checks).map(drop)
}

/// What [`remove_at`] checks before removing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RemoveChecks {
    /// Skip every check: children and sandboxes may lose their snapshot.
    pub force: bool,
    /// Also keep it while a sandbox recorded as made from its digest exists
    /// (and no other copy opens).
    pub sandboxes: bool,
}

/// What [`remove_at`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    Removed,
    /// Kept: these sandboxes were made from it (`RemoveChecks::sandboxes`).
    UsedBySandboxes(Vec<String>),
}

/// [`remove`] of the artifact directory `dir` itself, never through a
/// reference string (a path that is not UTF-8 would not survive one).
pub(crate) fn remove_at(home: &Home, dir: &Path, checks: RemoveChecks) -> Result<Removal> {
    remove_dir(home, dir, &dir.display().to_string(), checks)
}

fn remove_dir(home: &Home, dir: &Path, reference: &str, checks: RemoveChecks) -> Result<Removal> {
    let key = dir.to_string_lossy().into_owned();
    let parent = dir
        .parent()
        .ok_or_else(|| Error::InvalidArgument(format!("invalid path {}", dir.display())))?;
    let trash = Staging::new(&home.staging_area_for(parent)?, "remove")?;
    let _indexing = Staging::new(&home.tmp_dir(), "indexing")?;
    // Decided and done inside one write transaction. Creates publish and
    // index under the same lock, so what is at the path and its row cannot
    // change between looking and removing: a remove that raced another one
    // finds nothing and says so, and a row is dropped as stale only while no
    // artifact (perhaps a new one of the same name) stands at its path. A
    // sandbox is recorded under the same lock too, after checking that the
    // snapshot it copied is still there (`sandbox::create`).
    let (removal, last_copy) = home.db().write(|tx| {
        let row = index::find_by_path(tx, &key)?;
        let on_disk = artifact::has_descriptor(dir);
        if row.is_none() && !on_disk {
            return Err(Error::SnapshotNotFound(reference.to_string()));
        }
        // The digest to check for children: the index's, else the manifest's
        // (a malformed artifact has none and can always be removed).
        let digest = match &row {
            Some(r) => Some(r.digest.clone()),
            None => artifact::digest_at(dir),
        };
        if let (Some(digest), false) = (&digest, checks.force) {
            // Only another copy that still opens with this digest keeps the
            // snapshot for its children: a row whose directory is gone or
            // malformed does not.
            let other_copy = index::find_by_digest(tx, digest)?.iter().any(|r| {
                r.artifact_path != key
                    && artifact::digest_at(Path::new(&r.artifact_path)).as_deref()
                        == Some(digest.as_str())
            });
            let children = index::child_count(tx, digest)?;
            if children > 0 && !other_copy {
                return Err(Error::HasChildren {
                    digest: digest.clone(),
                    children,
                });
            }
            if checks.sandboxes && !other_copy {
                let users = sandbox_table::made_from_snapshot(tx, digest)?;
                if !users.is_empty() {
                    return Ok((Removal::UsedBySandboxes(users), None));
                }
            }
        }
        if on_disk {
            trash
                .take(dir)
                .map_err(|e| removed_meanwhile(e, reference))?;
            crate::fault::point("snapshot.remove.before_index")?;
        }
        index::remove_by_path(tx, &key)?;
        // The last indexed copy of the digest: its leaf list goes too.
        let last_copy = match &digest {
            Some(d) => index::find_by_digest(tx, d)?.is_empty().then(|| d.clone()),
            None => None,
        };
        Ok((Removal::Removed, last_copy))
    })?;
    if let Some(digest) = last_copy {
        crate::leaf_list::forget(home, &digest);
    }
    if removal == Removal::Removed {
        crate::fault::point("snapshot.remove.before_cleanup")?;
    }
    drop(trash);
    Ok(removal)
}

/// Rebuild the index from the artifacts in `dir` (default: the snapshots
/// directory): index each valid one, drop rows whose artifacts are gone.
/// Returns the number of artifacts indexed.
pub fn reindex(home: &Home, dir: Option<&Path>) -> Result<u32> {
    let dir = match dir {
        Some(d) => absolute(d)?,
        None => home.snapshots_dir(),
    };
    publish::clean_stale(&dir)?;
    // One artifact open at a time: a directory may hold more artifacts
    // than the process may hold descriptors.
    let mut rows: Vec<IndexRow> = Vec::new();
    for_each_in_dir(&dir, |_, opened| {
        if let Ok(art) = opened {
            rows.push(row_for(home, &art));
        }
        Ok(Visit::Continue)
    })?;
    let found: std::collections::HashSet<String> =
        rows.iter().map(|r| r.artifact_path.clone()).collect();
    let dir_key = dir.to_string_lossy().into_owned();
    crate::fault::point("snapshot.reindex.before_write")?;
    home.db().write(|tx| {
        for row in &rows {
            // Skip what a concurrent remove took away since the listing.
            if artifact::has_descriptor(Path::new(&row.artifact_path)) {
                index::upsert(tx, row)?;
            }
        }
        crate::fault::point("snapshot.reindex.in_transaction")?;
        for path in index::all_paths(tx)? {
            let p = Path::new(&path);
            let in_dir = p.parent().map(|x| x.to_string_lossy() == dir_key.as_str()) == Some(true);
            let gone = !artifact::has_descriptor(p);
            // Not in the listing but valid now: published since; keep it.
            let unlisted = in_dir && !found.contains(&path) && open_dir(p).is_err();
            if unlisted || gone {
                index::remove_by_path(tx, &path)?;
            }
        }
        Ok(())
    })?;
    u32::try_from(rows.len()).map_err(|_| Error::Internal("too many artifacts".into()))
}

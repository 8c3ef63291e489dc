//! Snapshot operations: create, open, get, list, list_dir, remove, reindex,
//! verify. An artifact is a directory (`manifest.json` + the upper file); the
//! directory is the source of truth and the index is a cache of it.
use crate::error::{Error, IoContext, Result};
use crate::home::{validate_bare_name, Home};
use crate::db::index::{self, IndexRow};
use crate::integrity::{self, Algorithm};
use crate::manifest::{Manifest, Upper, UpperIntegrity, MANIFEST_FILE};
use crate::progress::Monitor;
use crate::publish::{self, Staging};
use crate::sandbox;
use crate::{disk, sparse, timefmt};
use std::collections::BTreeMap;
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
}

impl SnapshotHandle {
    fn from_row(row: IndexRow, child_count: u64) -> Self {
        SnapshotHandle {
            digest: row.digest,
            name: row.name,
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
    /// Algorithm for recorded integrity; `None` = `Algorithm::DEFAULT`.
    pub integrity_algorithm: Option<Algorithm>,
}

/// Result of `verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub digest: String,
    pub path: PathBuf,
    pub upper: UpperVerifyStatus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpperVerifyStatus {
    /// `verified` or `not_recorded`.
    pub kind: String,
    /// Empty when not recorded.
    pub algorithm: String,
    /// The recomputed digest; empty when not recorded.
    pub digest: String,
}

/// Artifacts of one directory, plus the entries that could not be read.
#[derive(Debug, Default)]
pub struct DirListing {
    pub artifacts: Vec<Artifact>,
    pub skipped: Vec<(PathBuf, Error)>,
}

/// What a user-supplied reference means.
enum Locator {
    Path(PathBuf),
    Digest(String),
    Name(String),
}

fn locate(s: &str) -> Result<Locator> {
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

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).ctx("resolve", p)
}

/// Where a bare name or path points, without touching the index.
fn artifact_dir(home: &Home, path_or_name: &str) -> Result<PathBuf> {
    match locate(path_or_name)? {
        Locator::Path(p) => Ok(p),
        Locator::Name(n) => Ok(home.snapshots_dir().join(n)),
        Locator::Digest(d) => Err(Error::InvalidArgument(format!(
            "expected a bare name or a path, got a digest: {d}"
        ))),
    }
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

fn row_for(art: &Artifact) -> IndexRow {
    let m = &art.manifest;
    let now = timefmt::now_unix_nanos();
    IndexRow {
        artifact_path: art.path.to_string_lossy().into_owned(),
        digest: art.digest.clone(),
        name: art
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
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
    let row = row_for(art);
    // Re-checked under the write lock: a remove unindexes after moving the
    // directory away, so a reader that opened the artifact just before must
    // not put the row back (nor a stale digest over a force-replace's).
    home.db().write(|tx| match Manifest::read_dir(&art.path) {
        Ok((_, digest)) if digest == art.digest => index::upsert(tx, &row),
        _ => Ok(()),
    })
}

fn handle_for(home: &Home, row: IndexRow) -> Result<SnapshotHandle> {
    let children = home.db().read(|c| index::child_count(c, &row.digest))?;
    Ok(SnapshotHandle::from_row(row, children))
}

fn handle_at(home: &Home, dir: &Path) -> Result<SnapshotHandle> {
    let key = dir.to_string_lossy().into_owned();
    if let Some(row) = home.db().read(|c| index::find_by_path(c, &key))? {
        if dir.join(MANIFEST_FILE).exists() {
            return handle_for(home, row);
        }
    }
    let art = open_dir(dir)?;
    index_artifact(home, &art)?;
    handle_for(home, row_for(&art))
}

/// Look up a handle by bare name, digest or artifact path.
pub fn get(home: &Home, reference: &str) -> Result<SnapshotHandle> {
    match locate(reference)? {
        Locator::Path(p) => handle_at(home, &p),
        Locator::Digest(d) => {
            let art = resolve_digest(home, &d)?;
            handle_at(home, &art.path)
        }
        Locator::Name(n) => {
            let dir = home.snapshots_dir().join(&n);
            if dir.exists() {
                return handle_at(home, &dir);
            }
            let rows = home.db().read(|c| index::find_by_name(c, &n))?;
            match rows.len() {
                0 => Err(Error::SnapshotNotFound(n)),
                1 => handle_at(home, Path::new(&rows[0].artifact_path)),
                _ => Err(Error::InvalidArgument(format!(
                    "snapshot name {n:?} is ambiguous: {}; use a path or digest",
                    rows.iter()
                        .map(|r| r.artifact_path.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            }
        }
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
            f(SnapshotHandle::from_row(row, n))
        })
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
    let algorithm = opts.integrity_algorithm.unwrap_or(Algorithm::DEFAULT);
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
    let staging = Staging::new(home, parent_dir, "snapshot")?;
    let upper_file = sb
        .upper_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "upper.ext4".into());
    let staged_upper = staging.path().join(&upper_file);
    // With integrity, the digest is computed in the same pass as the copy.
    let integrity = if opts.record_integrity {
        let (_, digest) =
            integrity::copy_and_compute(&sb.upper_path, &staged_upper, algorithm, monitor)?;
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
    let manifest = Manifest {
        schema: 1,
        format: sb.format,
        fstype: sb.fstype.clone(),
        image: sb.image.clone(),
        parent: sb.from_snapshot.clone(),
        created_at: timefmt::now_rfc3339(),
        labels: opts.labels.clone(),
        upper: Upper {
            file: upper_file,
            size_bytes,
            integrity,
        },
        source_sandbox: Some(sb.name.clone()),
    };
    manifest.write_to(staging.path())?;
    crate::fault::point("snapshot.create.after_manifest")?;
    monitor.check()?;
    // Held until indexed: a crash in between leaves it stale, so the next open reindexes.
    let _indexing = Staging::in_area(&home.tmp_dir(), "indexing")?;
    if opts.force {
        refuse_non_artifact(&dest)?;
        staging.replace(&dest)?;
    } else {
        staging.publish(&dest)?;
    }
    let art = Artifact {
        digest: manifest.digest(),
        path: dest,
        manifest,
    };
    crate::fault::point("snapshot.create.before_index")?;
    index_artifact(home, &art)?;
    Ok(art)
}

/// Force must never wipe something that is not a snapshot (a mistyped path).
fn refuse_non_artifact(dest: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("stat", dest, e)),
    };
    let is_artifact = meta.is_dir() && dest.join(MANIFEST_FILE).is_file();
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

/// Recompute recorded integrity. `not_recorded` when none was recorded;
/// `IntegrityMismatch` naming both digests when the content changed.
pub fn verify_artifact(art: &Artifact, monitor: &Monitor) -> Result<VerifyReport> {
    verify_artifact_with(art, |upper, algorithm| {
        integrity::compute(upper, algorithm, monitor)
    })
}

/// [`verify_artifact`], with the upper's actual digest from `digest_of`
/// (upper path, recorded algorithm): for a caller that already hashed the
/// upper's bytes on their way in or out, so it need not read them again.
pub fn verify_artifact_with(
    art: &Artifact,
    digest_of: impl FnOnce(&Path, Algorithm) -> Result<String>,
) -> Result<VerifyReport> {
    // Re-check metadata: the file may have changed since it was opened.
    let fresh = open_dir(&art.path)?;
    let upper = match &fresh.manifest.upper.integrity {
        None => UpperVerifyStatus {
            kind: "not_recorded".into(),
            algorithm: String::new(),
            digest: String::new(),
        },
        Some(rec) => {
            let algorithm = Algorithm::recorded(&rec.algorithm)?;
            let actual = digest_of(&fresh.upper_path(), algorithm)
                .map_err(|e| removed_meanwhile(e, &fresh.path.display().to_string()))?;
            if actual != rec.digest {
                return Err(Error::IntegrityMismatch {
                    path: fresh.upper_path().display().to_string(),
                    expected: rec.digest.clone(),
                    actual,
                });
            }
            UpperVerifyStatus {
                kind: "verified".into(),
                algorithm: rec.algorithm.clone(),
                digest: actual,
            }
        }
    };
    Ok(VerifyReport {
        digest: fresh.digest,
        path: fresh.path,
        upper,
    })
}

/// Verify by name, digest or path.
pub fn verify(home: &Home, reference: &str, monitor: &Monitor) -> Result<VerifyReport> {
    verify_artifact(&resolve(home, reference)?, monitor)
}

/// Remove an artifact and its index row. Refuses while indexed children
/// exist (and this is the last copy of the digest) unless `force`.
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
        Locator::Name(n) => {
            let dir = home.snapshots_dir().join(&n);
            if dir.exists() {
                dir
            } else {
                get(home, &n)?.path
            }
        }
        Locator::Path(p) => p,
    };
    let key = dir.to_string_lossy().into_owned();
    let row = home.db().read(|c| index::find_by_path(c, &key))?;
    let on_disk = dir.join(MANIFEST_FILE).is_file();
    if row.is_none() && !on_disk {
        return Err(Error::SnapshotNotFound(reference.to_string()));
    }
    // The digest to check for children: the index's, else the manifest's
    // (a malformed artifact has none and can always be removed).
    let digest = match &row {
        Some(r) => Some(r.digest.clone()),
        None => Manifest::read_dir(&dir).ok().map(|(_, d)| d),
    };
    if let (Some(digest), false) = (&digest, force) {
        let (children, copies) = home.db().read(|c| {
            Ok((
                index::child_count(c, digest)?,
                index::find_by_digest(c, digest)?.len(),
            ))
        })?;
        if children > 0 && copies <= 1 {
            return Err(Error::HasChildren {
                digest: digest.clone(),
                children,
            });
        }
    }
    if on_disk {
        let parent = dir
            .parent()
            .ok_or_else(|| Error::InvalidArgument(format!("invalid path {}", dir.display())))?;
        let trash = Staging::new(home, parent, "remove")?;
        let _indexing = Staging::in_area(&home.tmp_dir(), "indexing")?;
        // Moved away inside the write transaction that drops the row, so a
        // concurrent remove that sees the row but not the directory waits
        // for us and then finds no row (below) instead of also succeeding.
        home.db().write(|tx| {
            trash
                .take(&dir)
                .map_err(|e| removed_meanwhile(e, reference))?;
            crate::fault::point("snapshot.remove.before_index")?;
            index::remove_by_path(tx, &key).map(|_| ())
        })?;
        crate::fault::point("snapshot.remove.before_cleanup")?;
        drop(trash);
    } else if !home.db().write(|tx| index::remove_by_path(tx, &key))? {
        // Only a stale row was left, and someone else dropped it first.
        return Err(Error::SnapshotNotFound(reference.to_string()));
    }
    Ok(())
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
    let listing = list_dir(&dir)?;
    let rows: Vec<IndexRow> = listing.artifacts.iter().map(row_for).collect();
    let found: std::collections::HashSet<String> =
        rows.iter().map(|r| r.artifact_path.clone()).collect();
    let dir_key = dir.to_string_lossy().into_owned();
    crate::fault::point("snapshot.reindex.before_write")?;
    home.db().write(|tx| {
        for row in &rows {
            // Skip what a concurrent remove took away since the listing.
            if Path::new(&row.artifact_path).join(MANIFEST_FILE).is_file() {
                index::upsert(tx, row)?;
            }
        }
        crate::fault::point("snapshot.reindex.in_transaction")?;
        for path in index::all_paths(tx)? {
            let p = Path::new(&path);
            let in_dir = p.parent().map(|x| x.to_string_lossy() == dir_key.as_str()) == Some(true);
            let gone = !p.join(MANIFEST_FILE).is_file();
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

/// An artifact that vanished under us (a concurrent remove won the race) is
/// `snapshot_not_found`, not an I/O failure.
fn removed_meanwhile(e: Error, reference: &str) -> Error {
    match &e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Error::SnapshotNotFound(format!("{reference} (removed concurrently)"))
        }
        _ => e,
    }
}

//! Garbage collection of the home's layout: [`prune`] removes every blob
//! that no tagged image, sandbox or snapshot needs, and the unnamed
//! `index.json` entries nothing pins.
//!
//! # What is needed
//!
//! The roots are every `index.json` entry with a ref name (a string
//! `org.opencontainers.image.ref.name`; any other value names nothing, the
//! same rule for prune, usage and `add_ref`), every image
//! manifest digest a sandbox record pins (the `sandboxes` table), and every
//! one a snapshot pins: each indexed snapshot (wherever its directory is)
//! *and* each artifact directory of `<home>/snapshots` read directly, so a
//! snapshot the index does not know yet (copied in by hand, before a
//! reindex) still keeps its image. An unnamed `index.json` entry is a root
//! only while a pin is inside it (its own digest, or a platform manifest it
//! lists). From each root, "needed" follows descriptors: an image index's
//! manifests, a manifest's config and layers (and an OCI `subject`), each
//! JSON blob checked against its digest. Only blobs that can name
//! descriptors are read: a descriptor's media type says so (image manifest
//! or index, OCI or Docker, or another "manifest" type); a blob with no
//! media type (a bare pin) is read only if it starts with `{`. Layers and
//! configs are never read, so a corrupt layer does not stop a prune. A
//! pinned digest missing from the layout needs nothing (a snapshot may pin
//! an image this host never had).
//!
//! Referrers are not roots: an unnamed entry whose manifest has a `subject`
//! that is a kept image (a signature or SBOM attached by a tool) is dropped
//! with its blobs like any other unnamed entry nothing pins. Name such an
//! entry to keep it.
//!
//! If a root cannot be read — a corrupt manifest, a snapshot directory whose
//! descriptor does not parse — prune refuses (nothing is removed) rather
//! than guess what it needs.
//!
//! # Crash safety
//!
//! Unnamed entries are dropped from `index.json` first (one atomic
//! replace), then blobs are deleted. A kill at any point leaves a layout in
//! which `index.json` names only blobs that exist; at worst some
//! unreferenced blobs remain for the next prune.
//!
//! # Concurrency
//!
//! Prune holds the layout's GC lock exclusively ([`ImageUseGuard`] is the
//! shared side) from reading the roots to the last deletion. Everything in
//! microsnap that adds blobs and then names or pins them (image import,
//! archive import, sandbox create) holds the shared side across both steps,
//! so prune waits for it (and it for prune). (In a layout with no `blobs/`
//! yet the guard holds nothing — there is nothing to delete — so a writer
//! creates the layout before taking it.) Writers that do not take the
//! lock — `skopeo copy` straight into `<home>/images` — are protected only
//! by one rule: a blob modified after the prune started is never deleted.
//! Do not run such a copy at the same time as a prune.
//!
//! # Leftovers and caches
//!
//! The engine keeps no caches. The only derivable leftovers in the layout
//! are temp files of a writer that was killed (`.<name>.tmp-<pid>-<n>` in
//! the layout and in `blobs/sha256/`); prune removes those older than its
//! start. Staging directories under `<home>/tmp/` are cleaned by recovery
//! when the home is opened.
//!
//! [`ImageUseGuard`]: super::ImageUseGuard
use super::oci::{entry_name, kind_of, Kind};
use super::store::{
    blobs_dir, is_sha256_digest, malformed_layout, read_json_blob, read_small_file, INDEX_FILE,
};
use super::write::{sync_dir, try_gc_lock, write_atomically, GcLock, LayoutLock, TEMP_MARKER};
use crate::artifact::DESCRIPTOR_FILES;
use crate::db::index;
use crate::db::sandbox_table;
use crate::error::{Error, IoContext, Result};
use crate::home::Home;
use crate::progress::Monitor;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How [`prune`] runs.
#[derive(Clone, Debug, Default)]
pub struct ImagePruneOptions {
    /// Report what would be removed; change nothing.
    pub dry_run: bool,
}

/// One blob prune removed (or, in a dry run, would remove).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrunedBlob {
    pub digest: String,
    /// The file's length.
    pub size: u64,
    /// What it occupied on disk (`st_blocks * 512`).
    pub allocated_bytes: u64,
}

/// What [`prune`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ImagePruneReport {
    pub dry_run: bool,
    /// Blobs removed, in digest order.
    pub removed: Vec<PrunedBlob>,
    /// Digests of the unnamed `index.json` entries dropped (nothing pinned them).
    pub untagged_removed: Vec<String>,
    /// Blobs left in place: needed, or too young to judge.
    pub blobs_kept: u64,
    /// Of those, blobs nothing needs that were modified after the prune
    /// started (a writer that does not take the lock may be adding them).
    pub blobs_kept_young: u64,
    /// Allocated bytes of the removed blobs and leftovers.
    pub bytes_freed: u64,
    /// Their logical size.
    pub logical_bytes_freed: u64,
    /// Temp files of killed writers removed.
    pub temp_files_removed: u64,
}

/// Who pins an image manifest digest (a root of the collection).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImageUser {
    Sandbox(String),
    /// An artifact directory (absolute path).
    Snapshot(PathBuf),
}

/// Every image pin of the home: each sandbox record's, each indexed
/// snapshot's and each snapshot directory's in `<home>/snapshots`, by
/// manifest digest. A snapshot directory whose descriptor cannot be read is
/// an error: what it pins is unknown.
pub fn image_users(home: &Home) -> Result<BTreeMap<String, BTreeSet<ImageUser>>> {
    let mut users: BTreeMap<String, BTreeSet<ImageUser>> = BTreeMap::new();
    visit_pins(home, true, &mut |digest, user| {
        let user = match user {
            PinHolder::Sandbox(name) => ImageUser::Sandbox(name.to_string()),
            PinHolder::Snapshot(path) => ImageUser::Snapshot(path.to_path_buf()),
        };
        users.entry(digest).or_default().insert(user);
    })?;
    Ok(users)
}

/// The digests [`image_users`] lists, without who pins them (what prune
/// and usage need). `strict: false` is for a report that must not fail on
/// one broken snapshot directory: such a directory is left out.
pub(crate) fn pinned_digests(home: &Home, strict: bool) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    visit_pins(home, strict, &mut |digest, _| {
        out.insert(digest);
    })?;
    Ok(out)
}

/// Who holds a pin, borrowed for the visitor of [`visit_pins`].
enum PinHolder<'a> {
    Sandbox(&'a str),
    Snapshot(&'a Path),
}

fn visit_pins(
    home: &Home,
    strict: bool,
    visit: &mut dyn FnMut(String, PinHolder<'_>),
) -> Result<()> {
    home.db().read(|c| {
        for s in sandbox_table::list(c)? {
            visit(s.image_manifest_digest, PinHolder::Sandbox(&s.name));
        }
        index::for_each(c, |row| {
            visit(
                row.image_manifest_digest,
                PinHolder::Snapshot(Path::new(&row.artifact_path)),
            );
            Ok(())
        })
    })?;
    let dir = home.snapshots_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", &dir, e)),
    };
    for entry in entries {
        let entry = entry.ctx("read", &dir)?;
        // Hidden entries are staging (see STAGING_PREFIX): not snapshots yet,
        // and their writer holds an ImageUseGuard if it pins anything new.
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let pinned = match pinned_by_dir(&path) {
            Err(_) if !strict => continue,
            other => other?,
        };
        if let Some(digest) = pinned {
            visit(digest, PinHolder::Snapshot(&path));
        }
    }
    Ok(())
}

/// The image manifest digest an artifact directory's descriptor pins;
/// `None` for a directory without a descriptor (not an artifact).
fn pinned_by_dir(dir: &Path) -> Result<Option<String>> {
    for (format, name) in DESCRIPTOR_FILES {
        let path = dir.join(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let bytes = crate::manifest::read_capped(&file, &path)?;
        let (descriptor, _) = crate::artifact::Descriptor::parse(format, &bytes).map_err(|e| {
            Error::InvalidManifest(format!(
                "image prune cannot tell which image the snapshot {} pins, so it removes \
                     nothing (repair or remove that directory): {e}",
                dir.display()
            ))
        })?;
        return Ok(Some(descriptor.image().manifest_digest.clone()));
    }
    Ok(None)
}

/// One `index.json` entry as prune and usage see it.
pub(crate) struct LayoutEntry {
    pub(crate) digest: String,
    pub(crate) media_type: Option<String>,
    /// Its ref name ([`entry_name`]); `None` is an unnamed entry.
    pub(crate) name: Option<String>,
}

/// The layout's `index.json`, read once (size-capped like every layout
/// JSON file) and parsed; `None` when there is none.
pub(crate) fn read_index(images_dir: &Path) -> Result<Option<serde_json::Value>> {
    let Some(bytes) = read_small_file(&images_dir.join(INDEX_FILE))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| malformed_layout(images_dir, format!("index.json: {e}")))
}

/// The entries of a parsed `index.json` (see [`read_index`]).
pub(crate) fn index_entries(
    images_dir: &Path,
    index: &serde_json::Value,
) -> Result<Vec<LayoutEntry>> {
    let entries = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .ok_or_else(|| malformed_layout(images_dir, "index.json has no manifests array"))?;
    entries
        .iter()
        .map(|e| {
            let digest = e
                .get("digest")
                .and_then(|d| d.as_str())
                .ok_or_else(|| malformed_layout(images_dir, "an index.json entry has no digest"))?;
            Ok(LayoutEntry {
                digest: digest.to_string(),
                media_type: e
                    .get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string),
                name: entry_name(e).map(str::to_string),
            })
        })
        .collect()
}

/// One regular file of `blobs/sha256/`.
pub(crate) struct BlobFile {
    pub(crate) path: PathBuf,
    pub(crate) name: String,
    /// `sha256:<name>` when the name is 64 lower-case hex digits (the only
    /// blob names microsnap writes or judges); `None` for anything else
    /// (temp files, stray names).
    pub(crate) digest: Option<String>,
}

/// Every regular file of the layout's `blobs/sha256/`, in name order; none
/// when there is no such directory. Prune and usage both list blobs with
/// this, so they agree on what a blob is. Stats nothing beyond what the
/// directory listing says (callers stat only the files they need).
pub(crate) fn blob_files(images_dir: &Path) -> Result<Vec<BlobFile>> {
    let blobs = blobs_dir(images_dir);
    let rd = match fs::read_dir(&blobs) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", &blobs, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.ctx("read", &blobs)?;
        if !entry.file_type().ctx("stat", &entry.path())?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let digest = Some(format!("sha256:{name}")).filter(|d| is_sha256_digest(d));
        out.push(BlobFile {
            path: entry.path(),
            name,
            digest,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The blobs each root needs, worked out once per prune (or usage report).
pub(crate) struct Reachability<'a> {
    images_dir: &'a Path,
    /// digest -> the blobs it needs, itself included.
    memo: BTreeMap<String, BTreeSet<String>>,
    /// The blobs' lengths when the caller already measured them (usage);
    /// `None`: stat each blob visited.
    sizes: Option<BTreeMap<String, u64>>,
}

impl<'a> Reachability<'a> {
    pub(crate) fn new(images_dir: &'a Path) -> Self {
        Reachability {
            images_dir,
            memo: BTreeMap::new(),
            sizes: None,
        }
    }

    /// Like [`new`](Self::new), for a caller that has just measured every
    /// blob: `sizes` is each present blob's length, so no blob is stat'ed
    /// again (one missing from it counts as absent).
    pub(crate) fn with_sizes(images_dir: &'a Path, sizes: BTreeMap<String, u64>) -> Self {
        Reachability {
            sizes: Some(sizes),
            ..Self::new(images_dir)
        }
    }

    /// Every blob `digest` needs (itself included, if present), following
    /// descriptors. `media_type` says what it is; `None` sniffs JSON.
    pub(crate) fn closure(
        &mut self,
        digest: &str,
        media_type: Option<&str>,
    ) -> Result<BTreeSet<String>> {
        if let Some(done) = self.memo.get(digest) {
            return Ok(done.clone());
        }
        let mut out = BTreeSet::new();
        let mut stack = vec![(digest.to_string(), media_type.map(str::to_string))];
        while let Some((d, mt)) = stack.pop() {
            if !is_sha256_digest(&d) || out.contains(&d) {
                continue;
            }
            let path = super::blob_path(self.images_dir, &d)?;
            let len = match &self.sizes {
                Some(sizes) => match sizes.get(&d) {
                    Some(&len) => len,
                    None => continue,
                },
                None => match fs::metadata(&path) {
                    Ok(m) => m.len(),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("stat", &path, e)),
                },
            };
            out.insert(d.clone());
            if !might_reference(mt.as_deref(), len, &path)? {
                continue;
            }
            // A JSON blob is read and checked against its digest: prune must
            // not decide what to delete from bytes that are not what they claim.
            let Some(bytes) = read_json_blob(self.images_dir, &d, None)? else {
                continue;
            };
            // Anything that names descriptors keeps them: an unknown kind of
            // JSON blob costs at worst a few blobs kept, never one lost.
            stack.extend(referenced(&bytes));
        }
        self.memo.insert(digest.to_string(), out.clone());
        Ok(out)
    }
}

/// Whether a blob could be a manifest or index, worth reading for the
/// descriptors it names. A descriptor's media type decides when there is
/// one: an image manifest or index (OCI or Docker), or any other type that
/// says "manifest" (an OCI artifact manifest); every other type (layers,
/// configs, OCI or Docker) is never read, so a large or corrupt layer costs
/// nothing and cannot make prune refuse. Without a media type (a bare
/// pinned digest) the blob is sniffed: small enough to be JSON and its
/// first non-blank byte is `{`.
fn might_reference(media_type: Option<&str>, len: u64, path: &Path) -> Result<bool> {
    const MAX_JSON: u64 = 16 << 20;
    if let Some(m) = media_type {
        return Ok(matches!(kind_of(m), Kind::Manifest | Kind::Index) || m.contains("manifest"));
    }
    if len > MAX_JSON {
        return Ok(false);
    }
    let mut head = [0u8; 64];
    let n = match File::open(path).and_then(|mut f| io::Read::read(&mut f, &mut head)) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    Ok(head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{'))
}

/// The descriptors a manifest or index names: `config`, `layers`,
/// `manifests`, `blobs` and `subject`, with their media types.
fn referenced(bytes: &[u8]) -> Vec<(String, Option<String>)> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Vec::new();
    };
    let descriptor = |v: &serde_json::Value| {
        v.get("digest").and_then(|d| d.as_str()).map(|d| {
            (
                d.to_string(),
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string),
            )
        })
    };
    let mut out = Vec::new();
    for key in ["config", "subject"] {
        if let Some(d) = value.get(key).and_then(descriptor) {
            out.push(d);
        }
    }
    for key in ["layers", "manifests", "blobs"] {
        if let Some(list) = value.get(key).and_then(|l| l.as_array()) {
            out.extend(list.iter().filter_map(descriptor));
        }
    }
    out
}

/// The blobs the layout must keep: the closure of every named entry, of
/// every unnamed entry holding a pin, and of every pinned digest. Also
/// returns the digests of the unnamed entries nothing pins (the entries to
/// drop: exactly those with no [`entry_name`] and this digest).
pub(crate) fn needed_blobs(
    entries: &[LayoutEntry],
    reach: &mut Reachability<'_>,
    pinned: &BTreeSet<String>,
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let mut keep = BTreeSet::new();
    let mut unpinned = BTreeSet::new();
    for entry in entries {
        let needs = reach.closure(&entry.digest, entry.media_type.as_deref())?;
        let is_root = entry.name.is_some()
            || pinned.contains(&entry.digest)
            || needs.iter().any(|d| pinned.contains(d));
        if is_root {
            keep.extend(needs);
        } else {
            unpinned.insert(entry.digest.clone());
        }
    }
    // Two unnamed entries with one digest are judged alike (the closure is
    // memoized by digest), so dropping by digest drops exactly the plan.
    for digest in pinned {
        keep.extend(reach.closure(digest, None)?);
    }
    Ok((keep, unpinned))
}

/// Rewrite `index.json` (already parsed, as `index`) without the entries
/// [`needed_blobs`] planned to drop: unnamed ([`entry_name`] is `None`),
/// digest in `dropped`. Named entries are never touched.
fn drop_entries(
    images_dir: &Path,
    mut index: serde_json::Value,
    dropped: &BTreeSet<String>,
) -> Result<()> {
    let Some(entries) = index
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
    else {
        return Err(malformed_layout(
            images_dir,
            "index.json has no manifests array",
        ));
    };
    entries.retain(|e| {
        let digest = e.get("digest").and_then(|d| d.as_str()).unwrap_or("");
        entry_name(e).is_some() || !dropped.contains(digest)
    });
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| Error::Internal(format!("serializing index.json: {e}")))?;
    write_atomically(images_dir, INDEX_FILE, &bytes)
}

/// Remove every blob of the home's layout that no tagged image, sandbox or
/// snapshot needs (see the module docs for the rules, crash safety and
/// concurrency). Cancellable between blobs; a cancelled prune has removed
/// some blobs and left a valid layout.
pub fn prune(home: &Home, opts: &ImagePruneOptions, monitor: &Monitor) -> Result<ImagePruneReport> {
    let images_dir = home.images_dir();
    let mut report = ImagePruneReport {
        dry_run: opts.dry_run,
        ..ImagePruneReport::default()
    };
    if !images_dir.join(INDEX_FILE).exists() && !blobs_dir(&images_dir).exists() {
        return Ok(report);
    }
    let started = SystemTime::now();
    // Without blobs/ there is nothing to lock (nor to delete); nothing is
    // created for the lock, so a dry run changes nothing.
    let _gc = loop {
        match try_gc_lock(&images_dir)? {
            GcLock::Busy => {}
            held => break held,
        }
        monitor.check()?;
        std::thread::sleep(Duration::from_millis(50));
    };
    let pinned = pinned_digests(home, true)?;
    let mut reach = Reachability::new(&images_dir);
    let (keep, dropped) = {
        // index.json is read and rewritten under the layout lock, so an
        // entry a writer adds meanwhile is never lost. It is parsed once:
        // the entries planned from it are the entries dropped from it.
        let _layout = LayoutLock::acquire(&images_dir)?;
        let index = read_index(&images_dir)?;
        let entries = match &index {
            Some(index) => index_entries(&images_dir, index)?,
            None => Vec::new(),
        };
        let (keep, dropped) = needed_blobs(&entries, &mut reach, &pinned)?;
        if let Some(index) = index {
            if !dropped.is_empty() && !opts.dry_run {
                drop_entries(&images_dir, index, &dropped)?;
            }
        }
        (keep, dropped)
    };
    report.untagged_removed = dropped.into_iter().collect();
    crate::fault::point("image.prune.after_index")?;

    let young = |meta: &fs::Metadata| meta.modified().map_or(true, |t| t >= started);
    // (path, metadata, the digest for a blob or None for a temp file)
    let mut doomed: Vec<(PathBuf, fs::Metadata, Option<String>)> = Vec::new();
    for file in blob_files(&images_dir)? {
        let digest = match file.digest {
            Some(digest) if keep.contains(&digest) => {
                // Needed: no reason to stat it.
                report.blobs_kept += 1;
                continue;
            }
            Some(digest) => Some(digest),
            None if is_temp_name(&file.name) => None,
            None => continue, // not ours to judge
        };
        let meta = match fs::symlink_metadata(&file.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", &file.path, e)),
        };
        if young(&meta) {
            if digest.is_some() {
                report.blobs_kept += 1;
                report.blobs_kept_young += 1;
            }
        } else {
            doomed.push((file.path, meta, digest));
        }
    }
    // Leftover temp files next to index.json (a killed atomic replace).
    for entry in fs::read_dir(&images_dir).ctx("read", &images_dir)? {
        let entry = entry.ctx("read", &images_dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_temp_name(&name) {
            let meta = entry.metadata().ctx("stat", &entry.path())?;
            if meta.is_file() && !young(&meta) {
                doomed.push((entry.path(), meta, None));
            }
        }
    }

    let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
    for (path, meta, digest) in doomed {
        monitor.check()?;
        if !opts.dry_run {
            crate::fault::point("image.prune.remove")?;
            match fs::remove_file(&path) {
                Ok(()) => {
                    if let Some(parent) = path.parent() {
                        touched.insert(parent.to_path_buf());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("remove", &path, e)),
            }
        }
        let allocated = meta.blocks() * 512;
        report.bytes_freed += allocated;
        report.logical_bytes_freed += meta.len();
        match digest {
            Some(digest) => report.removed.push(PrunedBlob {
                digest,
                size: meta.len(),
                allocated_bytes: allocated,
            }),
            None => report.temp_files_removed += 1,
        }
    }
    if !opts.dry_run {
        // Each directory something was removed from (blobs/sha256 and the
        // layout itself, for index.json temp files).
        for dir in &touched {
            sync_dir(dir)?;
        }
    }
    Ok(report)
}

/// A temp file of the layout's writers (see `write::temp_name`).
fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARKER)
}

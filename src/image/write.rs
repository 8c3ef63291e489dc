//! Writing the layout: creating it, storing blobs, naming images in
//! `index.json`, and the locking and atomic replacement that keep concurrent
//! writers and readers safe.
use super::oci::{
    entry_name, kind_of, parse_index, parse_manifest, Descriptor, Kind, REF_NAME_ANNOTATION,
};
use super::reference::is_valid_ref_name;
use super::store::{
    blob_path, blobs_dir, check_layout_marker, malformed_layout, read_json_blob, read_small_file,
    sha256_digest_of, EMPTY_INDEX_CONTENT, INDEX_FILE, OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE,
};
use crate::error::{Error, IoContext, Result};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Create the layout if missing: the directory, `blobs/sha256/`, `oci-layout`
/// and an empty `index.json`. An existing layout is left as it is (a malformed
/// marker is an error; nothing is overwritten).
pub fn ensure_layout(images_dir: &Path) -> Result<()> {
    let blobs = blobs_dir(images_dir);
    fs::create_dir_all(&blobs).ctx("create directory", &blobs)?;
    let _lock = LayoutLock::acquire(images_dir)?;
    let marker_path = images_dir.join(OCI_LAYOUT_FILE);
    match read_small_file(&marker_path)? {
        Some(bytes) => check_layout_marker(images_dir, &bytes)?,
        None => write_atomically(images_dir, OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT)?,
    }
    if !images_dir.join(INDEX_FILE).exists() {
        write_atomically(images_dir, INDEX_FILE, EMPTY_INDEX_CONTENT)?;
    }
    Ok(())
}

/// An exclusive `flock` on the layout directory itself, held while
/// `index.json` is read, changed and replaced, so two writers never lose each
/// other's entries. Locking the directory adds no file to the layout.
pub(super) struct LayoutLock {
    _held: File,
}

impl LayoutLock {
    pub(super) fn acquire(images_dir: &Path) -> Result<LayoutLock> {
        let dir = File::open(images_dir).ctx("open", images_dir)?;
        flock_exclusive(&dir).ctx("lock", images_dir)?;
        Ok(LayoutLock { _held: dir })
    }
}

/// Block until `file` holds an exclusive flock (released when it is closed).
fn flock_exclusive(file: &File) -> io::Result<()> {
    flock(file, rustix::fs::FlockOperation::LockExclusive)
}

fn flock(file: &File, operation: rustix::fs::FlockOperation) -> io::Result<()> {
    loop {
        match rustix::fs::flock(file, operation) {
            Err(rustix::io::Errno::INTR) => continue,
            done => return Ok(done?),
        }
    }
}

/// Keeps [`prune`](fn@super::prune) away while an operation adds blobs to
/// the layout and then names or pins them (image import, archive import,
/// sandbox create): a shared `flock` on `<layout>/blobs`, which prune takes
/// exclusively. Between storing a blob and naming it, nothing references
/// the blob, so without this a concurrent prune would delete it. Like the
/// layout lock it adds no file to the layout; it is released on drop.
#[derive(Debug)]
pub struct ImageUseGuard {
    _held: Option<File>,
}

impl ImageUseGuard {
    /// Take the shared hold (blocks while a prune runs). Creates nothing: in
    /// a layout without `blobs/` there is nothing for prune to delete, so
    /// the guard holds nothing; a writer that is about to create the layout
    /// calls [`ensure_layout`] first.
    pub fn acquire(images_dir: &Path) -> Result<ImageUseGuard> {
        let path = images_dir.join("blobs");
        let dir = match File::open(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(ImageUseGuard { _held: None })
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        flock(&dir, rustix::fs::FlockOperation::LockShared).ctx("lock", images_dir)?;
        Ok(ImageUseGuard { _held: Some(dir) })
    }
}

/// What [`try_gc_lock`] got.
pub(super) enum GcLock {
    /// Held until dropped.
    Held(#[allow(dead_code)] File),
    /// Someone holds an [`ImageUseGuard`]; try again (the caller polls, so
    /// it can be cancelled).
    Busy,
    /// The layout has no `blobs/`: nothing to delete, nothing to lock.
    NoBlobs,
}

/// The exclusive side of [`ImageUseGuard`], held by prune.
pub(super) fn try_gc_lock(images_dir: &Path) -> Result<GcLock> {
    let Some(dir) = gc_lock_dir(images_dir)? else {
        return Ok(GcLock::NoBlobs);
    };
    match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(GcLock::Held(dir)),
        Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => Ok(GcLock::Busy),
        Err(e) => Err(Error::io("lock", images_dir, e.into())),
    }
}

/// `<layout>/blobs`, opened without creating anything (a dry run must not
/// change the home); `None` when it does not exist (no blobs to delete).
fn gc_lock_dir(images_dir: &Path) -> Result<Option<File>> {
    let dir = images_dir.join("blobs");
    match File::open(&dir) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("open", &dir, e)),
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What every temp file name of the layout contains (see [`temp_name`]):
/// prune recognises leftovers of a killed writer by it.
pub(super) const TEMP_MARKER: &str = ".tmp-";

/// A fresh temp file name, unique across processes and threads.
fn temp_name(stem: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{stem}{TEMP_MARKER}{}-{n}", std::process::id())
}

/// Removes a temp file unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// Write `dir/name` so readers see the old or the new bytes, never a mix:
/// temp file, fsync, rename, fsync the directory.
pub(super) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let mut temp = TempFile {
        path: dir.join(temp_name(name)),
        keep: false,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp.path)
        .ctx("create", &temp.path)?;
    file.write_all(bytes).ctx("write", &temp.path)?;
    file.sync_all().ctx("fsync", &temp.path)?;
    let target = dir.join(name);
    fs::rename(&temp.path, &target).ctx("rename into place", &target)?;
    temp.keep = true;
    sync_dir(dir)
}

/// Read `reader` to its end, hashing it and handing each chunk to `sink`
/// (when there is one). Returns the byte count and the hash.
fn stream_hashed(
    reader: &mut dyn Read,
    mut sink: Option<(&mut dyn Write, &Path)>,
    digest: &str,
) -> Result<(u64, Sha256)> {
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io {
                    context: format!("read blob {digest}"),
                    source: e,
                })
            }
        };
        hasher.update(&buf[..n]);
        count += n as u64;
        if let Some((writer, path)) = sink.as_mut() {
            writer.write_all(&buf[..n]).ctx("write", path)?;
        }
    }
    Ok((count, hasher))
}

/// Store one blob read from `reader`, checking it is exactly `expected`
/// (size and sha256). Reads at most `expected.size + 1` bytes. The blob is
/// streamed to a temp file in `blobs/sha256/`, fsynced and renamed into
/// place, so a reader never sees a partial blob. A blob already present with
/// the right size is kept (the stream is still checked, but not written) and
/// its modification time is set to now, so a prune running meanwhile treats
/// it as just added (see `gc`'s young-blob rule) exactly as it would a
/// newly written one. Hold an [`ImageUseGuard`] across `add_blob` and the
/// [`add_ref`] (or pin) that names the blob.
/// A mismatch is [`Error::InvalidArchive`] naming the digest; nothing is left
/// behind.
pub fn add_blob(images_dir: &Path, expected: &Descriptor, reader: &mut dyn Read) -> Result<()> {
    let final_path = blob_path(images_dir, &expected.digest)?;
    ensure_layout(images_dir)?;
    let mut limited = reader.take(expected.size.saturating_add(1));
    let check = |count: u64, hasher: Sha256| -> Result<()> {
        if count != expected.size {
            let got = if count > expected.size {
                format!("more than {}", expected.size)
            } else {
                count.to_string()
            };
            return Err(Error::InvalidArchive(format!(
                "blob {} has the wrong size: expected {} bytes, got {got}",
                expected.digest, expected.size
            )));
        }
        let actual = sha256_digest_of(hasher);
        if actual != expected.digest {
            return Err(Error::InvalidArchive(format!(
                "blob {} has the wrong content: its digest is {actual}",
                expected.digest
            )));
        }
        Ok(())
    };

    if fs::metadata(&final_path).is_ok_and(|m| m.len() == expected.size) {
        let (count, hasher) = stream_hashed(&mut limited, None, &expected.digest)?;
        check(count, hasher)?;
        // Young again: a prune that started before this call and did not
        // count the blob as needed will not delete it now.
        return File::open(&final_path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()))
            .ctx("set the modification time of", &final_path);
    }

    let dir = blobs_dir(images_dir);
    let mut temp = TempFile {
        path: dir.join(temp_name(&expected.digest["sha256:".len()..])),
        keep: false,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp.path)
        .ctx("create", &temp.path)?;
    let mut writer = io::BufWriter::with_capacity(1 << 20, file);
    let (count, hasher) = stream_hashed(
        &mut limited,
        Some((&mut writer, &temp.path)),
        &expected.digest,
    )?;
    check(count, hasher)?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::io("write", &temp.path, e.into_error()))?;
    file.sync_all().ctx("fsync", &temp.path)?;
    fs::rename(&temp.path, &final_path).ctx("rename into place", &final_path)?;
    temp.keep = true;
    sync_dir(&dir)
}

/// Name an image: point the `index.json` entry annotated with `reference` at
/// `manifest` (adding it, or replacing the entry that had that name), creating
/// the layout if needed. The manifest (or image index) blob must already be
/// in the store with the descriptor's size. Other entries and unknown fields
/// are kept; the file is replaced atomically under a lock.
///
/// Holds an [`ImageUseGuard`] from checking the manifest to writing the
/// entry, so a concurrent prune cannot delete the manifest in between. A
/// caller that stores blobs with [`add_blob`] and then names them with
/// `add_ref` must hold its own guard across both calls: between them
/// nothing references the new blobs.
pub fn add_ref(images_dir: &Path, reference: &str, manifest: &Descriptor) -> Result<()> {
    if !is_valid_ref_name(reference) {
        return Err(Error::InvalidArgument(format!(
            "{reference:?} is not a valid OCI image ref name \
             (components of letters and digits joined by one of -._:@+ or --, separated by /)"
        )));
    }
    ensure_layout(images_dir)?;
    // Held from the check to the new entry: otherwise a prune that planned
    // before the entry existed could delete the blobs just checked and
    // leave index.json naming missing blobs.
    let _use = ImageUseGuard::acquire(images_dir)?;
    check_indexable(images_dir, manifest)?;
    upsert_index_entry(images_dir, Some(reference), manifest)
}

/// The blob `manifest` names exists, has its size and digest, and is of a
/// media type an index entry can name.
fn check_indexable(images_dir: &Path, manifest: &Descriptor) -> Result<()> {
    let kind = kind_of(&manifest.media_type);
    if kind == Kind::Other {
        return Err(Error::InvalidArgument(format!(
            "cannot name a blob of media type {:?}: an index entry must be an image manifest \
             or image index",
            manifest.media_type
        )));
    }
    let Some(bytes) = read_json_blob(images_dir, &manifest.digest, Some(manifest.size))? else {
        return Err(Error::InvalidArgument(format!(
            "manifest blob {} is not in image layout {}; add it first",
            manifest.digest,
            images_dir.display()
        )));
    };
    match kind {
        Kind::Manifest => parse_manifest(&manifest.digest, &bytes).map(drop),
        _ => parse_index(&manifest.digest, &bytes).map(drop),
    }
}

/// Add or replace one `index.json` entry. Named: replaces every entry with
/// that name (at the first one's position). Unnamed: added unless an unnamed
/// entry with that digest exists. Writes nothing when nothing changes.
pub(super) fn upsert_index_entry(
    images_dir: &Path,
    reference: Option<&str>,
    manifest: &Descriptor,
) -> Result<()> {
    let _lock = LayoutLock::acquire(images_dir)?;
    let index_path = images_dir.join(INDEX_FILE);
    let bytes = read_small_file(&index_path)?
        .ok_or_else(|| malformed_layout(images_dir, "index.json is missing"))?;
    let mut index: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| malformed_layout(images_dir, format!("index.json: {e}")))?;
    let entries = index
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| malformed_layout(images_dir, "index.json has no manifests array"))?;

    let same_target = |entry: &serde_json::Value| {
        entry.get("digest").and_then(serde_json::Value::as_str) == Some(&manifest.digest)
            && entry.get("mediaType").and_then(serde_json::Value::as_str)
                == Some(&manifest.media_type)
            && entry.get("size").and_then(serde_json::Value::as_u64) == Some(manifest.size)
    };
    let matching: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| entry_name(e) == reference)
        .map(|(i, _)| i)
        .collect();
    let unchanged = match reference {
        Some(_) => matching.len() == 1 && same_target(&entries[matching[0]]),
        None => matching.iter().any(|&i| same_target(&entries[i])),
    };
    if unchanged {
        return Ok(());
    }

    let mut entry = serde_json::json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.size,
    });
    if let Some(name) = reference {
        entry["annotations"] = serde_json::json!({ REF_NAME_ANNOTATION: name });
        let position = matching.first().copied().unwrap_or(entries.len());
        for &i in matching.iter().rev() {
            entries.remove(i);
        }
        entries.insert(position.min(entries.len()), entry);
    } else {
        entries.push(entry);
    }
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| Error::Internal(format!("serializing index.json: {e}")))?;
    write_atomically(images_dir, INDEX_FILE, &bytes)
}

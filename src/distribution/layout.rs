//! The `oci:DIR` store: an OCI image layout directory (image-spec
//! `image-layout.md`) as skopeo and umoci read and write it: `oci-layout`,
//! `index.json` naming each tag with an `org.opencontainers.image.ref.name`
//! annotation, and `blobs/sha256/<hex>`.
//!
//! - A blob is written to `blobs/sha256/.tmp-<unique>`, checked against its
//!   digest while it is copied, fsynced and renamed to `<hex>`: a crash never
//!   leaves a short or wrong blob under a digest, only a temp file that no
//!   reader takes for a blob. A blob already there with the right size is
//!   not written again.
//! - `index.json` is read, changed and replaced (temp file, fsync, rename)
//!   under an exclusive `flock` on DIR itself, so two pushers never lose each
//!   other's tags and no lock file is added to the layout. It is edited as
//!   raw JSON: other tags, other tools' entries and fields microsnap does not
//!   know survive a push untouched.
//! - Blob paths are built only from validated `sha256:<64 hex>` digests, and
//!   blobs are opened without following symlinks.
//!
//! The layout-format helpers (digests, `oci-layout`, `index.json`, bounded
//! reads) are shared with `oci_archive.rs`, which holds the same layout in
//! a tar.
use super::media_types::ANNOTATION_REF_NAME;
use super::reference::check_tag;
use super::store::{Access, Store};
use crate::error::{Error, IoContext, Result};
use crate::progress::Monitor;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

pub(super) const OCI_LAYOUT_FILE: &str = "oci-layout";
pub(super) const INDEX_FILE: &str = "index.json";
pub(super) const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// `index.json` is read whole into memory; the home's own image layout
/// reader has the same bound.
pub(super) const MAX_INDEX_BYTES: u64 = 16 << 20;
/// `oci-layout` is one short JSON object.
pub(super) const MAX_MARKER_BYTES: u64 = 4096;
/// Long copies and reads look at the monitor this often.
pub(super) const CANCEL_EVERY: u64 = 4 << 20;
const COPY_BUFFER: usize = 1 << 20;
/// Every temp file name contains this; it can never be a 64-hex blob name.
pub(super) const TEMP_MARKER: &str = ".tmp-";

/// Remove the files of `dir` whose name `is_temp` accepts and that are
/// older than an hour: what killed writers left (never taken for blobs or
/// archives, but holding disk). A writer alive now renames or removes its
/// own well within the hour.
pub(super) fn remove_stale_temps(dir: &Path, is_temp: impl Fn(&str) -> bool) {
    const STALE: std::time::Duration = std::time::Duration::from_secs(3600);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = is_temp(&entry.file_name().to_string_lossy())
            && entry
                .metadata()
                .ok()
                .filter(|m| m.is_file())
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE);
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

pub fn open(dir: &Path, access: Access) -> Result<Box<dyn Store>> {
    Ok(Box::new(LayoutStore::open(dir, access)?))
}

/// An OCI image layout directory opened for reading or writing.
pub(super) struct LayoutStore {
    dir: PathBuf,
    /// `dir/blobs/sha256`.
    blobs: PathBuf,
    writable: bool,
    /// Temp files being written, removed by `abandon`.
    temps: Mutex<HashSet<PathBuf>>,
}

impl LayoutStore {
    pub(super) fn open(dir: &Path, access: Access) -> Result<LayoutStore> {
        let store = LayoutStore {
            dir: dir.to_path_buf(),
            blobs: dir.join("blobs").join("sha256"),
            writable: access == Access::Write,
            temps: Mutex::new(HashSet::new()),
        };
        match access {
            Access::Read => store.check_readable()?,
            Access::Write => store.create_or_check()?,
        }
        Ok(store)
    }

    fn place(&self) -> String {
        format!("oci:{}", self.dir.display())
    }

    fn not_a_layout(&self, why: &str) -> Error {
        Error::InvalidArgument(format!(
            "{} is not an OCI image layout: {why}",
            self.place()
        ))
    }

    fn check_readable(&self) -> Result<()> {
        match fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(self.not_a_layout("it is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.not_a_layout("it does not exist"))
            }
            Err(e) => return Err(Error::io("open", &self.dir, e)),
        }
        let marker = self.dir.join(OCI_LAYOUT_FILE);
        match read_small_file(&marker, MAX_MARKER_BYTES)? {
            Some(bytes) => check_layout_marker(&self.place(), &bytes)?,
            None => return Err(self.not_a_layout("it has no oci-layout file")),
        }
        // index.json must be there and parse; it is read again on each use.
        self.read_index()?;
        Ok(())
    }

    /// Create DIR and the layout files if missing; refuse a directory that
    /// holds something else.
    fn create_or_check(&self) -> Result<()> {
        match fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(self.not_a_layout("it exists and is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.dir).ctx("create directory", &self.dir)?
            }
            Err(e) => return Err(Error::io("open", &self.dir, e)),
        }
        let _lock = DirLock::acquire(&self.dir)?;
        let marker = self.dir.join(OCI_LAYOUT_FILE);
        match read_small_file(&marker, MAX_MARKER_BYTES)? {
            Some(bytes) => check_layout_marker(&self.place(), &bytes)?,
            None => {
                if self.holds_anything()? {
                    return Err(self.not_a_layout(
                        "it is not empty and has no oci-layout file; refusing to write into it",
                    ));
                }
                // The marker first: a crash after it leaves a layout that
                // the next open completes, not a directory it refuses.
                self.write_atomically(OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT)?;
            }
        }
        fs::create_dir_all(&self.blobs).ctx("create directory", &self.blobs)?;
        let index = self.dir.join(INDEX_FILE);
        match fs::symlink_metadata(&index) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.write_atomically(INDEX_FILE, &empty_index())?
            }
            // Only a missing index is created: one that cannot be read is
            // an error, never replaced by an empty one.
            Err(e) => return Err(Error::io("stat", &index, e)),
            Ok(_) => {
                self.read_index()?;
            }
        }
        self.remove_stale_temps();
        Ok(())
    }

    /// Temp files a killed writer left in the layout.
    fn remove_stale_temps(&self) {
        for dir in [&self.dir, &self.blobs] {
            remove_stale_temps(dir, |name| name.contains(TEMP_MARKER));
        }
    }

    /// Whether DIR has any entry besides a temp file of a marker write that
    /// a crash interrupted.
    fn holds_anything(&self) -> Result<bool> {
        for entry in fs::read_dir(&self.dir).ctx("list", &self.dir)? {
            let name = entry.ctx("list", &self.dir)?.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with(&format!("{OCI_LAYOUT_FILE}{TEMP_MARKER}")) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "{} was opened for reading, not writing",
                self.place()
            )))
        }
    }

    /// The raw `index.json`, parsed and checked to be an index object.
    pub(super) fn read_index(&self) -> Result<Value> {
        let path = self.dir.join(INDEX_FILE);
        let bytes = read_small_file(&path, MAX_INDEX_BYTES)?
            .ok_or_else(|| Error::InvalidArchive(format!("{} has no index.json", self.place())))?;
        parse_index(&self.place(), &bytes)
    }

    /// Replace `index.json` with `bytes` (an oci-archive seeds its scratch
    /// layout with the archive's index this way).
    pub(super) fn replace_index(&self, bytes: &[u8]) -> Result<()> {
        self.check_writable()?;
        parse_index(&self.place(), bytes)?;
        let _lock = DirLock::acquire(&self.dir)?;
        self.write_atomically(INDEX_FILE, bytes)
    }

    /// Name `descriptor` `tag` in `index.json` (read, change, replace under
    /// the directory lock).
    pub(super) fn tag_in_index(&self, tag: &str, descriptor: Value) -> Result<()> {
        let _lock = DirLock::acquire(&self.dir)?;
        let index = self.read_index()?;
        let index = index_with_tag(index, tag, descriptor);
        let bytes = serde_json::to_vec(&index)
            .map_err(|e| Error::Internal(format!("serialize index.json: {e}")))?;
        self.write_atomically(INDEX_FILE, &bytes)
    }

    /// `dir/blobs/sha256/<hex>` for a valid digest.
    pub(super) fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.blobs.join(digest_hex(digest)?))
    }

    /// The hex digests of every blob in the layout, sorted.
    pub(super) fn blob_hexes(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list", &self.blobs, e)),
        };
        for entry in entries {
            let name = entry.ctx("list", &self.blobs)?.file_name();
            if let Some(name) = name.to_str() {
                if is_hex64(name) {
                    out.push(name.to_string());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// The raw bytes of `index.json` (bounded).
    pub(super) fn index_bytes(&self) -> Result<Vec<u8>> {
        let path = self.dir.join(INDEX_FILE);
        read_small_file(&path, MAX_INDEX_BYTES)?
            .ok_or_else(|| Error::InvalidArchive(format!("{} has no index.json", self.place())))
    }

    /// The size of the regular file `path`; `None` if it does not exist.
    fn regular_size(&self, path: &Path, digest: &str) -> Result<Option<u64>> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Err(Error::InvalidArchive(format!(
                "blob {digest} of {} is not a regular file",
                self.place()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", path, e)),
        }
    }

    /// The blob opened (without following a symlink) with its size;
    /// `None` if the layout lacks it.
    fn open_blob(&self, digest: &str) -> Result<Option<(File, u64)>> {
        let path = self.blob_path(digest)?;
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(Error::InvalidArchive(format!(
                    "blob {digest} of {} is a symlink",
                    self.place()
                )))
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let meta = file.metadata().ctx("stat", &path)?;
        if !meta.is_file() {
            return Err(Error::InvalidArchive(format!(
                "blob {digest} of {} is not a regular file",
                self.place()
            )));
        }
        Ok(Some((file, meta.len())))
    }

    fn open_present_blob(&self, digest: &str) -> Result<(File, u64)> {
        self.open_blob(digest)?
            .ok_or_else(|| Error::InvalidArchive(format!("{} has no blob {digest}", self.place())))
    }

    /// Store blob `digest` of `len` bytes read from `reader`, checking size
    /// and sha256 as it is copied. Returns the bytes written (0 when the
    /// blob was already there with that size).
    pub(super) fn put_blob_from(
        &self,
        digest: &str,
        reader: &mut dyn Read,
        len: u64,
        monitor: &Monitor,
    ) -> Result<u64> {
        self.check_writable()?;
        let target = self.blob_path(digest)?;
        if self.regular_size(&target, digest)? == Some(len) {
            return Ok(0);
        }
        monitor.check()?;
        let mut temp = self.temp_file(&self.blobs, "")?;
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        let mut unchecked = 0u64;
        let mut buf = vec![0u8; COPY_BUFFER];
        // One byte more than announced is enough to know it is too long.
        let mut limited = reader.take(len.saturating_add(1));
        loop {
            let n = match limited.read(&mut buf) {
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
            temp.file.write_all(&buf[..n]).ctx("write", &temp.path)?;
            count += n as u64;
            unchecked += n as u64;
            if unchecked >= CANCEL_EVERY {
                unchecked = 0;
                monitor.check()?;
            }
        }
        let place = format!("blob {digest} for {}", self.place());
        if count != len {
            return Err(Error::IntegrityMismatch {
                path: place,
                expected: format!("{len} bytes"),
                actual: if count > len {
                    format!("more than {len} bytes")
                } else {
                    format!("{count} bytes")
                },
            });
        }
        let actual = sha256_digest_of(hasher);
        if actual != digest {
            return Err(Error::IntegrityMismatch {
                path: place,
                expected: digest.to_string(),
                actual,
            });
        }
        temp.file.sync_all().ctx("fsync", &temp.path)?;
        fs::rename(&temp.path, &target).ctx("rename into place", &target)?;
        temp.kept();
        sync_dir(&self.blobs)?;
        Ok(len)
    }

    /// A new temp file in `dir` whose name starts with `stem` and contains
    /// [`TEMP_MARKER`]; removed on drop unless kept, and by `abandon`.
    fn temp_file(&self, dir: &Path, stem: &str) -> Result<TempFile<'_>> {
        let path = dir.join(format!("{stem}{TEMP_MARKER}{}", unique_suffix()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx("create", &path)?;
        lock(&self.temps).insert(path.clone());
        Ok(TempFile {
            store: self,
            path,
            file,
            keep: false,
        })
    }

    /// Write `dir/name` so readers see the old or the new bytes: temp
    /// file, fsync, rename, fsync the directory.
    fn write_atomically(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut temp = self.temp_file(&self.dir, name)?;
        temp.file.write_all(bytes).ctx("write", &temp.path)?;
        temp.file.sync_all().ctx("fsync", &temp.path)?;
        let target = self.dir.join(name);
        fs::rename(&temp.path, &target).ctx("rename into place", &target)?;
        temp.kept();
        sync_dir(&self.dir)
    }

    /// Manifest `digest`, checked against it, at most `max` bytes; `None`
    /// if absent, an error if absent and `named` by index.json.
    pub(super) fn manifest_blob(
        &self,
        digest: &str,
        max: u64,
        named: bool,
    ) -> Result<Option<Vec<u8>>> {
        let (file, size) = match self.open_blob(digest)? {
            Some(found) => found,
            None if named => {
                return Err(Error::InvalidArchive(format!(
                    "index.json of {} names manifest {digest}, which it does not hold",
                    self.place()
                )))
            }
            None => return Ok(None),
        };
        check_max(&self.place(), digest, size, max)?;
        let bytes = read_exact_at(&file, 0, size, &self.place(), digest, &Monitor::none())?;
        check_digest_of(&self.place(), digest, &bytes)?;
        Ok(Some(bytes))
    }
}

impl Store for LayoutStore {
    fn describe(&self) -> String {
        self.place()
    }

    fn blob_size(&self, digest: &str) -> Result<Option<u64>> {
        let path = self.blob_path(digest)?;
        self.regular_size(&path, digest)
    }

    fn put_blob_file(&self, digest: &str, path: &Path, len: u64, monitor: &Monitor) -> Result<u64> {
        self.check_writable()?;
        // Nothing to read when the blob is already there.
        if self.blob_size(digest)? == Some(len) {
            return Ok(0);
        }
        let mut file = File::open(path).ctx("open", path)?;
        self.put_blob_from(digest, &mut file, len, monitor)
    }

    fn put_blob_bytes(&self, digest: &str, bytes: &[u8], monitor: &Monitor) -> Result<u64> {
        self.put_blob_from(digest, &mut &bytes[..], bytes.len() as u64, monitor)
    }

    fn get_blob(&self, digest: &str, max: u64, monitor: &Monitor) -> Result<Vec<u8>> {
        let (file, size) = self.open_present_blob(digest)?;
        check_max(&self.place(), digest, size, max)?;
        read_exact_at(&file, 0, size, &self.place(), digest, monitor)
    }

    fn read_blob_range(
        &self,
        digest: &str,
        offset: u64,
        len: u64,
        out: &mut Vec<u8>,
        monitor: &Monitor,
    ) -> Result<()> {
        let (file, size) = self.open_present_blob(digest)?;
        check_range(&self.place(), digest, size, offset, len)?;
        read_exact_into(&file, offset, len, &self.place(), digest, out, monitor)
    }

    fn get_manifest(&self, tag_or_digest: &str, max: u64) -> Result<Option<Vec<u8>>> {
        if tag_or_digest.starts_with("sha256:") {
            return self.manifest_blob(tag_or_digest, max, false);
        }
        check_tag(tag_or_digest).map_err(Error::InvalidArgument)?;
        let index = self.read_index()?;
        match tagged_manifest(&self.place(), &index, tag_or_digest)? {
            Some(digest) => self.manifest_blob(&digest, max, true),
            None => Ok(None),
        }
    }

    fn put_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> Result<()> {
        self.check_writable()?;
        let descriptor = manifest_descriptor(tag, bytes, media_type)?;
        let digest = descriptor["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.put_blob_bytes(&digest, bytes, &Monitor::none())?;
        self.tag_in_index(tag, descriptor)
    }

    fn abandon(&self) {
        for path in lock(&self.temps).drain() {
            let _ = fs::remove_file(path);
        }
    }
}

/// A temp file of a [`LayoutStore`], removed on drop unless renamed into
/// place.
struct TempFile<'a> {
    store: &'a LayoutStore,
    path: PathBuf,
    file: File,
    keep: bool,
}

impl TempFile<'_> {
    fn kept(&mut self) {
        self.keep = true;
        lock(&self.store.temps).remove(&self.path);
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
            lock(&self.store.temps).remove(&self.path);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An exclusive `flock` on a directory, released on drop.
struct DirLock {
    _held: File,
}

impl DirLock {
    fn acquire(dir: &Path) -> Result<DirLock> {
        let file = File::open(dir).ctx("open", dir)?;
        loop {
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
                Ok(()) => return Ok(DirLock { _held: file }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("lock", dir, e.into())),
            }
        }
    }
}

// ---- layout-format helpers, shared with oci_archive.rs ----

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The hex of a `sha256:<64 lowercase hex>` digest; anything else (another
/// algorithm, `/`, `..`) is refused, so a digest from untrusted JSON never
/// names a path outside `blobs/sha256/`.
pub(super) fn digest_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if is_hex64(hex) => Ok(hex),
        _ => Err(Error::InvalidArgument(format!(
            "blob digest {digest:?} is not sha256:<64 lowercase hex digits>"
        ))),
    }
}

pub(super) fn sha256_digest_of(hasher: Sha256) -> String {
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for byte in hasher.finalize() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

pub(super) fn sha256_digest(bytes: &[u8]) -> String {
    sha256_digest_of(Sha256::new_with_prefix(bytes))
}

/// `IntegrityMismatch` unless `bytes` hash to `digest`.
pub(super) fn check_digest_of(place: &str, digest: &str, bytes: &[u8]) -> Result<()> {
    let actual = sha256_digest(bytes);
    if actual == digest {
        Ok(())
    } else {
        Err(Error::IntegrityMismatch {
            path: format!("blob {digest} of {place}"),
            expected: digest.to_string(),
            actual,
        })
    }
}

pub(super) fn check_max(place: &str, digest: &str, size: u64, max: u64) -> Result<()> {
    if size > max {
        return Err(Error::InvalidArchive(format!(
            "blob {digest} of {place} is {size} bytes, more than the {max} accepted"
        )));
    }
    Ok(())
}

pub(super) fn check_range(
    place: &str,
    digest: &str,
    size: u64,
    offset: u64,
    len: u64,
) -> Result<()> {
    if offset.checked_add(len).is_none_or(|end| end > size) {
        return Err(Error::InvalidArchive(format!(
            "blob {digest} of {place} is {size} bytes: {len} bytes from offset {offset} are past its end"
        )));
    }
    Ok(())
}

/// Exactly `len` bytes of `file` from `offset` (`pread`), looking at the
/// monitor every few MiB; a short read is an error naming the blob.
pub(super) fn read_exact_at(
    file: &File,
    offset: u64,
    len: u64,
    place: &str,
    digest: &str,
    monitor: &Monitor,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    read_exact_into(file, offset, len, place, digest, &mut out, monitor)?;
    Ok(out)
}

/// [`read_exact_at`] into `out`, replacing what it held.
pub(super) fn read_exact_into(
    file: &File,
    offset: u64,
    len: u64,
    place: &str,
    digest: &str,
    out: &mut Vec<u8>,
    monitor: &Monitor,
) -> Result<()> {
    let len_usize = usize::try_from(len)
        .map_err(|_| Error::InvalidArgument(format!("{len} bytes do not fit in memory")))?;
    out.clear();
    out.resize(len_usize, 0);
    let mut done = 0usize;
    while done < len_usize {
        monitor.check()?;
        let end = (done + CANCEL_EVERY as usize).min(len_usize);
        file.read_exact_at(&mut out[done..end], offset + done as u64)
            .map_err(|e| {
                let why = if e.kind() == io::ErrorKind::UnexpectedEof {
                    "it ended early".to_string()
                } else {
                    e.to_string()
                };
                Error::InvalidArchive(format!(
                    "blob {digest} of {place}: reading {len} bytes from offset {offset} failed: {why}"
                ))
            })?;
        done = end;
    }
    Ok(())
}

/// A whole small file, refusing one larger than `max`; `None` if missing.
pub(super) fn read_small_file(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .ctx("read", path)?;
    if bytes.len() as u64 > max {
        return Err(Error::InvalidArchive(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

/// `oci-layout` must say `imageLayoutVersion` 1.x.
pub(super) fn check_layout_marker(place: &str, bytes: &[u8]) -> Result<()> {
    let marker: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidArchive(format!("oci-layout of {place} is not JSON: {e}")))?;
    match marker.get("imageLayoutVersion").and_then(Value::as_str) {
        Some(v) if v == "1.0.0" || v.starts_with("1.") => Ok(()),
        other => Err(Error::InvalidArchive(format!(
            "oci-layout of {place} has imageLayoutVersion {other:?}, not 1.0.0"
        ))),
    }
}

/// The bytes of an `index.json` with no manifests.
pub(super) fn empty_index() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [],
    }))
    .expect("a literal serializes")
}

/// Parse `index.json`: an object whose `manifests`, when present, is an
/// array (or null) of objects.
pub(super) fn parse_index(place: &str, bytes: &[u8]) -> Result<Value> {
    let bad = |why: String| Error::InvalidArchive(format!("index.json of {place} {why}"));
    let index: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("is not JSON: {e}")))?;
    if !index.is_object() {
        return Err(bad("is not a JSON object".into()));
    }
    match index.get("manifests") {
        None | Some(Value::Null) => {}
        Some(Value::Array(entries)) => {
            if !entries.iter().all(Value::is_object) {
                return Err(bad("has a manifests entry that is not an object".into()));
            }
        }
        Some(_) => return Err(bad("has manifests that is not an array".into())),
    }
    Ok(index)
}

fn ref_name(entry: &Value) -> Option<&str> {
    entry
        .get("annotations")
        .and_then(|a| a.get(ANNOTATION_REF_NAME))
        .and_then(Value::as_str)
}

/// The digest `tag` names in `index` (the last entry when several do).
pub(super) fn tagged_manifest(place: &str, index: &Value, tag: &str) -> Result<Option<String>> {
    let Some(entries) = index.get("manifests").and_then(Value::as_array) else {
        return Ok(None);
    };
    let Some(entry) = entries.iter().rev().find(|e| ref_name(e) == Some(tag)) else {
        return Ok(None);
    };
    match entry.get("digest").and_then(Value::as_str) {
        Some(digest) => {
            digest_hex(digest).map_err(|_| {
                Error::InvalidArchive(format!(
                    "index.json of {place} names tag {tag} with digest {digest:?}, not sha256:<64 hex>"
                ))
            })?;
            Ok(Some(digest.to_string()))
        }
        None => Err(Error::InvalidArchive(format!(
            "index.json of {place} names tag {tag} without a digest"
        ))),
    }
}

/// `index` with `descriptor` as the entry named `tag`: it takes the place
/// of the first entry of that name (as skopeo does), later ones of the same
/// name are dropped, and every other entry stays as it was.
pub(super) fn index_with_tag(mut index: Value, tag: &str, descriptor: Value) -> Value {
    let object = index
        .as_object_mut()
        .expect("parse_index checked an object");
    let entries = match object.get_mut("manifests") {
        Some(Value::Array(entries)) => entries,
        _ => {
            object.insert("manifests".into(), Value::Array(Vec::new()));
            object["manifests"].as_array_mut().expect("just inserted")
        }
    };
    let mut descriptor = Some(descriptor);
    let mut kept = Vec::with_capacity(entries.len() + 1);
    for entry in entries.drain(..) {
        if ref_name(&entry) == Some(tag) {
            if let Some(d) = descriptor.take() {
                kept.push(d);
            }
        } else {
            kept.push(entry);
        }
    }
    kept.extend(descriptor);
    *entries = kept;
    index
}

/// The `index.json` entry of manifest `bytes` under `tag`.
pub(super) fn manifest_descriptor(tag: &str, bytes: &[u8], media_type: &str) -> Result<Value> {
    check_tag(tag).map_err(Error::InvalidArgument)?;
    if media_type.is_empty() {
        return Err(Error::InvalidArgument(
            "a manifest needs a media type".into(),
        ));
    }
    Ok(json!({
        "mediaType": media_type,
        "digest": sha256_digest(bytes),
        "size": bytes.len(),
        "annotations": { ANNOTATION_REF_NAME: tag },
    }))
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Unique across threads and processes (and, with the time, across pid reuse).
pub(super) fn unique_suffix() -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{n}-{nanos:08x}", std::process::id())
}

/// fsync a directory so a rename in it survives a power loss.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: Option<&str>, digest_char: char) -> Value {
        let mut e = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", digest_char.to_string().repeat(64)),
            "size": 1,
        });
        if let Some(tag) = tag {
            e["annotations"] = json!({ ANNOTATION_REF_NAME: tag });
        }
        e
    }

    #[test]
    fn index_with_tag_replaces_only_that_name_in_place() {
        let index = json!({
            "schemaVersion": 2,
            "x-other": {"kept": true},
            "manifests": [entry(Some("a"), '1'), entry(None, '2'), entry(Some("b"), '3'), entry(Some("a"), '4')],
        });
        let new = entry(Some("a"), '5');
        let out = index_with_tag(index, "a", new.clone());
        assert_eq!(out["x-other"], json!({"kept": true}));
        assert_eq!(
            out["manifests"],
            json!([new, entry(None, '2'), entry(Some("b"), '3')])
        );
        assert_eq!(
            tagged_manifest("t", &out, "a").unwrap().unwrap(),
            format!("sha256:{}", "5".repeat(64))
        );
    }

    #[test]
    fn index_with_tag_adds_manifests_when_missing_or_null() {
        for index in [json!({"schemaVersion": 2}), json!({"manifests": null})] {
            let out = index_with_tag(index, "t", entry(Some("t"), 'a'));
            assert_eq!(out["manifests"].as_array().unwrap().len(), 1);
        }
    }

    #[test]
    fn tagged_manifest_takes_the_last_and_refuses_a_bad_digest() {
        let index = json!({"manifests": [entry(Some("a"), '1'), entry(Some("a"), '2')]});
        assert_eq!(
            tagged_manifest("t", &index, "a").unwrap().unwrap(),
            format!("sha256:{}", "2".repeat(64))
        );
        assert_eq!(tagged_manifest("t", &index, "zz").unwrap(), None);
        let bad = json!({"manifests": [{"digest": "sha256:../../etc", "annotations": {ANNOTATION_REF_NAME: "a"}}]});
        let err = tagged_manifest("t", &bad, "a").unwrap_err();
        assert_eq!(err.code(), crate::error::ErrorCode::InvalidArchive, "{err}");
    }

    #[test]
    fn digests_that_are_not_sha256_hex_are_refused() {
        for bad in [
            "",
            "sha256:",
            "sha512:aa",
            "sha256:../x",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(digest_hex(bad).is_err(), "{bad}");
        }
        assert_eq!(
            digest_hex(&format!("sha256:{}", "0".repeat(64))).unwrap(),
            "0".repeat(64)
        );
    }

    #[test]
    fn parse_index_refuses_what_is_not_an_index() {
        for bad in [
            &b"[]"[..],
            b"nope",
            br#"{"manifests": 3}"#,
            br#"{"manifests": [1]}"#,
        ] {
            let err = parse_index("t", bad).unwrap_err();
            assert_eq!(err.code(), crate::error::ErrorCode::InvalidArchive);
        }
        parse_index("t", &empty_index()).unwrap();
    }
}

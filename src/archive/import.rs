//! `import`: unpack an archive into staging on the destination's filesystem,
//! check everything, then rename into place and index.
//!
//! Order of work, each step refusing with a message that names the entry:
//! 1. stream entries: path/type/layout checks (`entry_check`), duplicates,
//!    manifests parsed as they arrive, each upper's declared size checked
//!    against its manifest *before* its data is read, uppers written sparse;
//! 2. after the stream: every directory has a manifest and its upper, the
//!    directory name agrees with the digest, each artifact opens and verifies;
//! 3. conflicts: an existing directory of the same name must hold the same
//!    snapshot (then it is kept: idempotent), else `already_exists`;
//! 4. image blobs are added, snapshots renamed into place (rolled back if a
//!    later rename fails), then indexed.
//!
//! A failure at any step drops the staging directories, so the destination
//! and the index are left exactly as they were.
use super::compression;
use super::entry_check::{self, Place};
use super::image_subset::ImageReceiver;
use super::sparse_entry::MAX_REAL_SIZE;
use super::tar_format::EntryType;
use super::tar_reader::{Entry, SourceReader, TarReader};
use super::ImportReport;
use crate::artifact::{self, Artifact};
use crate::error::{Error, IoContext, Result};
use crate::home::Home;
use crate::integrity::{self, Algorithm, ChunkBuffers, DigestThread};
use crate::manifest::{digest_prefix, Manifest, MANIFEST_FILE};
use crate::progress::Monitor;
use crate::publish::Staging;
use crate::sparse::SparseWriter;
use std::cell::Cell;
use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Read/write unit for entry data.
const CHUNK: usize = 1024 * 1024;
/// Largest manifest.json we accept (real ones are under 1 KiB).
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Largest file we accept before its directory's manifest. microsandbox and
/// microsnap write the manifest first; hand-made archives (a17) may not, and
/// without a manifest nothing says how much data to expect, so such a file
/// may not be large: this is what stops a small archive from making us
/// expand an unbounded stream before any check applies.
pub const MAX_FILE_BEFORE_MANIFEST: u64 = 64 * 1024 * 1024;

/// Most decompressed bytes read after the end-of-archive marker to reach the
/// end of the zstd frame. Writers put nothing there but record padding (GNU
/// tar: under 10 KiB); a frame that goes on longer is not decompressed
/// further, so its end and checksum go unchecked.
const MAX_AFTER_END_MARKER: u64 = 1024 * 1024;

/// Import `archive` into `dest` (default: the home's snapshots directory).
pub fn import(
    home: &Home,
    archive: &Path,
    dest: Option<&Path>,
    monitor: &Monitor,
) -> Result<ImportReport> {
    import_named(home, archive, dest, None, monitor)
}

/// [`import`], installing the head under `head_name` (a bare name) in the
/// destination instead of the directory name the archive carries; its
/// ancestors keep theirs.
pub fn import_named(
    home: &Home,
    archive: &Path,
    dest: Option<&Path>,
    head_name: Option<&str>,
    monitor: &Monitor,
) -> Result<ImportReport> {
    if let Some(name) = head_name {
        crate::home::validate_bare_name("snapshot", name)?;
    }
    let dest_dir = dest.map_or_else(|| home.snapshots_dir(), Path::to_path_buf);
    let created = !dest_dir.exists();
    if created {
        fs::create_dir_all(&dest_dir).ctx("create destination", &dest_dir)?;
    }
    let result = import_into(home, archive, &dest_dir, head_name, monitor);
    if result.is_err() && created {
        // Leave no trace of a failed import; only removes it if still empty.
        let _ = fs::remove_dir(&dest_dir);
    }
    result
}

fn import_into(
    home: &Home,
    archive: &Path,
    dest: &Path,
    head_name: Option<&str>,
    monitor: &Monitor,
) -> Result<ImportReport> {
    let file = File::open(archive).ctx("open archive", archive)?;
    let len = file.metadata().ctx("stat", archive)?.len();
    if len == 0 {
        return Err(Error::InvalidArchive(format!(
            "{} is an empty file, not an archive",
            archive.display()
        )));
    }
    let mut magic = [0u8; 4];
    let n = file.read_at(&mut magic, 0).ctx("read", archive)?;
    monitor.phase(crate::progress::Phase::Import, len)?;
    let progress = ArchiveProgress::default();
    let source = CountingReader {
        inner: SourceReader(file),
        count: Rc::clone(&progress.read),
    };
    let zstd = compression::is_zstd(&magic[..n]);
    let stream: Box<dyn Read> = if zstd {
        Box::new(compression::decoder(source).ctx("start zstd decoder for", archive)?)
    } else {
        Box::new(BufReader::with_capacity(CHUNK, source))
    };
    let mut reader = TarReader::new(stream);
    let mut unpack = Unpack {
        home,
        dest,
        dirs: Vec::new(),
        seen: HashSet::new(),
        images: ImageReceiver::default(),
        next_seq: 0,
        progress,
    };
    while let Some(entry) = reader.next_entry()? {
        unpack.progress.tick(monitor)?;
        crate::fault::point("import.entry")?;
        unpack.entry(&entry, &mut reader, monitor)?;
    }
    if zstd {
        // The tar ended; the zstd frame must end too (checksum included),
        // or the file was cut short or corrupted after the marker.
        reader.check_stream_end(MAX_AFTER_END_MARKER)?;
    }
    unpack.progress.tick(monitor)?;
    let checked = unpack.check_all(monitor)?;
    crate::fault::point("import.after_check")?;
    install(home, dest, head_name, checked, monitor)
}

/// Counts bytes read from the archive file (compressed bytes), for progress.
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

#[derive(Default)]
struct ArchiveProgress {
    read: Rc<Cell<u64>>,
    reported: u64,
}

impl ArchiveProgress {
    fn tick(&mut self, monitor: &Monitor) -> Result<()> {
        let now = self.read.get();
        let delta = now.saturating_sub(self.reported);
        self.reported = now;
        monitor.advance(delta)
    }
}

/// One snapshot directory being received.
struct StagedDir {
    name: String,
    staging: Staging,
    manifest: Option<ReceivedManifest>,
    /// Data files received (name, logical size, archive entry name).
    files: Vec<(String, u64, String)>,
    /// The upper's digest, computed as it was unpacked (when the manifest
    /// came first and records integrity), so the check needs no re-read.
    streamed: Option<StreamedDigest>,
}

struct StreamedDigest {
    file: String,
    algorithm: Algorithm,
    digest: String,
}

struct ReceivedManifest {
    manifest: Manifest,
    digest: String,
    /// Position among the archive's manifests (archive order).
    seq: usize,
}

struct Unpack<'h> {
    home: &'h Home,
    dest: &'h Path,
    dirs: Vec<StagedDir>,
    seen: HashSet<String>,
    images: ImageReceiver,
    next_seq: usize,
    progress: ArchiveProgress,
}

impl Unpack<'_> {
    fn entry<R: Read>(
        &mut self,
        entry: &Entry,
        reader: &mut TarReader<R>,
        monitor: &Monitor,
    ) -> Result<()> {
        let place = entry_check::classify(entry)?;
        let key = entry_check::path_components(&entry.name)?.join("/");
        if !self.seen.insert(key) {
            return Err(Error::InvalidArchive(format!(
                "duplicate archive entry {}",
                entry.display_name()
            )));
        }
        match place {
            Place::SnapshotDir(dir) => {
                self.dir_index(&dir)?;
            }
            Place::SnapshotFile { dir, file } => self.file(&dir, &file, entry, reader, monitor)?,
            Place::ImageDir | Place::LegacyCache => {}
            Place::ImageFile(f) => self.images.receive(self.home, f, entry, reader, monitor)?,
        }
        Ok(())
    }

    fn dir_index(&mut self, name: &str) -> Result<usize> {
        if let Some(i) = self.dirs.iter().position(|d| d.name == name) {
            return Ok(i);
        }
        let staging = Staging::new(&self.home.staging_area_for(self.dest)?, "import")?;
        self.dirs.push(StagedDir {
            name: name.to_string(),
            staging,
            manifest: None,
            files: Vec::new(),
            streamed: None,
        });
        Ok(self.dirs.len() - 1)
    }

    fn file<R: Read>(
        &mut self,
        dir: &str,
        file: &str,
        entry: &Entry,
        reader: &mut TarReader<R>,
        monitor: &Monitor,
    ) -> Result<()> {
        let i = self.dir_index(dir)?;
        let name = entry.display_name();
        if file == MANIFEST_FILE {
            if entry.kind != EntryType::Regular {
                return Err(Error::InvalidArchive(format!(
                    "{name}: a manifest must be a plain regular entry"
                )));
            }
            let bytes = reader.read_data_to_vec(MAX_MANIFEST_BYTES)?;
            let manifest = Manifest::parse(&bytes).map_err(|e| in_entry(&name, e))?;
            let staged = &mut self.dirs[i];
            for (f, size, entry_name) in &staged.files {
                check_upper(&manifest, f, *size, entry_name)?;
            }
            let path = staged.staging.path().join(MANIFEST_FILE);
            write_new_file(&path, &bytes)?;
            let digest = manifest.digest();
            staged.manifest = Some(ReceivedManifest {
                manifest,
                digest,
                seq: self.next_seq,
            });
            self.next_seq += 1;
            return Ok(());
        }
        let logical = entry.logical_size();
        match &self.dirs[i].manifest {
            Some(m) => check_upper(&m.manifest, file, logical, &name)?,
            None if logical > MAX_FILE_BEFORE_MANIFEST => {
                return Err(Error::InvalidArchive(format!(
                    "{name} comes before its directory's manifest and declares {logical} bytes \
                     (at most {MAX_FILE_BEFORE_MANIFEST} are accepted before the manifest says what to expect)"
                )))
            }
            None => {}
        }
        if logical > MAX_REAL_SIZE {
            return Err(Error::InvalidArchive(format!(
                "{name} declares {logical} bytes, beyond the {MAX_REAL_SIZE} byte limit"
            )));
        }
        let algorithm = self.dirs[i]
            .manifest
            .as_ref()
            .and_then(|m| m.manifest.upper.integrity.as_ref())
            .and_then(|rec| Algorithm::from_name(&rec.algorithm));
        let mut digest = match algorithm {
            Some(a) => Some(DigestThread::spawn(a, logical, CHUNK)?),
            None => None,
        };
        let path = self.dirs[i].staging.path().join(file);
        restore_sparse(
            &path,
            entry,
            reader,
            digest.as_mut(),
            monitor,
            &mut self.progress,
        )?;
        if let (Some(algorithm), Some(thread)) = (algorithm, digest) {
            self.dirs[i].streamed = Some(StreamedDigest {
                file: file.to_string(),
                algorithm,
                digest: thread.finish()?,
            });
        }
        self.dirs[i].files.push((file.to_string(), logical, name));
        Ok(())
    }

    /// After the stream: every directory complete, every artifact opens and
    /// verifies, names agree with digests. Returns them in archive order.
    fn check_all(self, monitor: &Monitor) -> Result<Checked> {
        if self.dirs.iter().all(|d| d.manifest.is_none()) {
            return Err(Error::InvalidArchive(
                "archive contains no snapshot manifest".into(),
            ));
        }
        let mut ready = Vec::new();
        let mut digests = BTreeSet::new();
        for dir in self.dirs {
            let Some(received) = dir.manifest else {
                return Err(Error::InvalidArchive(format!(
                    "directory {} in the archive has no {MANIFEST_FILE}",
                    dir.name
                )));
            };
            let upper = &received.manifest.upper.file;
            let upper_entry = format!("{}/{upper}", dir.name);
            if !dir.files.iter().any(|(f, _, _)| f == upper) {
                return Err(Error::InvalidArchive(format!(
                    "{}/{MANIFEST_FILE} names upper file {upper:?}, which is not in the archive (missing upper file {upper_entry})",
                    dir.name
                )));
            }
            if looks_like_digest_prefix(&dir.name) && dir.name != digest_prefix(&received.digest) {
                return Err(Error::InvalidArchive(format!(
                    "{}/{MANIFEST_FILE}: its digest {} does not match its directory name {}; \
                     the manifest was changed after export",
                    dir.name, received.digest, dir.name
                )));
            }
            if !digests.insert(received.digest.clone()) {
                return Err(Error::InvalidArchive(format!(
                    "snapshot {} appears twice in the archive (again as {})",
                    received.digest, dir.name
                )));
            }
            monitor.check()?;
            let art = artifact::open_dir(dir.staging.path()).map_err(|e| in_entry(&dir.name, e))?;
            let streamed = dir.streamed.as_ref().filter(|s| &s.file == upper);
            artifact::verify_artifact_with(&art, |art, algorithm| match streamed {
                Some(s) if s.algorithm == algorithm => Ok(s.digest.clone()),
                _ => integrity::compute_file(
                    art.disk_upper("import")?.file,
                    &art.upper_path(),
                    algorithm,
                    monitor,
                ),
            })
            .map_err(|e| in_entry(&upper_entry, e))?;
            ready.push(Ready {
                name: dir.name,
                staging: dir.staging,
                digest: received.digest,
                parent: received.manifest.parent.clone(),
                has_integrity: received.manifest.upper.integrity.is_some(),
                staged_art: art,
                seq: received.seq,
            });
        }
        ready.sort_by_key(|r| r.seq);
        self.images.check()?;
        Ok(Checked {
            ready,
            images: self.images,
        })
    }
}

struct Ready {
    name: String,
    staging: Staging,
    digest: String,
    parent: Option<String>,
    has_integrity: bool,
    staged_art: Artifact,
    seq: usize,
}

struct Checked {
    ready: Vec<Ready>,
    images: ImageReceiver,
}

fn install(
    home: &Home,
    dest: &Path,
    head_name: Option<&str>,
    checked: Checked,
    monitor: &Monitor,
) -> Result<ImportReport> {
    let parents: BTreeSet<String> = checked
        .ready
        .iter()
        .filter_map(|r| r.parent.clone())
        .collect();
    let head_digest = checked
        .ready
        .iter()
        .rev()
        .find(|r| !parents.contains(&r.digest))
        .or(checked.ready.last())
        .map(|r| r.digest.clone())
        .ok_or_else(|| Error::Internal("no snapshot left to install".into()))?;

    // Conflicts first: nothing is installed unless everything can be.
    let mut to_publish = Vec::new();
    let mut targets = Vec::new();
    for r in checked.ready {
        let name = match head_name {
            Some(chosen) if r.digest == head_digest => chosen,
            _ => r.name.as_str(),
        };
        let target = dest.join(name);
        targets.push(target.clone());
        match fs::symlink_metadata(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => to_publish.push((r, target)),
            Err(e) => return Err(Error::io("check", &target, e)),
            Ok(_) => check_same_snapshot(&target, &r, monitor)?,
        }
    }
    // The image blobs added here are unreferenced until the images are named
    // and the snapshots published and indexed: keep image prune away until
    // this function returns.
    let _in_use = if checked.images.carries_images() {
        crate::image::ensure_layout(&home.images_dir())?;
        Some(crate::image::ImageUseGuard::acquire(&home.images_dir())?)
    } else {
        None
    };
    let images = checked.images.install(home)?;
    // Held until indexed: a crash in between leaves it stale, so the next open reindexes.
    let _indexing = Staging::new(&home.tmp_dir(), "indexing")?;
    let mut published: Vec<PathBuf> = Vec::new();
    for (r, target) in to_publish {
        monitor.check()?;
        crate::fault::point("import.before_publish")?;
        if let Err(e) = r.staging.publish(&target) {
            for done in &published {
                // Undo: these were renamed in by this import a moment ago.
                let _ = fs::remove_dir_all(done);
            }
            return Err(e);
        }
        published.push(target);
    }
    let mut imported = Vec::new();
    let indexed = (|| -> Result<()> {
        for target in &targets {
            crate::fault::point("import.before_index")?;
            let art = artifact::open_dir(target)?;
            artifact::index_artifact(home, &art)?;
            imported.push(art);
        }
        Ok(())
    })();
    if let Err(e) = indexed {
        unpublish(home, dest, &published);
        return Err(e);
    }
    let head_index = imported
        .iter()
        .position(|a| a.digest == head_digest)
        .ok_or_else(|| Error::Internal("head vanished during install".into()))?;
    let head = artifact::open_dir(&imported[head_index].path)?;
    Ok(ImportReport {
        head,
        imported,
        images,
    })
}

/// Take back what this import published because a later step failed: each
/// artifact moves away atomically (then is deleted) and loses its row, so a
/// failed import leaves the destination and the index as they were.
fn unpublish(home: &Home, dest: &Path, published: &[PathBuf]) {
    for done in published {
        let trash = home
            .staging_area_for(dest)
            .and_then(|area| Staging::new(&area, "remove"));
        if let Ok(trash) = trash {
            let _ = trash.take(done);
        }
        let key = done.to_string_lossy().into_owned();
        let _ = home
            .db()
            .write(|tx| crate::db::index::remove_by_path(tx, &key).map(drop));
    }
}

/// An existing directory of the same name is fine only if it is the same
/// snapshot with the same upper content.
fn check_same_snapshot(target: &Path, r: &Ready, monitor: &Monitor) -> Result<()> {
    let existing = artifact::open_dir(target).map_err(|e| {
        Error::AlreadyExists(format!(
            "{} already exists and is not a readable snapshot ({e}); the archive's {} is {}",
            target.display(),
            r.name,
            r.digest
        ))
    })?;
    if existing.digest != r.digest {
        return Err(Error::AlreadyExists(format!(
            "{} already holds snapshot {}; the archive's {} is a different snapshot, {}",
            target.display(),
            existing.digest,
            r.name,
            r.digest
        )));
    }
    let same_content = if r.has_integrity {
        // The staged upper verified against the recorded digest; so must this one.
        artifact::verify_artifact(&existing, monitor).is_ok()
    } else {
        let a = integrity::compute(&existing.upper_path(), Algorithm::MerkleSha256V1, monitor)?;
        let b = integrity::compute(
            &r.staged_art.upper_path(),
            Algorithm::MerkleSha256V1,
            monitor,
        )?;
        a == b
    };
    if !same_content {
        return Err(Error::AlreadyExists(format!(
            "{} holds snapshot {} with different upper content than the archive",
            target.display(),
            r.digest
        )));
    }
    Ok(())
}

/// A data file must be the upper its manifest names, of the recorded size.
fn check_upper(manifest: &Manifest, file: &str, logical: u64, entry: &str) -> Result<()> {
    if file != manifest.upper.file {
        return Err(Error::InvalidArchive(format!(
            "archive entry {entry:?} is outside the snapshot archive layout \
             (its manifest's upper is {:?})",
            manifest.upper.file
        )));
    }
    if logical != manifest.upper.size_bytes {
        return Err(Error::InvalidArchive(format!(
            "{entry} holds {logical} bytes but its manifest records size_bytes {}",
            manifest.upper.size_bytes
        )));
    }
    Ok(())
}

/// Write an entry's data to a new file at `path`, turning zero blocks into
/// holes whatever the entry type, so an imported upper is as sparse as its
/// data allows. With `digest`, each written chunk then goes to the hashing
/// thread, which hashes it while the next one is decompressed.
fn restore_sparse<R: Read>(
    path: &Path,
    entry: &Entry,
    reader: &mut TarReader<R>,
    digest: Option<&mut DigestThread>,
    monitor: &Monitor,
    progress: &mut ArchiveProgress,
) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .ctx("create", path)?;
    let mut writer = SparseWriter::with_path(file, path);
    let mut buffers = ChunkBuffers::new(digest, CHUNK);
    let mut copy_run = |offset: u64, len: u64, writer: &mut SparseWriter| -> Result<()> {
        let mut done = 0u64;
        while done < len {
            let mut buf = buffers.take();
            let want = buf
                .len()
                .min(usize::try_from(len - done).unwrap_or(usize::MAX));
            let n = reader.read_data(&mut buf[..want])?;
            if n == 0 {
                return Err(Error::InvalidArchive(format!(
                    "{}: data ends before its sparse map does",
                    entry.display_name()
                )));
            }
            writer.write_at(offset + done, &buf[..n])?;
            buffers.done(offset + done, buf, n)?;
            done += n as u64;
            progress.tick(monitor)?;
        }
        Ok(())
    };
    match &entry.sparse {
        Some(map) => {
            for run in &map.runs {
                copy_run(run.offset, run.len, &mut writer)?;
            }
        }
        None => copy_run(0, entry.size, &mut writer)?,
    }
    writer.finish(entry.logical_size())?;
    Ok(())
}

fn write_new_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .ctx("create", path)?;
    f.write_all(bytes).ctx("write", path)?;
    f.sync_all().ctx("fsync", path)
}

/// `sha256-<1..16 hex>`: the name our exporter and microsandbox give a
/// snapshot directory. Such a name must agree with the manifest's digest;
/// other names are accepted as they are (microsandbox accepts them, a20).
fn looks_like_digest_prefix(name: &str) -> bool {
    name.strip_prefix("sha256-").is_some_and(|hex| {
        (1..=16).contains(&hex.len()) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Name the archive entry in an error from a check, keeping its code where
/// it is more specific than `invalid_archive`.
fn in_entry(entry: &str, e: Error) -> Error {
    match e {
        Error::InvalidManifest(m) => Error::InvalidManifest(format!("archive entry {entry}: {m}")),
        Error::IntegrityMismatch {
            expected, actual, ..
        } => Error::IntegrityMismatch {
            path: format!("archive entry {entry}"),
            expected,
            actual,
        },
        Error::Io { .. } | Error::Cancelled | Error::Internal(_) => e,
        other => Error::InvalidArchive(format!("archive entry {entry}: {other}")),
    }
}

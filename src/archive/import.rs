//! `import`: unpack an archive into staging on the destination's filesystem,
//! check everything, then rename into place and index.
//!
//! Both layouts are read: microsandbox v0.6.3's `<dir>/manifest.json` +
//! `<dir>/<upper>` and v0.6.14's `snapshots/<hex>/snapshot.json` +
//! `files/<hex>/<upper>` with its inventory `archive.json`
//! (vectors/msb-0.6.14/SPEC-NOTES.md §9–§11).
//!
//! Order of work, each step refusing with a message that names the entry:
//! 1. stream entries: path/type/layout checks (`entry_check`,
//!    `layout_v0614`), duplicates, descriptors parsed as they arrive, each
//!    upper's declared size checked against its descriptor *before* its
//!    data is read, uppers written sparse, v0.6.14 members' transport
//!    digests taken on the way;
//! 2. after the stream, with `archive.json`: every listed member present with
//!    its sizes and digests, nothing unlisted (no v0.6.3-layout member at
//!    all), the listed snapshots are the received ones (`inventory`);
//! 3. every directory has a descriptor and its upper, the directory name
//!    agrees with the digest, each artifact opens as received and verifies;
//! 4. conflicts: an existing directory of the same name must hold the same
//!    snapshot (then it is kept: idempotent), else `already_exists`;
//! 5. image blobs are added, snapshots renamed into place (rolled back if a
//!    later rename fails), then indexed.
//!
//! A failure at any step drops the staging directories, so the destination
//! and the index are left exactly as they were.
use super::compression;
use super::entry_check::{self, ImageKind, Place};
use super::image_subset::ImageReceiver;
use super::inventory::{
    Inventory, MemberFacts, StagedSnapshot, INVENTORY_FILE, KIND_DESCRIPTOR, KIND_PAYLOAD,
    MAX_INVENTORY_BYTES,
};
use super::sparse_entry::{SparseMap, MAX_REAL_SIZE};
use super::tar_format::EntryType;
use super::tar_reader::{Entry, SourceReader, TarReader};
use super::transport_digest::{self, MemberHasher};
use super::ImportReport;
use crate::artifact::{self, Artifact, ArtifactFormat, Descriptor};
use crate::error::{Error, IoContext, Result};
use crate::home::Home;
use crate::integrity::{self, Algorithm, ChunkBuffers, DigestThread};
use crate::manifest::{digest_prefix, MANIFEST_FILE};
use crate::progress::Monitor;
use crate::publish::Staging;
use crate::snapshot_json::{DESCRIPTOR_FILE, RESERVED_NAMES};
use crate::sparse::SparseWriter;
use sha2::{Digest, Sha256};
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
        inventory: None,
        members: Vec::new(),
        skipped: Vec::new(),
        any_current: false,
        first_v063_member: None,
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
    /// The archive's directory name (v0.6.3) or the 64 hex digits of
    /// `snapshots/<hex>/` and `files/<hex>/` (v0.6.14), which both land here.
    name: String,
    /// Whether the directory came from the v0.6.14 layout.
    current: bool,
    staging: Staging,
    descriptor: Option<ReceivedDescriptor>,
    /// Data files received (name, logical size, archive entry name).
    files: Vec<(String, u64, String)>,
    /// The upper's digest, computed as it was unpacked (when the descriptor
    /// came first and records integrity), so the check needs no re-read.
    streamed: Option<StreamedDigest>,
}

struct StreamedDigest {
    file: String,
    algorithm: Algorithm,
    digest: String,
}

struct ReceivedDescriptor {
    descriptor: Descriptor,
    digest: String,
    /// Position among the archive's descriptors (archive order).
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
    /// `archive.json`, when the archive has one (v0.6.14).
    inventory: Option<Inventory>,
    /// What was seen of every v0.6.14 member, for the inventory's checks.
    members: Vec<MemberFacts>,
    /// v0.6.14 image cache members: checked, not installed.
    skipped: Vec<String>,
    /// Some member was of the v0.6.14 layout.
    any_current: bool,
    /// The first member of the v0.6.3 layout (a snapshot directory, an
    /// `oci-image/` or `cache/` entry): none may come with an inventory,
    /// which could not list it.
    first_v063_member: Option<String>,
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
        if !self.seen.insert(key.clone()) {
            // v0.6.14's words for its layout, microsnap's own for v0.6.3's.
            let msg = if place.is_current_layout() {
                format!("archive contains duplicate entry: {}", entry.display_name())
            } else {
                format!("duplicate archive entry {}", entry.display_name())
            };
            return Err(Error::InvalidArchive(msg));
        }
        if place.is_current_layout() {
            self.any_current = true;
        } else if self.first_v063_member.is_none() {
            self.first_v063_member = Some(entry.display_name());
        }
        match place {
            Place::SnapshotDir(dir) => {
                self.dir_index(&dir, false, &key)?;
            }
            Place::SnapshotFile { dir, file } => {
                let i = self.dir_index(&dir, false, &key)?;
                if file == MANIFEST_FILE {
                    self.descriptor(i, entry, reader, None)?;
                } else {
                    self.file(i, &file, entry, reader, monitor, None)?;
                }
            }
            Place::ImageDir | Place::LegacyCache | Place::CurrentDir => {}
            Place::ImageFile(f) => self.images.receive(self.home, f, entry, reader, monitor)?,
            Place::Inventory => {
                if entry.kind != EntryType::Regular || entry.sparse.is_some() {
                    return Err(Error::InvalidArchive(format!(
                        "{INVENTORY_FILE} must be a plain regular entry"
                    )));
                }
                let bytes = reader.read_data_to_vec(MAX_INVENTORY_BYTES)?;
                self.inventory = Some(Inventory::parse(&bytes)?);
            }
            Place::CurrentDescriptor(hex) => {
                let i = self.dir_index(&hex, true, &key)?;
                self.descriptor(i, entry, reader, Some(key))?;
            }
            Place::CurrentFile { hex, file } => {
                let i = self.dir_index(&hex, true, &key)?;
                self.file(i, &file, entry, reader, monitor, Some(key))?;
            }
            Place::CurrentImage(kind) => self.skip_image(kind, &key, entry, reader, monitor)?,
        }
        Ok(())
    }

    fn dir_index(&mut self, name: &str, current: bool, entry: &str) -> Result<usize> {
        if let Some(i) = self.dirs.iter().position(|d| d.name == name) {
            if self.dirs[i].current != current {
                return Err(Error::InvalidArchive(format!(
                    "archive entries map to the same extraction target: {entry} and the \
                     {} directory {name}",
                    if current { "v0.6.3" } else { "v0.6.14" }
                )));
            }
            return Ok(i);
        }
        let staging = Staging::new(&self.home.staging_area_for(self.dest)?, "import")?;
        self.dirs.push(StagedDir {
            name: name.to_string(),
            current,
            staging,
            descriptor: None,
            files: Vec::new(),
            streamed: None,
        });
        Ok(self.dirs.len() - 1)
    }

    /// A `manifest.json` (v0.6.3, `member` None) or `snapshot.json` (v0.6.14,
    /// `member` its path for the inventory): parsed, its bytes staged as
    /// received.
    fn descriptor<R: Read>(
        &mut self,
        i: usize,
        entry: &Entry,
        reader: &mut TarReader<R>,
        member: Option<String>,
    ) -> Result<()> {
        let name = entry.display_name();
        if entry.kind != EntryType::Regular {
            return Err(Error::InvalidArchive(format!(
                "{name}: a snapshot descriptor must be a plain regular entry"
            )));
        }
        let bytes = reader.read_data_to_vec(MAX_MANIFEST_BYTES)?;
        let format = if member.is_some() {
            ArtifactFormat::MsbV0614
        } else {
            ArtifactFormat::MsbV063
        };
        let (descriptor, digest) =
            Descriptor::parse(format, &bytes).map_err(|e| in_entry(&name, e))?;
        let staged = &mut self.dirs[i];
        // A directory's descriptor has one member name (`dir_index` keeps
        // the layouts apart), and `seen` refused a repeated name.
        debug_assert!(staged.descriptor.is_none());
        for (f, size, entry_name) in &staged.files {
            check_upper(&descriptor, f, *size, entry_name)?;
        }
        let path = staged.staging.path().join(format.descriptor_file());
        write_new_file(&path, &bytes)?;
        staged.descriptor = Some(ReceivedDescriptor {
            descriptor,
            digest,
            seq: self.next_seq,
        });
        self.next_seq += 1;
        if let Some(path) = member {
            self.members.push(MemberFacts {
                kind: KIND_DESCRIPTOR,
                encoded_size: bytes.len() as u64,
                apparent_size: bytes.len() as u64,
                transport_digest: transport_digest::of_dense(KIND_DESCRIPTOR, &path, &bytes),
                sha256: Some(crate::manifest::sha256_digest(&bytes)),
                path,
            });
        }
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        i: usize,
        file: &str,
        entry: &Entry,
        reader: &mut TarReader<R>,
        monitor: &Monitor,
        member: Option<String>,
    ) -> Result<()> {
        let name = entry.display_name();
        // A descriptor's name as a data file would collide with the staged
        // descriptor, or make the staged directory open as the other format
        // (a v0.6.3 upper named `snapshot.json` opens as v0.6.14).
        if RESERVED_NAMES.contains(&file) {
            return Err(Error::InvalidArchive(format!(
                "archive entry {name:?}: a data file may not be named {file:?}, \
                 a name reserved for snapshot descriptors"
            )));
        }
        let logical = entry.logical_size();
        match &self.dirs[i].descriptor {
            Some(d) => check_upper(&d.descriptor, file, logical, &name)?,
            None if logical > MAX_FILE_BEFORE_MANIFEST => {
                let what = if member.is_some() {
                    DESCRIPTOR_FILE
                } else {
                    "manifest"
                };
                return Err(Error::InvalidArchive(format!(
                    "{name} comes before its directory's {what} and declares {logical} bytes \
                     (at most {MAX_FILE_BEFORE_MANIFEST} are accepted before the {what} says what to expect)"
                )));
            }
            None => {}
        }
        if logical > MAX_REAL_SIZE {
            return Err(Error::InvalidArchive(format!(
                "{name} declares {logical} bytes, beyond the {MAX_REAL_SIZE} byte limit"
            )));
        }
        // Each file of a directory has one member name, and `seen` refused
        // a repeated name.
        debug_assert!(!self.dirs[i].files.iter().any(|(f, _, _)| f == file));
        let mut hasher = match &member {
            Some(path) => {
                if let Some(map) = &entry.sparse {
                    check_v0614_sparse_map(map, &name)?;
                }
                let slots = entry.sparse.as_ref().map_or(&[][..], |m| &m.runs[..]);
                Some(MemberHasher::new(
                    KIND_PAYLOAD,
                    path,
                    entry.size,
                    logical,
                    slots,
                ))
            }
            None => None,
        };
        let algorithm = self.dirs[i]
            .descriptor
            .as_ref()
            .and_then(|d| stream_algorithm(&d.descriptor));
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
            hasher.as_mut(),
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
        if let (Some(path), Some(h)) = (member, hasher) {
            self.members.push(MemberFacts {
                path,
                kind: KIND_PAYLOAD,
                encoded_size: entry.size,
                apparent_size: logical,
                transport_digest: h.finish(),
                sha256: None,
            });
        }
        Ok(())
    }

    /// A v0.6.14 image cache file: its digests are taken for the inventory,
    /// its bytes dropped. microsnap keeps images as an OCI layout
    /// (`crate::image`); an erofs/vmdk runtime cache has no place in it.
    fn skip_image<R: Read>(
        &mut self,
        kind: ImageKind,
        path: &str,
        entry: &Entry,
        reader: &mut TarReader<R>,
        monitor: &Monitor,
    ) -> Result<()> {
        let name = entry.display_name();
        if entry.kind != EntryType::Regular {
            return Err(Error::InvalidArchive(format!(
                "{name}: image cache files must be plain regular entries"
            )));
        }
        let entry_kind = kind.entry_kind();
        let mut hasher = MemberHasher::new(entry_kind, path, entry.size, entry.size, &[]);
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read_data(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            sha.update(&buf[..n]);
            self.progress.tick(monitor)?;
        }
        self.members.push(MemberFacts {
            path: path.to_string(),
            kind: entry_kind,
            encoded_size: entry.size,
            apparent_size: entry.size,
            transport_digest: hasher.finish(),
            sha256: Some(format!("sha256:{}", hex(&sha.finalize()))),
        });
        self.skipped.push(path.to_string());
        Ok(())
    }

    /// After the stream: the inventory agrees with the members, every
    /// directory is complete, every artifact opens and verifies, names agree
    /// with digests. Returns them in archive order.
    fn check_all(self, monitor: &Monitor) -> Result<Checked> {
        if let Some(inv) = &self.inventory {
            inv.check_members(&self.members)?;
            // With an inventory nothing it does not list is installed: a
            // v0.6.3 snapshot directory, `oci-image/` (which install would
            // add to the image store) or `cache/` (which would be dropped
            // unseen) is refused, not set aside.
            if let Some(name) = &self.first_v063_member {
                return Err(Error::InvalidArchive(format!(
                    "archive contains a non-inventoried file: {name:?} (of the v0.6.3 \
                     layout) beside {INVENTORY_FILE}"
                )));
            }
        }
        if self.dirs.iter().all(|d| d.descriptor.is_none()) {
            return Err(Error::InvalidArchive(
                "archive contains no snapshot manifest (manifest.json or snapshot.json)".into(),
            ));
        }
        // A directory that no descriptor names is never installed.
        if let Some(dir) = self.dirs.iter().find(|d| d.descriptor.is_none()) {
            let what = if dir.current {
                format!(
                    "files/{}/ has no snapshots/{}/snapshot.json: no descriptor names it, \
                     so it is not installed (microsandbox v0.6.14 would install it unchecked)",
                    dir.name, dir.name
                )
            } else {
                format!(
                    "directory {} in the archive has no {MANIFEST_FILE}",
                    dir.name
                )
            };
            return Err(Error::InvalidArchive(what));
        }
        // The inventory against the received descriptors: cheap, so before
        // any upper is opened and verified.
        if let Some(inv) = &self.inventory {
            let staged: Vec<StagedSnapshot<'_>> = self
                .dirs
                .iter()
                .filter_map(|d| d.descriptor.as_ref())
                .map(|r| StagedSnapshot {
                    digest: &r.digest,
                    upper: match &r.descriptor {
                        Descriptor::Snapshot(d) => d
                            .file_upper()
                            .map(|u| (u.file.as_str(), u.integrity.as_ref())),
                        Descriptor::Manifest(_) => None,
                    },
                })
                .collect();
            inv.check_snapshots(&staged)?;
        }
        let mut ready = Vec::new();
        let mut digests = BTreeSet::new();
        for mut dir in self.dirs {
            let Some(received) = dir.descriptor.take() else {
                return Err(Error::Internal("descriptor vanished".into()));
            };
            let upper = received.descriptor.upper().map(|u| u.file);
            let upper_entry = match (&upper, dir.current) {
                (Some(u), true) => format!("files/{}/{u}", dir.name),
                (Some(u), false) => format!("{}/{u}", dir.name),
                (None, _) => dir.name.clone(),
            };
            if let Some(upper) = &upper {
                if !dir.files.iter().any(|(f, _, _)| f == upper) {
                    return Err(Error::InvalidArchive(format!(
                        "missing upper file: the descriptor of {} names upper file {upper:?}, \
                         which is not in the archive ({upper_entry})",
                        received.digest
                    )));
                }
            }
            if dir.current {
                if dir.name != received.digest.trim_start_matches("sha256:") {
                    return Err(Error::InvalidArchive(format!(
                        "snapshots/{}/snapshot.json: its identity {} does not match its member path; \
                         the descriptor was changed after export",
                        dir.name, received.digest
                    )));
                }
            } else if looks_like_digest_prefix(&dir.name)
                && dir.name != digest_prefix(&received.digest)
            {
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
            // The same open and verify as any artifact, on the staged copy;
            // the upper's digest was mostly taken while it was unpacked.
            // microsandbox v0.6.14 runs no content check on import (q01).
            let art = artifact::open_dir(dir.staging.path()).map_err(|e| in_entry(&dir.name, e))?;
            // What opens must be what was received and checked above.
            let format = if dir.current {
                ArtifactFormat::MsbV0614
            } else {
                ArtifactFormat::MsbV063
            };
            if art.digest != received.digest || art.format() != format {
                return Err(Error::InvalidArchive(format!(
                    "archive entry {:?}: the staged directory opens as {} snapshot {}, \
                     not as the received {format} descriptor {}",
                    dir.name,
                    art.format(),
                    art.digest,
                    received.digest
                )));
            }
            if let Some(upper) = &upper {
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
            }
            ready.push(Ready {
                name: dir.name,
                staging: dir.staging,
                digest: received.digest,
                staged_art: art,
                seq: received.seq,
            });
        }
        ready.sort_by_key(|r| r.seq);
        self.images.check()?;
        let head = choose_head(&ready, self.inventory.as_ref(), self.any_current)?;
        Ok(Checked {
            ready,
            images: self.images,
            head,
            skipped: self.skipped,
        })
    }
}

/// The v0.6.14 sparse-map rules on top of the general ones
/// (`SparseMap::validate`): every data run starts at a stored offset that is
/// a multiple of 512, and the map ends exactly at the real size (with a
/// `(size, 0)` terminator when the file ends in a hole).
fn check_v0614_sparse_map(map: &SparseMap, name: &str) -> Result<()> {
    let mut stored = 0u64;
    for run in &map.runs {
        if run.len > 0 && stored % 512 != 0 {
            return Err(Error::InvalidArchive(format!(
                "{name}: sparse run at offset {} starts at stored offset {stored}, \
                 not a multiple of 512",
                run.offset
            )));
        }
        stored += run.len;
    }
    let end = map.runs.last().map(|r| r.offset + r.len);
    if end != Some(map.real_size) {
        return Err(Error::InvalidArchive(format!(
            "{name}: sparse map does not end at the entry's realsize {}",
            map.real_size
        )));
    }
    Ok(())
}

/// The head: the inventory's `head` when there is one; else, for an
/// archive with v0.6.14 members, the one snapshot no other names as parent
/// (several or none refused, as v0.6.14 does); else (a v0.6.3 archive) the
/// last-listed such snapshot, as microsnap always did.
fn choose_head(
    ready: &[Ready],
    inventory: Option<&Inventory>,
    any_current: bool,
) -> Result<String> {
    if let Some(inv) = inventory {
        return Ok(inv.head.clone());
    }
    let parents: BTreeSet<&str> = ready
        .iter()
        .filter_map(|r| r.staged_art.descriptor.parent())
        .collect();
    let heads: Vec<&Ready> = ready
        .iter()
        .filter(|r| !parents.contains(r.digest.as_str()))
        .collect();
    if any_current {
        return match heads.as_slice() {
            [one] => Ok(one.digest.clone()),
            [] => Err(Error::InvalidArchive(
                "archive parent graph has no head".into(),
            )),
            many => Err(Error::InvalidArchive(format!(
                "archive parent graph has multiple heads: {}",
                many.iter()
                    .map(|r| r.digest.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    heads
        .last()
        .copied()
        .or(ready.last())
        .map(|r| r.digest.clone())
        .ok_or_else(|| Error::Internal("no snapshot left to install".into()))
}

struct Ready {
    name: String,
    staging: Staging,
    /// `staged_art.digest`, which `check_all` made sure is the received one.
    digest: String,
    /// The staged artifact, opened: parent and upper come from it.
    staged_art: Artifact,
    seq: usize,
}

struct Checked {
    ready: Vec<Ready>,
    images: ImageReceiver,
    head: String,
    skipped: Vec<String>,
}

fn install(
    home: &Home,
    dest: &Path,
    head_name: Option<&str>,
    checked: Checked,
    monitor: &Monitor,
) -> Result<ImportReport> {
    let head_digest = checked.head.clone();
    // Known before anything is published, so it cannot fail after.
    let head_index = checked
        .ready
        .iter()
        .position(|r| r.digest == head_digest)
        .ok_or_else(|| {
            Error::Internal(format!("the head {head_digest} is not among the snapshots"))
        })?;

    // Conflicts first: nothing is installed unless everything can be.
    let mut to_publish = Vec::new();
    let mut targets = Vec::new();
    for r in checked.ready {
        let name = match head_name {
            Some(chosen) if r.digest == head_digest => chosen,
            _ => r.name.as_str(),
        };
        let target = dest.join(name);
        targets.push((target.clone(), r.digest.clone()));
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
    let indexed = (|| -> Result<Artifact> {
        for (target, digest) in &targets {
            crate::fault::point("import.before_index")?;
            let art = artifact::open_dir(target)?;
            if art.digest != *digest {
                return Err(Error::Internal(format!(
                    "{} opened as {} after install, not as the imported {digest}",
                    target.display(),
                    art.digest
                )));
            }
            artifact::index_artifact(home, &art)?;
            imported.push(art);
        }
        imported
            .get(head_index)
            .cloned()
            .ok_or_else(|| Error::Internal("head vanished during install".into()))
    })();
    let head = match indexed {
        Ok(head) => head,
        Err(e) => {
            unpublish(home, dest, &published);
            return Err(e);
        }
    };
    Ok(ImportReport {
        head,
        imported,
        images,
        skipped: checked.skipped,
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
    let Some(upper) = r.staged_art.upper_spec() else {
        return Ok(()); // a descriptor-only artifact: the descriptor is all of it
    };
    let same_content = if upper.integrity.is_some() {
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

/// Write an entry's data to a new file at `path`, turning zero blocks into
/// holes whatever the entry type, so an imported upper is as sparse as its
/// data allows. With `digest`, each written chunk then goes to the hashing
/// thread, which hashes it while the next one is decompressed.
fn restore_sparse<R: Read>(
    path: &Path,
    entry: &Entry,
    reader: &mut TarReader<R>,
    digest: Option<&mut DigestThread>,
    mut transport: Option<&mut MemberHasher>,
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
            if let Some(h) = transport.as_deref_mut() {
                h.update(&buf[..n]);
            }
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A data file named `file` of `logical` bytes must be the descriptor's
/// upper, of the recorded size.
fn check_upper(d: &Descriptor, file: &str, logical: u64, entry: &str) -> Result<()> {
    let Some(upper) = d.upper() else {
        return Err(Error::InvalidArchive(format!(
            "archive entry {entry:?}: its snapshot is checkpoint state, which has no upper file"
        )));
    };
    let descriptor_file = d.format().descriptor_file();
    if file != upper.file {
        return Err(Error::InvalidArchive(format!(
            "archive entry {entry:?} is outside the snapshot archive layout \
             (its {descriptor_file}'s upper is {:?})",
            upper.file
        )));
    }
    if logical != upper.size_bytes {
        return Err(Error::InvalidArchive(format!(
            "{entry} holds {logical} bytes but its {descriptor_file} records size_bytes {}",
            upper.size_bytes
        )));
    }
    Ok(())
}

/// The algorithm to run on the upper as it streams, when this build knows
/// the recorded one (else the check after the stream names it unsupported).
fn stream_algorithm(d: &Descriptor) -> Option<Algorithm> {
    d.upper()
        .and_then(|u| u.integrity)
        .and_then(|i| Algorithm::from_name(&i.algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{DiskFormat, ImagePin, Manifest, Upper};

    /// A v0.6.3 artifact staged for `dest`, opened, as `check_all` leaves it.
    fn staged(home: &Home, dest: &Path, name: &str) -> Ready {
        let staging = Staging::new(&home.staging_area_for(dest).unwrap(), "import").unwrap();
        File::create(staging.path().join("upper.ext4"))
            .unwrap()
            .set_len(4096)
            .unwrap();
        let m = Manifest {
            schema: 1,
            format: DiskFormat::Raw,
            fstype: "ext4".into(),
            image: ImagePin {
                reference: "alpine:3.20".into(),
                manifest_digest: format!("sha256:{}", "ab".repeat(32)),
            },
            parent: None,
            created_at: "2026-05-01T12:00:00+00:00".into(),
            labels: Default::default(),
            upper: Upper {
                file: "upper.ext4".into(),
                size_bytes: 4096,
                integrity: None,
            },
            source_sandbox: None,
        };
        m.write_to(staging.path()).unwrap();
        let art = artifact::open_dir(staging.path()).unwrap();
        Ready {
            name: name.into(),
            digest: art.digest.clone(),
            seq: 0,
            staged_art: art,
            staging,
        }
    }

    /// A failure once snapshots are published (here: the head is not among
    /// them) takes back what was published and indexed.
    #[test]
    fn a_failure_after_publishing_leaves_the_destination_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let home = Home::open(&tmp.path().join("home")).unwrap();
        let dest = home.snapshots_dir();
        let checked = Checked {
            ready: vec![staged(&home, &dest, "one")],
            images: ImageReceiver::default(),
            head: format!("sha256:{}", "0".repeat(64)),
            skipped: Vec::new(),
        };
        assert!(install(&home, &dest, None, checked, &Monitor::none()).is_err());
        assert!(!dest.join("one").exists(), "published snapshot left behind");
        let rows = home.db().read(crate::db::index::all_paths).unwrap();
        assert!(rows.is_empty(), "index rows left behind: {rows:?}");
    }
}

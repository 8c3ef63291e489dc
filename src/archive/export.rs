//! `export`: write snapshots (and optionally their ancestors and image) to a
//! `.tar.zst` or `.tar`, streaming, reading only the uppers' allocated data.
use super::compression;
use super::image_subset::{self, ImageToShip};
use super::inventory::{
    self, Inventory, InventoryEntry, InventorySnapshot, MemberFacts, TransportIntegrity,
    INVENTORY_FILE, KIND_DESCRIPTOR, KIND_PAYLOAD,
};
use super::layout_plan::{self, PlannedSnapshot, TheirEncoding};
use super::sparse_entry::{SparseMap, SparseRun};
use super::tar_format::fits_in_header;
use super::tar_writer::{FileMeta, TarWriter};
use super::transport_digest::{self, MemberHasher};
use super::{ExportOptions, ExportReport};
use crate::artifact::{self, Artifact, ArtifactFormat};
use crate::error::{Error, IoContext, Result};
use crate::home::Home;
use crate::integrity::{Algorithm, ChunkBuffers, DigestThread};
use crate::manifest::{digest_prefix, UpperIntegrity};
use crate::progress::Monitor;
use crate::snapshot_json::Integrity;
use crate::sparse;
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Bytes read from an upper per `pread`.
const CHUNK: usize = 1024 * 1024;
/// Longest parent chain we follow; real chains are short, a longer one means
/// a cycle or a corrupt store.
const MAX_CHAIN: usize = 10_000;

/// Export the snapshot `name_or_path` to `out`.
pub fn export(
    home: &Home,
    name_or_path: &str,
    out: &Path,
    opts: &ExportOptions,
    monitor: &Monitor,
) -> Result<ExportReport> {
    let level = match opts.level {
        Some(l) => compression::check_level(l).map_err(Error::InvalidArgument)?,
        None => compression::DEFAULT_LEVEL,
    };
    let threads = opts.threads.unwrap_or_else(compression::default_threads);
    let their_format = opts.format == ArtifactFormat::MsbV0614;
    if their_format && opts.with_image {
        return Err(Error::Unsupported(
            "with_image in a msb-v0.6.14 archive: v0.6.14 ships its erofs/vmdk image cache \
             (images/…), which microsnap does not keep (its image store is an OCI layout); \
             export without the image, or in the msb-v0.6.3 format (oci-image/)"
                .into(),
        ));
    }
    if their_format && opts.dense {
        return Err(Error::InvalidArgument(
            "dense applies to the msb-v0.6.3 archive format; msb-v0.6.14 archives encode \
             uppers the way v0.6.14 does"
                .into(),
        ));
    }
    let head = artifact::resolve(home, name_or_path)?;
    let chain = if opts.with_parents {
        chain_of(home, head)?
    } else {
        vec![head]
    };
    let images = if opts.with_image {
        let pins: Vec<_> = chain.iter().map(|a| a.descriptor.image()).collect();
        image_subset::plan(home, &pins)?
    } else {
        Vec::new()
    };
    let planned = layout_plan::plan_chain(&chain, their_format, monitor)?;
    refuse_long_payload_names(&chain, &planned)?;
    let plans = chain
        .iter()
        .map(|art| match art.upper_spec() {
            Some(_) => UpperPlan::of(art, opts.dense).map(Some),
            None => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    let total = plans
        .iter()
        .flatten()
        .map(|p| p.bytes_to_write)
        .sum::<u64>()
        + image_subset::total_bytes(&images);
    let job = Job {
        chain: &chain,
        planned: &planned,
        plans: &plans,
        images: &images,
        inventory: their_format.then_some(InventoryInfo {
            with_parents: opts.with_parents,
            suggested_name: suggested_name(&chain[chain.len() - 1].path),
        }),
    };
    monitor.phase(crate::progress::Phase::Export, total)?;

    let temp = TempOutput::create(out)?;
    let counted = CountingWriter {
        inner: BufWriter::with_capacity(CHUNK, temp.file()?),
        count: 0,
        unflushed: 0,
    };
    let write_err = |e: io::Error| Error::io("write", temp.path(), e);
    let counted = if opts.plain_tar {
        let mut tar = TarWriter::new(counted);
        write_all(&mut tar, home, &job, monitor)?;
        tar.finish().map_err(write_err)?
    } else {
        let enc = compression::encoder(counted, level, threads).map_err(write_err)?;
        let mut tar = TarWriter::new(enc);
        write_all(&mut tar, home, &job, monitor)?;
        let enc = tar.finish().map_err(write_err)?;
        enc.finish().map_err(write_err)?
    };
    let bytes_written = counted.count;
    let file = counted
        .inner
        .into_inner()
        .map_err(|e| write_err(e.into_error()))?;
    file.sync_all().map_err(write_err)?;
    drop(file);
    monitor.check()?;
    temp.commit(out)?;
    Ok(ExportReport {
        path: out.to_path_buf(),
        snapshots: planned.iter().map(|p| p.digest.clone()).collect(),
        bytes_written,
    })
}

/// A v0.6.14-layout payload member `files/<hex>/<upper>` must fit the tar
/// header's 100-byte name field (an upper name of at most 29 bytes): a
/// longer one needs a GNU long name record, which no importer of that
/// layout accepts (v0.6.14's own save writes such archives, hostile/h26).
/// Checked before anything is written.
fn refuse_long_payload_names(chain: &[Artifact], planned: &[PlannedSnapshot]) -> Result<()> {
    for (art, planned) in chain.iter().zip(planned) {
        let Some(upper) = art.upper_spec().filter(|_| planned.current_layout) else {
            continue;
        };
        let name = inventory::payload_path(&planned.digest, &upper.file);
        if !fits_in_header(name.as_bytes()) {
            return Err(Error::Unsupported(format!(
                "{}: its upper file name {:?} ({} bytes) is too long for the msb-v0.6.14 \
                 archive layout: the member {name:?} would need a GNU long name, which \
                 v0.6.14 importers refuse (upper names of at most 29 bytes fit)",
                art.path.display(),
                upper.file,
                upper.file.len(),
            )));
        }
    }
    Ok(())
}

/// The head and its ancestors, root first. Parents resolve through the
/// index, then the snapshots directory.
pub(crate) fn chain_of(home: &Home, head: Artifact) -> Result<Vec<Artifact>> {
    let mut chain = vec![head];
    let mut seen = BTreeSet::new();
    while let Some(parent) = chain
        .last()
        .and_then(|a| a.descriptor.parent().map(str::to_string))
    {
        let child = chain.last().map(|a| a.digest.clone()).unwrap_or_default();
        if !seen.insert(parent.clone()) || chain.len() > MAX_CHAIN {
            return Err(Error::InvalidArgument(format!(
                "the parent chain of {} loops or is longer than {MAX_CHAIN}",
                chain[0].digest
            )));
        }
        match artifact::resolve_digest(home, &parent) {
            Ok(art) => chain.push(art),
            Err(Error::SnapshotNotFound(_)) => {
                return Err(Error::SnapshotNotFound(format!(
                    "{parent}, the parent of {child}, is neither indexed nor in {}; \
                     export without parents or import that ancestor first",
                    home.snapshots_dir().display()
                )))
            }
            Err(e) => return Err(e),
        }
    }
    chain.reverse();
    Ok(chain)
}

/// What will be written for one upper: its data runs and how many bytes.
struct UpperPlan {
    path: PathBuf,
    size: u64,
    runs: Vec<SparseRun>,
    /// Write a plain regular entry (holes as zeros) instead of a sparse one.
    dense: bool,
    bytes_to_write: u64,
}

impl UpperPlan {
    fn of(art: &Artifact, dense: bool) -> Result<UpperPlan> {
        let path = art.upper_path();
        let file = art.disk_upper("export")?.file;
        let size = file.metadata().ctx("stat", &path)?.len();
        let runs: Vec<SparseRun> = sparse::data_extents(file)
            .ctx("find data extents of", &path)?
            .into_iter()
            .map(|e| SparseRun {
                offset: e.offset,
                len: e.len,
            })
            .collect();
        let data: u64 = runs.iter().map(|r| r.len).sum();
        Ok(UpperPlan {
            path,
            size,
            runs,
            dense,
            bytes_to_write: if dense { size } else { data },
        })
    }
}

/// Everything one export writes.
struct Job<'a> {
    chain: &'a [Artifact],
    planned: &'a [PlannedSnapshot],
    plans: &'a [Option<UpperPlan>],
    images: &'a [ImageToShip],
    /// Set for the msb-v0.6.14 format, which ends with `archive.json`.
    inventory: Option<InventoryInfo>,
}

struct InventoryInfo {
    with_parents: bool,
    suggested_name: Option<String>,
}

/// `archive.json`'s `suggested_name`: the head directory's name, unless
/// empty or longer than 255 bytes (v0.6.14's rule).
fn suggested_name(head_dir: &Path) -> Option<String> {
    let name = head_dir.file_name()?.to_string_lossy().into_owned();
    (!name.is_empty() && name.len() <= 255).then_some(name)
}

fn write_all<W: Write>(
    tar: &mut TarWriter<W>,
    home: &Home,
    job: &Job<'_>,
    monitor: &Monitor,
) -> Result<()> {
    // Transport digests are for the inventory: without one (the default
    // format), none is computed.
    let mut members = job.inventory.as_ref().map(|_| Vec::new());
    for ((art, planned), plan) in job.chain.iter().zip(job.planned).zip(job.plans) {
        monitor.check()?;
        if planned.current_layout {
            write_current(tar, art, planned, plan.as_ref(), members.as_mut(), monitor)?;
        } else {
            let plan = plan
                .as_ref()
                .ok_or_else(|| Error::Internal("v0.6.3 artifact without an upper".into()))?;
            write_artifact(tar, art, plan, monitor)?;
        }
    }
    if !job.images.is_empty() {
        let meta = FileMeta {
            mode: 0o100644,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        image_subset::write(tar, home, job.images, &meta, monitor)?;
    }
    if let (Some(info), Some(members)) = (&job.inventory, &members) {
        let inventory = inventory_of(job.planned, members, info)?;
        tar.append_bare(INVENTORY_FILE.as_bytes(), &inventory.canonical_bytes())
            .map_err(write_archive_err)?;
    }
    Ok(())
}

fn write_archive_err(e: io::Error) -> Error {
    Error::Io {
        context: "write archive".into(),
        source: e,
    }
}

/// The inventory of what was written (SPEC-NOTES §10).
fn inventory_of(
    planned: &[PlannedSnapshot],
    members: &[WrittenMember],
    info: &InventoryInfo,
) -> Result<Inventory> {
    let head = planned
        .last()
        .ok_or_else(|| Error::Internal("empty chain".into()))?;
    let mut snapshots: Vec<InventorySnapshot> = planned
        .iter()
        .map(|p| InventorySnapshot {
            snapshot_id: p.digest.clone(),
            descriptor: inventory::descriptor_path(&p.digest),
        })
        .collect();
    snapshots.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    // A chain never repeats a snapshot (chain_of refuses a loop).
    debug_assert!(snapshots
        .windows(2)
        .all(|w| w[0].snapshot_id != w[1].snapshot_id));
    let mut entries: Vec<InventoryEntry> = members
        .iter()
        .map(|m| InventoryEntry {
            path: m.facts.path.clone(),
            owner_snapshot: Some(m.owner.clone()),
            kind: m.facts.kind.to_string(),
            included: true,
            encoded_size: m.facts.encoded_size,
            apparent_size: m.facts.apparent_size,
            integrity: m.integrity.clone(),
            transport_integrity: Some(TransportIntegrity {
                algorithm: transport_digest::ALGORITHM.into(),
                digest: m.facts.transport_digest.clone(),
            }),
        })
        .collect();
    entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    Ok(Inventory {
        schema: 1,
        artifact: "snapshot-archive".into(),
        head: head.digest.clone(),
        suggested_name: info.suggested_name.clone(),
        completeness: "boot-complete".into(),
        with_parents: info.with_parents,
        with_image: false,
        snapshots,
        entries,
        protection_requirements: Vec::new(),
        extensions: Default::default(),
        requires: vec![transport_digest::ALGORITHM.into()],
    })
}

/// A member written in the v0.6.14 layout, for the inventory.
struct WrittenMember {
    facts: MemberFacts,
    owner: String,
    integrity: Option<Integrity>,
}

/// `snapshots/<hex>/snapshot.json`, then (file state) `files/<hex>/<upper>`
/// encoded as v0.6.14 encodes it, with the recorded integrity checked on the
/// way out as for v0.6.3 members. With `members` (an inventory will be
/// written), each member's transport digest is recorded there.
fn write_current<W: Write>(
    tar: &mut TarWriter<W>,
    art: &Artifact,
    planned: &PlannedSnapshot,
    plan: Option<&UpperPlan>,
    mut members: Option<&mut Vec<WrittenMember>>,
    monitor: &Monitor,
) -> Result<()> {
    let path = inventory::descriptor_path(&planned.digest);
    let bytes = &planned.descriptor_bytes;
    tar.append(
        path.as_bytes(),
        &FileMeta::of(art.descriptor_metadata()),
        bytes,
    )
    .map_err(write_archive_err)?;
    if let Some(members) = members.as_mut() {
        members.push(WrittenMember {
            facts: MemberFacts {
                kind: KIND_DESCRIPTOR,
                encoded_size: bytes.len() as u64,
                apparent_size: bytes.len() as u64,
                transport_digest: transport_digest::of_dense(KIND_DESCRIPTOR, &path, bytes),
                sha256: None,
                path,
            },
            owner: planned.digest.clone(),
            integrity: Some(Integrity::Sha256 {
                digest: planned.digest.clone(),
            }),
        });
    }
    let Some(plan) = plan else {
        return Ok(()); // checkpoint state: the descriptor is the artifact
    };
    let disk = art.disk_upper("export")?;
    let name = inventory::payload_path(&planned.digest, &disk.spec.file);
    let meta = FileMeta::of(&disk.file.metadata().ctx("stat", &plan.path)?);
    let encoding = layout_plan::their_encoding(plan.size, &plan.runs);
    let (encoded, slots): (u64, &[SparseRun]) = match &encoding {
        TheirEncoding::Dense => (plan.size, &[]),
        TheirEncoding::Sparse(map) => (map.stored_bytes(), &map.runs),
    };
    let mut hasher = members
        .is_some()
        .then(|| MemberHasher::new(KIND_PAYLOAD, &name, encoded, plan.size, slots));
    let mut check = RecordedCheck::spawn(disk.spec.integrity.as_ref(), plan.size)?;
    let mut upper = UpperReader {
        file: disk.file,
        path: &plan.path,
        buffers: ChunkBuffers::new(check.as_mut().map(|c| &mut c.thread), CHUNK),
        transport: hasher.as_mut(),
    };
    match &encoding {
        TheirEncoding::Dense => {
            tar.begin_regular(name.as_bytes(), &meta, plan.size)
                .map_err(write_archive_err)?;
            end_block_before_data(tar)?;
            upper.copy_dense(tar, plan, monitor)?;
        }
        TheirEncoding::Sparse(map) => {
            tar.begin_sparse(name.as_bytes(), &meta, map)
                .map_err(write_archive_err)?;
            end_block_before_data(tar)?;
            for run in &map.runs {
                upper.copy_run(tar, run, monitor)?;
            }
        }
    }
    drop(upper);
    if let Some(check) = check {
        check.finish(&plan.path)?;
    }
    if let (Some(members), Some(hasher)) = (members, hasher) {
        members.push(WrittenMember {
            facts: MemberFacts {
                path: name,
                kind: KIND_PAYLOAD,
                encoded_size: encoded,
                apparent_size: plan.size,
                transport_digest: hasher.finish(),
                sha256: None,
            },
            owner: planned.digest.clone(),
            integrity: planned.upper_integrity.clone(),
        });
    }
    Ok(())
}

/// `<prefix>/manifest.json` (its bytes as on disk, as v0.6.3 ships them),
/// then `<prefix>/<upper>`, sparse or dense as planned.
fn write_artifact<W: Write>(
    tar: &mut TarWriter<W>,
    art: &Artifact,
    plan: &UpperPlan,
    monitor: &Monitor,
) -> Result<()> {
    let prefix = digest_prefix(&art.digest);
    // The manifest bytes and the upper as the artifact was opened: one
    // snapshot, whatever is renamed over its path meanwhile.
    let descriptor_bytes = art.descriptor_bytes();
    // The integrity checked below must be the one shipped: these bytes.
    let disk = art.disk_upper("export")?;
    let meta = art.descriptor_metadata();
    tar.append(
        format!("{prefix}/{}", art.format().descriptor_file()).as_bytes(),
        &FileMeta::of(meta),
        descriptor_bytes,
    )
    .map_err(write_archive_err)?;

    let upper_name = format!("{prefix}/{}", disk.spec.file);
    let file = disk.file;
    let meta = FileMeta::of(&file.metadata().ctx("stat", &plan.path)?);
    // Like v0.6.3, never ship a snapshot whose recorded integrity fails; but
    // check the bytes on their way into the archive (hashed on another core
    // while zstd compresses) instead of reading the upper twice. A mismatch
    // fails the export before its temporary file is renamed into place.
    let mut check = RecordedCheck::spawn(disk.spec.integrity.as_ref(), plan.size)?;
    let mut upper = UpperReader {
        file,
        path: &plan.path,
        buffers: ChunkBuffers::new(check.as_mut().map(|c| &mut c.thread), CHUNK),
        transport: None,
    };
    if plan.dense {
        // Holes are written as zeros without reading them.
        tar.begin_regular(upper_name.as_bytes(), &meta, plan.size)
            .map_err(write_archive_err)?;
        end_block_before_data(tar)?;
        upper.copy_dense(tar, plan, monitor)?;
    } else {
        let map = SparseMap::for_data(plan.size, plan.runs.iter().copied());
        tar.begin_sparse(upper_name.as_bytes(), &meta, &map)
            .map_err(write_archive_err)?;
        end_block_before_data(tar)?;
        for run in &plan.runs {
            upper.copy_run(tar, run, monitor)?;
        }
    }
    if let Some(check) = check {
        check.finish(&plan.path)?;
    }
    Ok(())
}

/// The recorded integrity of an upper being written, hashed on another
/// thread from the bytes on their way into the archive.
struct RecordedCheck<'a> {
    thread: DigestThread,
    recorded: &'a UpperIntegrity,
}

impl<'a> RecordedCheck<'a> {
    /// `None` when nothing was recorded.
    fn spawn(recorded: Option<&'a UpperIntegrity>, size: u64) -> Result<Option<Self>> {
        let Some(recorded) = recorded else {
            return Ok(None);
        };
        let algorithm = Algorithm::recorded(&recorded.algorithm)?;
        Ok(Some(RecordedCheck {
            thread: DigestThread::spawn(algorithm, size, CHUNK)?,
            recorded,
        }))
    }

    /// The digest of what was written must be the recorded one.
    fn finish(self, upper: &Path) -> Result<()> {
        let actual = self.thread.finish()?;
        if actual != self.recorded.digest {
            return Err(Error::IntegrityMismatch {
                path: upper.display().to_string(),
                expected: self.recorded.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

/// End the compressed block before an upper's data: when that data does not
/// compress (random or already compressed), zstd stores its blocks raw, and
/// the manifest and tar headers in the same block would be stored raw with
/// it (~1 KiB per snapshot; measured on F2). One flush per upper.
fn end_block_before_data<W: Write>(tar: &mut TarWriter<W>) -> Result<()> {
    tar.flush().map_err(write_archive_err)
}

fn write_zeros<W: Write>(
    tar: &mut TarWriter<W>,
    zeros: &[u8],
    mut len: u64,
    monitor: &Monitor,
) -> Result<()> {
    while len > 0 {
        monitor.check()?;
        let n = zeros.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        tar.write_data(&zeros[..n]).map_err(write_archive_err)?;
        len -= n as u64;
        monitor.advance(n as u64)?;
    }
    Ok(())
}

/// Reads an upper's data runs into the archive, handing each chunk to the
/// integrity check's hashing thread (if any) once it is written.
struct UpperReader<'a> {
    file: &'a File,
    path: &'a Path,
    buffers: ChunkBuffers<'a>,
    /// The member's transport digest (v0.6.14 layout), fed what is stored.
    transport: Option<&'a mut MemberHasher>,
}

impl UpperReader<'_> {
    fn copy_run<W: Write>(
        &mut self,
        tar: &mut TarWriter<W>,
        run: &SparseRun,
        monitor: &Monitor,
    ) -> Result<()> {
        let mut done = 0u64;
        while done < run.len {
            monitor.check()?;
            let mut buf = self.buffers.take();
            let want = buf
                .len()
                .min(usize::try_from(run.len - done).unwrap_or(usize::MAX));
            let n = self
                .file
                .read_at(&mut buf[..want], run.offset + done)
                .ctx("read upper", self.path)?;
            if n == 0 {
                return Err(Error::Io {
                    context: format!("read upper {}", self.path.display()),
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upper shrank during export",
                    ),
                });
            }
            tar.write_data(&buf[..n]).map_err(write_archive_err)?;
            if let Some(h) = self.transport.as_deref_mut() {
                h.update(&buf[..n]);
            }
            self.buffers.done(run.offset + done, buf, n)?;
            done += n as u64;
            monitor.advance(n as u64)?;
        }
        Ok(())
    }

    /// All `plan.size` bytes of a dense member: the data runs read, the
    /// holes between them written as zeros without reading.
    fn copy_dense<W: Write>(
        &mut self,
        tar: &mut TarWriter<W>,
        plan: &UpperPlan,
        monitor: &Monitor,
    ) -> Result<()> {
        let zeros = vec![0u8; CHUNK];
        let mut pos = 0;
        for run in &plan.runs {
            self.zeros(tar, &zeros, run.offset - pos, monitor)?;
            self.copy_run(tar, run, monitor)?;
            pos = run.offset + run.len;
        }
        self.zeros(tar, &zeros, plan.size - pos, monitor)
    }

    /// `len` zero bytes of a dense member's hole, written without reading.
    fn zeros<W: Write>(
        &mut self,
        tar: &mut TarWriter<W>,
        zeros: &[u8],
        mut len: u64,
        monitor: &Monitor,
    ) -> Result<()> {
        while len > 0 {
            let n = zeros.len().min(usize::try_from(len).unwrap_or(usize::MAX));
            write_zeros(tar, zeros, n as u64, monitor)?;
            if let Some(h) = self.transport.as_deref_mut() {
                h.update(&zeros[..n]);
            }
            len -= n as u64;
        }
        Ok(())
    }
}

/// Counts bytes reaching the archive file, and starts their writeback as
/// they accumulate so the final fsync waits for the tail only.
struct CountingWriter {
    inner: BufWriter<File>,
    count: u64,
    unflushed: u64,
}

/// Start writeback of the archive after this many bytes.
const WRITEBACK_STEP: u64 = 16 * 1024 * 1024;

impl Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        self.unflushed += n as u64;
        if self.unflushed >= WRITEBACK_STEP {
            // Length 0: all of the file that is dirty and not yet queued.
            sparse::start_writeback(self.inner.get_ref(), 0, 0);
            self.unflushed = 0;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The archive under a temporary name beside `out`; removed on drop unless
/// committed, so a failed or cancelled export leaves nothing at `out`.
struct TempOutput {
    path: PathBuf,
    committed: bool,
}

impl TempOutput {
    fn create(out: &Path) -> Result<TempOutput> {
        let name = out.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("export path {} names no file", out.display()))
        })?;
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if out.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "export path {} is a directory",
                out.display()
            )));
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = dir.join(format!(
            ".{}.partial-{}-{stamp}",
            name.to_string_lossy(),
            std::process::id()
        ));
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx("create", &path)?;
        Ok(TempOutput {
            path,
            committed: false,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self) -> Result<File> {
        OpenOptions::new()
            .write(true)
            .open(&self.path)
            .ctx("open", &self.path)
    }

    /// Rename into place and fsync the directory so the name survives a crash.
    fn commit(mut self, out: &Path) -> Result<()> {
        fs::rename(&self.path, out).ctx("rename archive into place at", out)?;
        self.committed = true;
        if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .ctx("fsync", dir)?;
        }
        Ok(())
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the error that got us here is the one to report.
            let _ = fs::remove_file(&self.path);
        }
    }
}

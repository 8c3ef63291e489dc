//! Cutting an upper into 64 KiB chunks (the merkle leaves) and the chunks a
//! basis lacks into packs.
//!
//! Only leaves overlapping data extents are read; an all-zero chunk (a hole
//! or allocated zeros) is left out of the index. A chunk whose leaf hash the
//! basis (the parent's index in the target) already has points into the
//! basis's pack; a chunk seen earlier in this upper points at that frame;
//! every other chunk is compressed alone (one zstd frame, level 3) and
//! appended to the current new pack, which is cut before it would pass
//! [`PACK_TARGET`]. Chunk order (by number), cut points and level are fixed,
//! so the same upper over the same basis always gives the same blobs.
//!
//! Reading, hashing and compressing run on all cores, a round of batches
//! at a time; packs are assembled in chunk order on the calling thread and
//! handed to `on_pack` as soon as each is closed (push uploads it while the
//! next is built). Memory: one round of batches (ROUND_BATCHES * 2 MiB of
//! chunks and their frames, whatever the core count) plus the pack being
//! written, which is a file.
use super::chunk_index::{ChunkEntry, ChunkIndex, PackRef};
use crate::error::{Error, IoContext, Result};
use crate::integrity::{self, LeafHash, MERKLE_LEAF_SIZE};
use crate::progress::{Monitor, Phase};
use crate::sparse::Extent;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// A new pack is cut before it would pass this many bytes.
pub const PACK_TARGET: u64 = 64 * 1024 * 1024;
/// zstd level of every chunk frame: fixed, for deterministic packs.
pub const CHUNK_LEVEL: i32 = 3;
/// Chunks read per batch by one worker (2 MiB).
const CHUNKS_PER_BATCH: u64 = 32;
/// Batches per round, whatever the worker count: 32 MiB of chunks (and
/// their frames) in memory at most, on 2 cores or 64.
const ROUND_BATCHES: usize = 16;

/// Where a chunk's frame already is in the target.
#[derive(Clone, Debug)]
pub struct BasisChunk {
    pub pack: PackRef,
    pub offset: u64,
    pub length: u32,
}

/// What the target already holds, by leaf hash (from a parent's index).
#[derive(Default)]
pub struct Basis {
    chunks: HashMap<LeafHash, BasisChunk>,
}

impl Basis {
    pub fn from_index(index: &ChunkIndex) -> Basis {
        let mut chunks = HashMap::with_capacity(index.chunks.len());
        for c in &index.chunks {
            chunks.entry(c.leaf).or_insert_with(|| BasisChunk {
                pack: index.packs[c.pack as usize].clone(),
                offset: c.offset,
                length: c.length,
            });
        }
        Basis { chunks }
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// A closed new pack: a file in the scratch directory.
#[derive(Debug)]
pub struct PackFile {
    pub path: PathBuf,
    pub pack: PackRef,
    /// Chunks whose frame is in it.
    pub chunks: u64,
}

/// What packing an upper gave.
#[derive(Debug, Default)]
pub struct Packed {
    pub index: ChunkIndex,
    /// Non-zero chunks.
    pub chunks_total: u64,
    /// Chunks pointing into the basis (not in a new pack).
    pub chunks_reused: u64,
    /// Compressed bytes of those.
    pub bytes_reused: u64,
    /// Chunks compressed into new packs.
    pub chunks_new: u64,
}

/// One chunk as a worker returns it.
struct Chunk {
    number: u64,
    leaf: LeafHash,
    /// The compressed frame, unless the chunk is zero or in the basis.
    frame: Option<Vec<u8>>,
}

/// An upper to pack: its file as the artifact opened it and its data extents.
pub struct Source<'a> {
    pub file: &'a File,
    /// Names it in errors.
    pub path: PathBuf,
    pub size: u64,
    pub extents: Vec<Extent>,
    /// The upper's non-zero leaves, when a leaf list gives them: then only
    /// the chunks the basis lacks are read (each checked against its listed
    /// leaf), so a child costs O(what changed), not O(its data).
    pub listed: Option<Vec<(u64, LeafHash)>>,
}

impl<'a> Source<'a> {
    /// The upper of `art` (`Unsupported` for one without a disk upper).
    pub fn of(art: &'a crate::artifact::Artifact) -> Result<Source<'a>> {
        let upper = art.disk_upper("push")?;
        let path = art.upper_path();
        let extents = crate::sparse::data_extents(upper.file).ctx("find data extents of", &path)?;
        Ok(Source {
            file: upper.file,
            path,
            size: upper.spec.size_bytes,
            extents,
            listed: None,
        })
    }
}

/// Pack `source` over `basis`. With `scratch`, new packs are written there
/// and passed to `on_pack` (which owns the file from then on); without, they
/// are only measured (their digests are all an index needs), which is how an
/// index is worked out without sending anything.
pub fn pack(
    source: &Source,
    basis: &Basis,
    scratch: Option<&Path>,
    monitor: &Monitor,
    on_pack: &mut dyn FnMut(PackFile) -> Result<()>,
) -> Result<Packed> {
    if let Some(listed) = &source.listed {
        return pack_listed(source, listed, basis, scratch, monitor, on_pack);
    }
    let (file, path, size) = (source.file, source.path.as_path(), source.size);
    let batches = data_batches(&source.extents, size);
    let data_bytes: u64 = batches.iter().map(|b| chunk_bytes(b, size)).sum();
    monitor.phase(Phase::Push, data_bytes)?;
    let workers = workers_for(&batches);

    let mut builder = IndexBuilder::new(size, basis, scratch);
    for round in batches.chunks(ROUND_BATCHES) {
        let results = run_round(file, path, size, basis, round, workers, monitor)?;
        for (batch, chunks) in round.iter().zip(results) {
            for chunk in chunks {
                builder.add(chunk, on_pack)?;
            }
            monitor.advance(chunk_bytes(batch, size))?;
        }
    }
    builder.finish(on_pack)
}

/// [`pack`] of an upper whose leaves are listed: chunks the basis has go
/// into the index unread; the others are read in batches of consecutive
/// chunks, hashed, checked against the list (a mismatch means the upper is
/// not what its list says: `IntegrityMismatch`) and compressed.
fn pack_listed(
    source: &Source,
    listed: &[(u64, LeafHash)],
    basis: &Basis,
    scratch: Option<&Path>,
    monitor: &Monitor,
    on_pack: &mut dyn FnMut(PackFile) -> Result<()>,
) -> Result<Packed> {
    let (file, path, size) = (source.file, source.path.as_path(), source.size);
    let count = ChunkIndex::chunk_count_for(size);
    if listed.windows(2).any(|w| w[0].0 >= w[1].0) || listed.last().is_some_and(|l| l.0 >= count) {
        return Err(Error::Internal(format!(
            "the leaf list of {} is not sorted chunk numbers of the upper",
            path.display()
        )));
    }
    // New chunks (once per leaf), as batches of consecutive numbers.
    let mut seen = std::collections::HashSet::new();
    let mut batches: Vec<std::ops::Range<u64>> = Vec::new();
    for &(number, leaf) in listed {
        if basis.chunks.contains_key(&leaf) || !seen.insert(leaf) {
            continue;
        }
        match batches.last_mut() {
            Some(b) if b.end == number && b.end - b.start < CHUNKS_PER_BATCH => b.end += 1,
            _ => batches.push(number..number + 1),
        }
    }
    let data_bytes: u64 = batches.iter().map(|b| chunk_bytes(b, size)).sum();
    monitor.phase(Phase::Push, data_bytes)?;
    let workers = workers_for(&batches);
    let expected: HashMap<u64, LeafHash> = listed.iter().copied().collect();
    let mut builder = IndexBuilder::new(size, basis, scratch);
    let mut rest = listed.iter().peekable();
    for round in batches.chunks(ROUND_BATCHES) {
        let results = run_round(file, path, size, &Basis::default(), round, workers, monitor)?;
        for (batch, chunks) in round.iter().zip(results) {
            let numbers: Vec<u64> = chunks.iter().map(|c| c.number).collect();
            if numbers != (batch.start..batch.end).collect::<Vec<_>>()
                || chunks
                    .iter()
                    .any(|c| expected.get(&c.number) != Some(&c.leaf))
            {
                return Err(Error::IntegrityMismatch {
                    path: path.display().to_string(),
                    expected: format!(
                        "chunks {}..{} as its leaf list records them",
                        batch.start, batch.end
                    ),
                    actual: "other data (the upper changed since its leaf list was written)".into(),
                });
            }
            for chunk in chunks {
                add_listed_before(&mut rest, chunk.number, &mut builder, on_pack)?;
                rest.next(); // the chunk itself, read above
                builder.add(chunk, on_pack)?;
            }
            monitor.advance(chunk_bytes(batch, size))?;
        }
    }
    add_listed_before(&mut rest, u64::MAX, &mut builder, on_pack)?;
    builder.finish(on_pack)
}

/// Add the listed chunks numbered below `number`, which need no read (the
/// basis, or an earlier chunk of this upper, has their leaf).
fn add_listed_before(
    rest: &mut std::iter::Peekable<std::slice::Iter<'_, (u64, LeafHash)>>,
    number: u64,
    builder: &mut IndexBuilder,
    on_pack: &mut dyn FnMut(PackFile) -> Result<()>,
) -> Result<()> {
    while let Some(&&(n, leaf)) = rest.peek() {
        if n >= number {
            break;
        }
        rest.next();
        builder.add(
            Chunk {
                number: n,
                leaf,
                frame: None,
            },
            on_pack,
        )?;
    }
    Ok(())
}

/// Hash (and where new, compress) one round of batches on `workers` threads.
/// Results come back in batch order.
fn run_round(
    file: &File,
    path: &Path,
    size: u64,
    basis: &Basis,
    round: &[std::ops::Range<u64>],
    workers: usize,
    monitor: &Monitor,
) -> Result<Vec<Vec<Chunk>>> {
    let next = AtomicUsize::new(0);
    let slots: Mutex<Vec<Option<Result<Vec<Chunk>>>>> =
        Mutex::new((0..round.len()).map(|_| None).collect());
    let work = || {
        let mut compressor = match zstd::bulk::Compressor::new(CHUNK_LEVEL) {
            Ok(c) => c,
            Err(e) => {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i < round.len() {
                    slots.lock().unwrap_or_else(|p| p.into_inner())[i] =
                        Some(Err(Error::Internal(format!("start zstd: {e}"))));
                }
                return;
            }
        };
        let mut buffer = vec![0u8; (CHUNKS_PER_BATCH * MERKLE_LEAF_SIZE) as usize];
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(batch) = round.get(i) else { return };
            let result = monitor.check().and_then(|()| {
                read_batch(file, path, size, basis, batch, &mut buffer, &mut compressor)
            });
            let failed = result.is_err();
            slots.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
            if failed {
                // Stop taking batches: the round fails anyway.
                next.store(round.len(), Ordering::Relaxed);
                return;
            }
        }
    };
    if workers <= 1 {
        work();
    } else {
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(work);
            }
        });
    }
    let mut out = Vec::with_capacity(round.len());
    for slot in slots.into_inner().unwrap_or_else(|p| p.into_inner()) {
        match slot {
            Some(result) => out.push(result?),
            None => return Err(Error::Cancelled),
        }
    }
    Ok(out)
}

fn read_batch(
    file: &File,
    path: &Path,
    size: u64,
    basis: &Basis,
    batch: &std::ops::Range<u64>,
    buffer: &mut [u8],
    compressor: &mut zstd::bulk::Compressor,
) -> Result<Vec<Chunk>> {
    let len = chunk_bytes(batch, size) as usize;
    let start = batch.start * MERKLE_LEAF_SIZE;
    file.read_exact_at(&mut buffer[..len], start)
        .ctx("read", path)?;
    let mut out = Vec::with_capacity((batch.end - batch.start) as usize);
    for (i, bytes) in buffer[..len].chunks(MERKLE_LEAF_SIZE as usize).enumerate() {
        if crate::sparse::is_all_zero(bytes) {
            continue;
        }
        let leaf = integrity::merkle_sha256_leaf(bytes);
        let frame = if basis.chunks.contains_key(&leaf) {
            None
        } else {
            Some(
                compressor
                    .compress(bytes)
                    .map_err(|e| Error::Internal(format!("compress a chunk: {e}")))?,
            )
        };
        out.push(Chunk {
            number: batch.start + i as u64,
            leaf,
            frame,
        });
    }
    Ok(out)
}

/// Builds the index in chunk order and writes new packs.
struct IndexBuilder<'a> {
    size: u64,
    basis: &'a Basis,
    /// Where new packs are written; `None`: only measured.
    scratch: Option<&'a Path>,
    /// Referenced basis packs, as first met (they come first in the index).
    packs: Vec<PackRef>,
    basis_pack_slot: HashMap<[u8; 32], u32>,
    /// New packs as cut.
    new_pack_refs: Vec<PackRef>,
    /// Chunks already placed in a new pack of this upper, by leaf.
    new_frames: HashMap<LeafHash, (u32, u64, u32)>,
    chunks: Vec<PendingChunk>,
    current: Option<OpenPack>,
    closed_new_packs: u32,
    packed: Packed,
}

/// An index entry whose pack may still be open (its digest unknown).
struct PendingChunk {
    number: u64,
    leaf: LeafHash,
    pack: PackSlot,
    offset: u64,
    length: u32,
}

#[derive(Clone, Copy)]
enum PackSlot {
    /// Index into `packs` (a basis pack).
    Basis(u32),
    /// The n-th new pack.
    New(u32),
}

struct OpenPack {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    hasher: Sha256,
    len: u64,
    chunks: u64,
}

impl<'a> IndexBuilder<'a> {
    fn new(size: u64, basis: &'a Basis, scratch: Option<&'a Path>) -> Self {
        IndexBuilder {
            size,
            basis,
            scratch,
            packs: Vec::new(),
            basis_pack_slot: HashMap::new(),
            new_pack_refs: Vec::new(),
            new_frames: HashMap::new(),
            chunks: Vec::new(),
            current: None,
            closed_new_packs: 0,
            packed: Packed::default(),
        }
    }

    fn add(&mut self, chunk: Chunk, on_pack: &mut dyn FnMut(PackFile) -> Result<()>) -> Result<()> {
        self.packed.chunks_total += 1;
        if let Some(found) = self.basis.chunks.get(&chunk.leaf) {
            let slot = *self
                .basis_pack_slot
                .entry(found.pack.sha256)
                .or_insert_with(|| {
                    self.packs.push(found.pack.clone());
                    (self.packs.len() - 1) as u32
                });
            self.packed.chunks_reused += 1;
            self.packed.bytes_reused += u64::from(found.length);
            self.chunks.push(PendingChunk {
                number: chunk.number,
                leaf: chunk.leaf,
                pack: PackSlot::Basis(slot),
                offset: found.offset,
                length: found.length,
            });
            return Ok(());
        }
        if let Some(&(pack, offset, length)) = self.new_frames.get(&chunk.leaf) {
            self.chunks.push(PendingChunk {
                number: chunk.number,
                leaf: chunk.leaf,
                pack: PackSlot::New(pack),
                offset,
                length,
            });
            return Ok(());
        }
        let frame = chunk.frame.ok_or_else(|| {
            Error::Internal(format!("chunk {} has no frame and no basis", chunk.number))
        })?;
        let frame_len = frame.len() as u64;
        if self
            .current
            .as_ref()
            .is_some_and(|p| p.len > 0 && p.len + frame_len > PACK_TARGET)
        {
            self.close_pack(on_pack)?;
        }
        if self.current.is_none() {
            self.current = Some(self.open_pack()?);
        }
        let pack = self.current.as_mut().expect("opened above");
        let offset = pack.len;
        if let Some(out) = &mut pack.out {
            out.write_all(&frame).ctx("write pack", &pack.path)?;
        }
        pack.hasher.update(&frame);
        pack.len += frame_len;
        pack.chunks += 1;
        let slot = self.closed_new_packs;
        self.new_frames
            .insert(chunk.leaf, (slot, offset, frame.len() as u32));
        self.packed.chunks_new += 1;
        self.chunks.push(PendingChunk {
            number: chunk.number,
            leaf: chunk.leaf,
            pack: PackSlot::New(slot),
            offset,
            length: frame.len() as u32,
        });
        Ok(())
    }

    fn open_pack(&self) -> Result<OpenPack> {
        let (path, out) = match self.scratch {
            Some(scratch) => {
                let path = scratch.join(format!("pack-{}", self.closed_new_packs));
                let file = File::create(&path).ctx("create", &path)?;
                (path, Some(BufWriter::with_capacity(1024 * 1024, file)))
            }
            None => (PathBuf::new(), None),
        };
        Ok(OpenPack {
            path,
            out,
            hasher: Sha256::new(),
            len: 0,
            chunks: 0,
        })
    }

    fn close_pack(&mut self, on_pack: &mut dyn FnMut(PackFile) -> Result<()>) -> Result<()> {
        let Some(open) = self.current.take() else {
            return Ok(());
        };
        if let Some(out) = open.out {
            out.into_inner()
                .map_err(|e| Error::io("write pack", &open.path, e.into_error()))?;
        }
        let pack = PackRef {
            sha256: open.hasher.finalize().into(),
            size: open.len,
        };
        self.new_pack_refs.push(pack.clone());
        self.closed_new_packs += 1;
        if self.scratch.is_some() {
            on_pack(PackFile {
                path: open.path,
                pack,
                chunks: open.chunks,
            })?;
        }
        Ok(())
    }

    fn finish(mut self, on_pack: &mut dyn FnMut(PackFile) -> Result<()>) -> Result<Packed> {
        self.close_pack(on_pack)?;
        let basis_packs = self.packs.len() as u32;
        let mut packs = std::mem::take(&mut self.packs);
        packs.extend(self.new_pack_refs.iter().cloned());
        let chunks = self
            .chunks
            .iter()
            .map(|c| ChunkEntry {
                number: c.number,
                leaf: c.leaf,
                pack: match c.pack {
                    PackSlot::Basis(i) => i,
                    PackSlot::New(n) => basis_packs + n,
                },
                offset: c.offset,
                length: c.length,
            })
            .collect();
        self.packed.index = ChunkIndex {
            upper_size: self.size,
            packs,
            chunks,
        };
        Ok(self.packed)
    }
}

/// Worker threads for `batches`: the cores, no more than a round's batches.
fn workers_for(batches: &[std::ops::Range<u64>]) -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(ROUND_BATCHES)
        .min(batches.len().max(1))
}

/// Batches of at most CHUNKS_PER_BATCH chunk numbers covering every chunk
/// that overlaps data, sorted.
fn data_batches(extents: &[Extent], size: u64) -> Vec<std::ops::Range<u64>> {
    let count = ChunkIndex::chunk_count_for(size);
    let mut ranges: Vec<std::ops::Range<u64>> = Vec::new();
    for extent in extents.iter().filter(|e| e.len > 0 && e.offset < size) {
        let first = extent.offset / MERKLE_LEAF_SIZE;
        let end = extent.end().min(size).div_ceil(MERKLE_LEAF_SIZE).min(count);
        match ranges.last_mut() {
            Some(last) if last.end >= first => last.end = last.end.max(end),
            _ => ranges.push(first..end),
        }
    }
    ranges
        .into_iter()
        .flat_map(|r| {
            (r.start..r.end)
                .step_by(CHUNKS_PER_BATCH as usize)
                .map(move |s| s..(s + CHUNKS_PER_BATCH).min(r.end))
        })
        .collect()
}

/// Upper bytes the chunks of `batch` cover (the last chunk may be short).
fn chunk_bytes(batch: &std::ops::Range<u64>, size: u64) -> u64 {
    let at = |chunk: u64| chunk.saturating_mul(MERKLE_LEAF_SIZE).min(size);
    at(batch.end) - at(batch.start)
}

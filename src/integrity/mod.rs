//! The three upper-file digests (DESIGN.md "Upper integrity algorithms").
//!
//! - `sha256` and `msb-sparse-sha256-v1` hash every logical byte, so they cost
//!   O(logical size) even for a file that is almost all hole. They exist for
//!   compatibility with artifacts written by microsandbox v0.6.3.
//! - `microsnap-merkle-sha256-v1` is the default because verifying it costs
//!   O(allocated data): an all-zero subtree of a given height always hashes
//!   to the same constant, so a hole of any size costs O(log n) hash
//!   combinations and only leaves that overlap data extents are read. Leaves
//!   are independent, so they are hashed in parallel.
//!
//! Every digest depends only on the logical bytes (holes read as zeros): a
//! sparse file and its dense copy give the same digest.
use crate::error::{Error, IoContext, Result};
use crate::progress::Monitor;
use crate::sparse::{self, data_extents, is_all_zero, CopyDestination, Extent};
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

mod stream;
pub use stream::{ChunkBuffers, DigestThread, StreamDigest};

/// An upper-file integrity algorithm, named as in `manifest.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    MsbSparseSha256V1,
    MerkleSha256V1,
}

impl Algorithm {
    /// What new artifacts record: the one that verifies in O(data).
    pub const DEFAULT: Algorithm = Algorithm::MerkleSha256V1;

    pub const ALL: [Algorithm; 3] = [
        Algorithm::Sha256,
        Algorithm::MsbSparseSha256V1,
        Algorithm::MerkleSha256V1,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::MsbSparseSha256V1 => "msb-sparse-sha256-v1",
            Algorithm::MerkleSha256V1 => "microsnap-merkle-sha256-v1",
        }
    }

    /// The algorithm with this exact name, if known.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The algorithm a manifest records, or `Unsupported` naming it: an
    /// artifact from a newer writer cannot be checked, only refused.
    pub fn recorded(name: &str) -> Result<Algorithm> {
        Algorithm::from_name(name).ok_or_else(|| {
            Error::Unsupported(format!("unsupported upper integrity algorithm: {name}"))
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Merkle leaf size L.
pub const MERKLE_LEAF_SIZE: u64 = 65536;

const MSB_SPARSE_PREFIX: &[u8] = b"msb-sparse-sha256-v1\0";
const MERKLE_PREFIX: &[u8] = b"microsnap-merkle-sha256-v1\0";
const LEAF_TAG: u8 = 0x00;
const INNER_TAG: u8 = 0x01;

/// Leaves read per `pread` by one merkle worker (2 MiB): large enough that
/// syscalls and scheduling are noise, small enough for prompt cancellation.
const LEAVES_PER_BATCH: u64 = 32;

/// Merkle leaves are hashed one aligned window of 2^WINDOW_HEIGHT leaves
/// (1 GiB of logical bytes) at a time, and the window is reduced to its
/// subtree root before the next one starts. This is what bounds memory.
const WINDOW_HEIGHT: u32 = 14;

/// Read size for the streaming algorithms.
const STREAM_BUFFER: usize = 1024 * 1024;

/// Zeros fed to the streaming hashers for holes, instead of reading them.
static ZEROS: [u8; MERKLE_LEAF_SIZE as usize] = [0; MERKLE_LEAF_SIZE as usize];

type Hash = [u8; 32];

/// The digest of the file at `path`, as `"sha256:<lowercase hex>"`.
/// Progress phase `"hash"`, total = the data bytes that will be read.
pub fn compute(path: &Path, algorithm: Algorithm, monitor: &Monitor) -> Result<String> {
    let file = File::open(path).ctx("open", path)?;
    compute_file(&file, path, algorithm, monitor)
}

/// [`compute`] of an open file (`path` names it in errors): what was opened
/// is what is hashed, whatever is renamed over `path` meanwhile.
pub fn compute_file(
    file: &File,
    path: &Path,
    algorithm: Algorithm,
    monitor: &Monitor,
) -> Result<String> {
    let meta = file.metadata().ctx("stat", path)?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "cannot hash {}: not a regular file",
            path.display()
        )));
    }
    let size = meta.len();
    let extents = data_extents(file).ctx("find data extents of", path)?;
    let input = Input {
        file,
        path,
        size,
        extents: &extents,
    };
    let digest = digest_of(&input, algorithm, monitor)?;
    Ok(format!("sha256:{}", hex(&digest)))
}

fn digest_of(input: &Input, algorithm: Algorithm, monitor: &Monitor) -> Result<Hash> {
    Ok(match algorithm {
        Algorithm::Sha256 => stream_hash(input, Sha256::new(), monitor)?,
        Algorithm::MsbSparseSha256V1 => {
            let mut hasher = Sha256::new();
            hasher.update(MSB_SPARSE_PREFIX);
            hasher.update(input.size.to_le_bytes());
            stream_hash(input, hasher, monitor)?
        }
        Algorithm::MerkleSha256V1 => merkle_digest(input, monitor)?,
    })
}

/// Copy `src` to the new file `dst` like [`sparse::copy_sparse`] (holes kept,
/// length set, fsynced, nothing left behind on failure) and return the bytes
/// copied and the digest of what was copied, as [`compute`] gives it.
///
/// The copy runs in the kernel (reflink or `copy_file_range`, writeback
/// started as it goes); the merkle hashing then reads the just-copied data
/// from the page cache on every core *while the disk is still writing the
/// copy back*, and the fsync comes last. So hashing overlaps the write-out
/// instead of adding to it. (A single userspace pass, pread + pwrite + hash
/// per leaf batch, was measured first and was slower: 3.8 s against 1.9 s
/// for F1, because it gives up in-kernel copying and its workers stall in
/// writeback; see docs/BENCHMARKS.md.) The streaming algorithms cost
/// O(logical size) and hash the copy the same way.
/// Progress phases `"copy"` then `"hash"`.
pub fn copy_and_compute(
    src: &Path,
    dst: &Path,
    algorithm: Algorithm,
    monitor: &Monitor,
) -> Result<(u64, String)> {
    let file = File::open(src).ctx("open", src)?;
    copy_and_compute_from(&file, src, dst, algorithm, monitor)
}

/// [`copy_and_compute`] from an open source file (`src` names it in errors).
pub fn copy_and_compute_from(
    file: &File,
    src: &Path,
    dst: &Path,
    algorithm: Algorithm,
    monitor: &Monitor,
) -> Result<(u64, String)> {
    let meta = file.metadata().ctx("stat", src)?;
    if !meta.is_file() {
        return Err(Error::InvalidArgument(format!(
            "copy source is not a regular file: {}",
            src.display()
        )));
    }
    monitor.check()?;
    let out = CopyDestination::create(dst)?;
    let copied = sparse::copy_data(file, src, &out, monitor)?;
    // Hash the copy, not the source: the digest must describe what was
    // written. Its data extents are the source's, and its pages are cached.
    let copy = File::open(dst).ctx("open", dst)?;
    let extents = data_extents(&copy).ctx("find data extents of", dst)?;
    let input = Input {
        file: &copy,
        path: dst,
        size: meta.len(),
        extents: &extents,
    };
    // The final length now, not only in finish: the last leaf holding data
    // may reach past the copy's last data byte, and must read zeros there.
    out.file().set_len(meta.len()).ctx("set length of", dst)?;
    let digest = digest_of(&input, algorithm, monitor)?;
    out.finish(meta.len())?;
    Ok((copied, format!("sha256:{}", hex(&digest))))
}

/// Copy `src` to `dst` with [`copy_and_compute`] and check the copy against
/// the `expected` digest: `Error::IntegrityMismatch` (and no `dst`) when the
/// data differs from what was recorded.
pub fn copy_and_check(
    src: &Path,
    dst: &Path,
    algorithm: Algorithm,
    expected: &str,
    monitor: &Monitor,
) -> Result<u64> {
    let file = File::open(src).ctx("open", src)?;
    copy_and_check_from(&file, src, dst, algorithm, expected, monitor)
}

/// [`copy_and_check`] from an open source file (`src` names it in errors).
pub fn copy_and_check_from(
    file: &File,
    src: &Path,
    dst: &Path,
    algorithm: Algorithm,
    expected: &str,
    monitor: &Monitor,
) -> Result<u64> {
    let (copied, actual) = copy_and_compute_from(file, src, dst, algorithm, monitor)?;
    if actual != expected {
        // Best effort: the mismatch is the error worth reporting.
        let _ = std::fs::remove_file(dst);
        return Err(Error::IntegrityMismatch {
            path: src.display().to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(copied)
}

/// The file being hashed, with its extents measured once.
struct Input<'a> {
    file: &'a File,
    path: &'a Path,
    size: u64,
    extents: &'a [Extent],
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Feed every logical byte to `hasher`: data extents read with pread, holes
/// as zeros from a static buffer (never read from disk).
fn stream_hash(input: &Input, mut hasher: Sha256, monitor: &Monitor) -> Result<Hash> {
    let total: u64 = input.extents.iter().map(|e| e.len).sum();
    monitor.phase(crate::progress::Phase::Hash, total)?;
    let mut buffer = vec![0u8; STREAM_BUFFER];
    let mut pos = 0u64;
    for extent in input.extents {
        feed_zeros(&mut hasher, extent.offset - pos);
        let mut at = extent.offset;
        while at < extent.end() {
            monitor.check()?;
            let step = (extent.end() - at).min(STREAM_BUFFER as u64) as usize;
            let chunk = &mut buffer[..step];
            input
                .file
                .read_exact_at(chunk, at)
                .ctx("read", input.path)?;
            hasher.update(&*chunk);
            at += step as u64;
            monitor.advance(step as u64)?;
        }
        pos = extent.end();
    }
    feed_zeros(&mut hasher, input.size - pos);
    Ok(hasher.finalize().into())
}

fn feed_zeros(hasher: &mut Sha256, mut count: u64) {
    while count > 0 {
        let step = count.min(ZEROS.len() as u64) as usize;
        hasher.update(&ZEROS[..step]);
        count -= step as u64;
    }
}

// ---------------------------------------------------------------------------
// microsnap-merkle-sha256-v1
//
// Memory bound: leaf hashes are kept for one window at a time, at most
// 2^WINDOW_HEIGHT * (8 + 32) bytes = 640 KiB, plus one 40-byte root per window
// that holds data (40 bytes per GiB of logical size: 40 KiB for a 1 TiB disk),
// plus one LEAVES_PER_BATCH * L = 2 MiB read buffer per worker. Nothing grows
// with the amount of data beyond the per-window roots.

fn merkle_digest(input: &Input, monitor: &Monitor) -> Result<Hash> {
    let leaves = input.size.div_ceil(MERKLE_LEAF_SIZE).max(1);
    let depth = tree_depth(leaves);
    let zero = zero_subtree_hashes(depth);
    let window_height = depth.min(WINDOW_HEIGHT);
    let pieces = split_at_windows(&data_leaf_ranges(input.extents), window_height);
    let total: u64 = pieces.iter().map(|r| leaf_bytes(r, input.size)).sum();
    monitor.phase(crate::progress::Phase::Hash, total)?;

    let mut window_roots: Vec<(u64, Hash)> = Vec::new();
    for group in pieces.chunk_by(|a, b| a.start >> window_height == b.start >> window_height) {
        let window = group[0].start >> window_height;
        let mut leaf_hashes = hash_leaves(input, group, &zero[0], monitor)?;
        leaf_hashes.sort_unstable_by_key(|(index, _)| *index);
        let root = subtree_root(window_height, window << window_height, &leaf_hashes, &zero);
        window_roots.push((window, root));
    }
    // The windows are the leaves of the upper part of the tree.
    let root = subtree_root(
        depth - window_height,
        0,
        &window_roots,
        &zero[window_height as usize..],
    );

    let mut hasher = Sha256::new();
    hasher.update(MERKLE_PREFIX);
    hasher.update(input.size.to_le_bytes());
    hasher.update((MERKLE_LEAF_SIZE as u32).to_le_bytes());
    hasher.update(root);
    Ok(hasher.finalize().into())
}

/// d, the smallest with 2^d >= `leaves`.
fn tree_depth(leaves: u64) -> u32 {
    if leaves <= 1 {
        0
    } else {
        u64::BITS - (leaves - 1).leading_zeros()
    }
}

/// zero[k] = the root of an all-zero subtree of height k, for k in 0..=depth.
fn zero_subtree_hashes(depth: u32) -> Vec<Hash> {
    let mut zero = Vec::with_capacity(depth as usize + 1);
    zero.push(leaf_hash(&ZEROS));
    for k in 1..=depth as usize {
        zero.push(inner_hash(&zero[k - 1], &zero[k - 1]));
    }
    zero
}

fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_TAG]);
    hasher.update(leaf);
    hasher.finalize().into()
}

fn inner_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([INNER_TAG]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The leaf indices that overlap data extents, as sorted, merged ranges.
fn data_leaf_ranges(extents: &[Extent]) -> Vec<Range<u64>> {
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for extent in extents.iter().filter(|e| e.len > 0) {
        let first = extent.offset / MERKLE_LEAF_SIZE;
        let end = extent.end().div_ceil(MERKLE_LEAF_SIZE);
        match ranges.last_mut() {
            Some(last) if last.end >= first => last.end = last.end.max(end),
            _ => ranges.push(first..end),
        }
    }
    ranges
}

/// Split leaf ranges so that none crosses a window boundary.
fn split_at_windows(ranges: &[Range<u64>], window_height: u32) -> Vec<Range<u64>> {
    let mut pieces = Vec::with_capacity(ranges.len());
    for range in ranges {
        let mut start = range.start;
        while start < range.end {
            let window_end = ((start >> window_height) + 1) << window_height;
            let end = range.end.min(window_end);
            pieces.push(start..end);
            start = end;
        }
    }
    pieces
}

/// Logical bytes covered by the leaves in `range` (the last leaf of the file
/// may be partial).
fn leaf_bytes(range: &Range<u64>, size: u64) -> u64 {
    let at = |leaf: u64| leaf.saturating_mul(MERKLE_LEAF_SIZE).min(size);
    at(range.end) - at(range.start)
}

/// The root of the subtree of `height` whose first node (at the base level)
/// is `first`. `nodes` are the known non-zero base nodes inside it, sorted by
/// index; every other base node is `zero[0]`, and `zero[k]` is the hash of an
/// all-zero subtree of height k above the base. A subtree without known nodes
/// is a constant, so the cost is O(nodes * height).
fn subtree_root(height: u32, first: u64, nodes: &[(u64, Hash)], zero: &[Hash]) -> Hash {
    match nodes {
        [] => zero[height as usize],
        // Base node indices are unique, so a height-0 subtree holds one.
        [(_, hash), ..] if height == 0 => *hash,
        _ => {
            let mid = first + (1u64 << (height - 1));
            let split = nodes.partition_point(|(index, _)| *index < mid);
            let left = subtree_root(height - 1, first, &nodes[..split], zero);
            let right = subtree_root(height - 1, mid, &nodes[split..], zero);
            inner_hash(&left, &right)
        }
    }
}

/// Hash the leaves in `ranges` (all in one window) on all cores. Returns
/// (leaf index, leaf hash) pairs in no particular order.
fn hash_leaves(
    input: &Input,
    ranges: &[Range<u64>],
    zero_leaf: &Hash,
    monitor: &Monitor,
) -> Result<Vec<(u64, Hash)>> {
    let batches: Vec<Range<u64>> = ranges
        .iter()
        .flat_map(|r| {
            (r.start..r.end)
                .step_by(LEAVES_PER_BATCH as usize)
                .map(move |s| s..(s + LEAVES_PER_BATCH).min(r.end))
        })
        .collect();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(batches.len());
    let job = LeafJob {
        input,
        batches: &batches,
        next: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        zero_leaf,
        monitor,
    };
    if workers <= 1 {
        let mut out = Vec::new();
        job.work(&mut out)?;
        return Ok(out);
    }
    let results = Mutex::new(Vec::with_capacity(workers));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut out = Vec::new();
                let result = job.work(&mut out).map(|()| out);
                if result.is_err() {
                    job.failed.store(true, Ordering::Relaxed);
                }
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(result);
            });
        }
    });
    let mut all = Vec::new();
    let mut errors = Vec::new();
    for result in results.into_inner().unwrap_or_else(|p| p.into_inner()) {
        match result {
            Ok(mut part) => all.append(&mut part),
            Err(e) => errors.push(e),
        }
    }
    // Workers that stopped because another one failed report Cancelled;
    // the real failure is the one worth returning.
    match errors.iter().position(|e| !matches!(e, Error::Cancelled)) {
        Some(i) => Err(errors.swap_remove(i)),
        None if !errors.is_empty() => Err(Error::Cancelled),
        None => Ok(all),
    }
}

/// Shared state of one window's leaf hashing: workers take batches in order.
struct LeafJob<'a, 'm> {
    input: &'a Input<'a>,
    batches: &'a [Range<u64>],
    next: AtomicUsize,
    failed: AtomicBool,
    zero_leaf: &'a Hash,
    monitor: &'a Monitor<'m>,
}

impl LeafJob<'_, '_> {
    fn work(&self, out: &mut Vec<(u64, Hash)>) -> Result<()> {
        let mut buffer = vec![0u8; (LEAVES_PER_BATCH * MERKLE_LEAF_SIZE) as usize];
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            self.monitor.check()?;
            let Some(batch) = self.batches.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(());
            };
            let size = self.input.size;
            let start = batch.start.saturating_mul(MERKLE_LEAF_SIZE);
            let len = leaf_bytes(batch, size) as usize;
            self.input
                .file
                .read_exact_at(&mut buffer[..len], start)
                .ctx("read", self.input.path)?;
            // Only the file's last leaf can be partial: zero-pad it to L.
            let padded = ((batch.end - batch.start) * MERKLE_LEAF_SIZE) as usize;
            buffer[len..padded].fill(0);
            for (i, leaf) in buffer[..padded]
                .chunks_exact(MERKLE_LEAF_SIZE as usize)
                .enumerate()
            {
                // Allocated zeros hash like a hole; skip the SHA work.
                let hash = if is_all_zero(leaf) {
                    *self.zero_leaf
                } else {
                    leaf_hash(leaf)
                };
                out.push((batch.start + i as u64, hash));
            }
            self.monitor.advance(len as u64)?;
        }
    }
}

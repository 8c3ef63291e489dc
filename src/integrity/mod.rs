//! The four upper-file digests (DESIGN.md "Upper integrity algorithms").
//!
//! - `sha256` and `msb-sparse-sha256-v1` hash every logical byte, so they cost
//!   O(logical size) even for a file that is almost all hole. They exist for
//!   compatibility with artifacts written by microsandbox v0.6.3.
//! - `microsnap-merkle-sha256-v1` is the default because verifying it costs
//!   O(allocated data): an all-zero subtree of a given height always hashes
//!   to the same constant, so a hole of any size costs O(log n) hash
//!   combinations and only leaves that overlap data extents are read. Leaves
//!   are independent, so they are hashed in parallel.
//! - `msb-file-merkle-blake3-v1` is microsandbox v0.6.14's merkle tree: the
//!   same shape over the same 64 KiB leaves, hashed with BLAKE3 (whose SIMD
//!   backends make a leaf several times cheaper than SHA-256). Its digest is
//!   written `blake3:<hex>`; every other is `sha256:<hex>`.
//!
//! Every digest depends only on the logical bytes (holes read as zeros): a
//! sparse file and its dense copy give the same digest.
use crate::error::{Error, IoContext, Result};
use crate::progress::Monitor;
use crate::sparse::{self, data_extents, CopyDestination, Extent};
use merkle::Tree;
use sha2::{Digest, Sha256};
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

mod merkle;
mod stream;
pub use stream::{ChunkBuffers, DigestThread, StreamDigest};

/// An upper-file integrity algorithm, named as in `manifest.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    MsbSparseSha256V1,
    MerkleSha256V1,
    MerkleBlake3V1,
}

impl Algorithm {
    /// What new artifacts record: the one that verifies in O(data).
    pub const DEFAULT: Algorithm = Algorithm::MerkleSha256V1;

    pub const ALL: [Algorithm; 4] = [
        Algorithm::Sha256,
        Algorithm::MsbSparseSha256V1,
        Algorithm::MerkleSha256V1,
        Algorithm::MerkleBlake3V1,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::MsbSparseSha256V1 => "msb-sparse-sha256-v1",
            Algorithm::MerkleSha256V1 => "microsnap-merkle-sha256-v1",
            Algorithm::MerkleBlake3V1 => "msb-file-merkle-blake3-v1",
        }
    }

    /// What its digests start with: `"blake3:"` or `"sha256:"`.
    pub fn digest_prefix(self) -> &'static str {
        match self {
            Algorithm::MerkleBlake3V1 => "blake3:",
            _ => "sha256:",
        }
    }

    /// `"<prefix><lowercase hex>"` of a digest computed with this algorithm.
    fn format(self, digest: &Hash) -> String {
        format!("{}{}", self.digest_prefix(), hex(digest))
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

/// A 32-byte hash: a merkle leaf or node.
pub type LeafHash = [u8; 32];

/// The `microsnap-merkle-sha256-v1` hash of one leaf whose bytes are `chunk`
/// (at most L bytes; a shorter one, the file's last, is zero-padded to L).
/// Registry chunks are these leaves, so a chunk's identity is this hash.
pub fn merkle_sha256_leaf(chunk: &[u8]) -> LeafHash {
    debug_assert!(chunk.len() as u64 <= MERKLE_LEAF_SIZE);
    if chunk.len() as u64 == MERKLE_LEAF_SIZE {
        return Tree::Sha256.leaf(chunk);
    }
    let mut leaf = vec![0u8; MERKLE_LEAF_SIZE as usize];
    leaf[..chunk.len()].copy_from_slice(chunk);
    Tree::Sha256.leaf(&leaf)
}

/// The `microsnap-merkle-sha256-v1` hash of an all-zero leaf (a hole).
pub fn merkle_sha256_zero_leaf() -> LeafHash {
    Tree::Sha256.leaf(&ZEROS)
}

/// The `microsnap-merkle-sha256-v1` digest (`"sha256:<hex>"`) of a file of
/// `size` bytes whose leaves are zero except `leaves` (leaf index, leaf
/// hash), without reading the file: zero subtrees are constants, so this
/// costs O(leaves * depth). `leaves` must be sorted by index with no
/// duplicates and every index below the leaf count, or `InvalidArgument`.
pub fn merkle_sha256_digest_of_leaves(size: u64, leaves: &[(u64, LeafHash)]) -> Result<String> {
    let count = size.div_ceil(MERKLE_LEAF_SIZE).max(1);
    if leaves.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(Error::InvalidArgument(
            "merkle leaves are not sorted and unique".into(),
        ));
    }
    if leaves.last().is_some_and(|(index, _)| *index >= count) {
        return Err(Error::InvalidArgument(format!(
            "merkle leaf index past the {count} leaves of a {size}-byte file"
        )));
    }
    let depth = merkle::tree_depth(count);
    let zero = Tree::Sha256.zero_subtrees(depth);
    let top = merkle::subtree_root(Tree::Sha256, depth, 0, leaves, &zero);
    Ok(Algorithm::MerkleSha256V1.format(&Tree::Sha256.root(size, depth, &top)))
}

const MSB_SPARSE_PREFIX: &[u8] = b"msb-sparse-sha256-v1\0";

/// Read size for the streaming algorithms.
const STREAM_BUFFER: usize = 1024 * 1024;

/// Zeros fed to the streaming hashers for holes, instead of reading them.
static ZEROS: [u8; MERKLE_LEAF_SIZE as usize] = [0; MERKLE_LEAF_SIZE as usize];

type Hash = [u8; 32];

/// The digest of the file at `path`, as `"sha256:<lowercase hex>"` (or
/// `"blake3:<lowercase hex>"` for `msb-file-merkle-blake3-v1`).
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
    let digest = digest_of(&input, algorithm, monitor, None)?;
    Ok(algorithm.format(&digest))
}

fn digest_of(
    input: &Input,
    algorithm: Algorithm,
    monitor: &Monitor,
    leaves: Option<&mut Vec<(u64, LeafHash)>>,
) -> Result<Hash> {
    Ok(match algorithm {
        Algorithm::Sha256 => stream_hash(input, Sha256::new(), monitor)?,
        Algorithm::MsbSparseSha256V1 => {
            let mut hasher = Sha256::new();
            hasher.update(MSB_SPARSE_PREFIX);
            hasher.update(input.size.to_le_bytes());
            stream_hash(input, hasher, monitor)?
        }
        Algorithm::MerkleSha256V1 => merkle::digest(Tree::Sha256, input, monitor, leaves)?,
        Algorithm::MerkleBlake3V1 => merkle::digest(Tree::Blake3, input, monitor, None)?,
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
    copy_and_compute_leaves(file, src, dst, algorithm, monitor, None)
}

/// [`copy_and_compute_from`], also appending every non-zero leaf (index,
/// hash) of the copy to `leaves` when `algorithm` is
/// `microsnap-merkle-sha256-v1` (the chunks a push sends are those leaves).
pub fn copy_and_compute_leaves(
    file: &File,
    src: &Path,
    dst: &Path,
    algorithm: Algorithm,
    monitor: &Monitor,
    leaves: Option<&mut Vec<(u64, LeafHash)>>,
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
    let digest = digest_of(&input, algorithm, monitor, leaves)?;
    out.finish(meta.len())?;
    Ok((copied, algorithm.format(&digest)))
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

//! The two merkle trees over 64 KiB leaves: `microsnap-merkle-sha256-v1`
//! (microsnap's own) and `msb-file-merkle-blake3-v1` (microsandbox
//! v0.6.14's). Both are perfect binary trees of width 2^d >= the leaf count,
//! the last leaf zero-padded, so they share everything but the hash of a
//! leaf, of a parent and of the root record: [`Tree`] is that difference,
//! and the O(allocated data) machinery (zero-subtree constants, windows,
//! parallel leaf hashing) is written once over it.
//!
//! Memory bound: leaf hashes are kept for one window at a time, at most
//! 2^WINDOW_HEIGHT * (8 + 32) bytes = 640 KiB, plus one 40-byte root per
//! window that holds data (40 bytes per GiB of logical size: 40 KiB for a
//! 1 TiB disk), plus one LEAVES_PER_BATCH * L = 2 MiB read buffer per worker.
//! Nothing grows with the amount of data beyond the per-window roots.
use super::{Hash, Input, MERKLE_LEAF_SIZE, ZEROS};
use crate::error::{Error, IoContext, Result};
use crate::progress::Monitor;
use crate::sparse::{is_all_zero, Extent};
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Leaves read per `pread` by one merkle worker (2 MiB): large enough that
/// syscalls and scheduling are noise, small enough for prompt cancellation.
const LEAVES_PER_BATCH: u64 = 32;

/// Merkle leaves are hashed one aligned window of 2^WINDOW_HEIGHT leaves
/// (1 GiB of logical bytes) at a time, and the window is reduced to its
/// subtree root before the next one starts. This is what bounds memory.
pub(super) const WINDOW_HEIGHT: u32 = 14;

// microsnap-merkle-sha256-v1: one-byte tags, root record without the height.
const SHA256_ROOT_PREFIX: &[u8] = b"microsnap-merkle-sha256-v1\0";
const SHA256_LEAF_TAG: u8 = 0x00;
const SHA256_INNER_TAG: u8 = 0x01;

// msb-file-merkle-blake3-v1 (SPEC-NOTES §8 of the v0.6.14 vectors).
const BLAKE3_LEAF_DOMAIN: &[u8] = b"msb-file-merkle-blake3-v1\0leaf\0";
const BLAKE3_PARENT_DOMAIN: &[u8] = b"msb-file-merkle-blake3-v1\0parent\0";
const BLAKE3_ROOT_DOMAIN: &[u8] = b"msb-file-merkle-blake3-v1\0root\0";

/// Which merkle tree: how a leaf, a parent and the root record are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tree {
    /// `microsnap-merkle-sha256-v1`.
    Sha256,
    /// `msb-file-merkle-blake3-v1`.
    Blake3,
}

impl Tree {
    /// What a leaf's hashed message starts with, before its L bytes.
    fn leaf_prefix(self) -> &'static [u8] {
        match self {
            Tree::Sha256 => &[SHA256_LEAF_TAG],
            Tree::Blake3 => BLAKE3_LEAF_DOMAIN,
        }
    }

    /// The hash of one leaf of exactly `MERKLE_LEAF_SIZE` bytes.
    pub(super) fn leaf(self, leaf: &[u8]) -> Hash {
        debug_assert_eq!(leaf.len() as u64, MERKLE_LEAF_SIZE);
        match self {
            Tree::Sha256 => {
                let mut hasher = Sha256::new();
                hasher.update(self.leaf_prefix());
                hasher.update(leaf);
                hasher.finalize().into()
            }
            Tree::Blake3 => {
                let mut hasher = blake3::Hasher::new();
                hasher.update(self.leaf_prefix());
                hasher.update(leaf);
                hasher.finalize().into()
            }
        }
    }

    /// [`Tree::leaf`] of a leaf that already follows its prefix in memory
    /// (`message` = prefix ‖ leaf). Same value; for BLAKE3 it is cheaper
    /// (27% less CPU here): the 31-byte domain shifts every 1 KiB chunk of
    /// the leaf, and fed in two updates the hasher can run only some of its
    /// 64 chunks through its widest SIMD path, where one contiguous message
    /// runs them all.
    fn prefixed_leaf(self, message: &[u8]) -> Hash {
        debug_assert_eq!(
            message.len() as u64,
            self.leaf_prefix().len() as u64 + MERKLE_LEAF_SIZE
        );
        match self {
            Tree::Sha256 => Sha256::digest(message).into(),
            Tree::Blake3 => blake3::hash(message).into(),
        }
    }

    pub(super) fn parent(self, left: &Hash, right: &Hash) -> Hash {
        match self {
            Tree::Sha256 => {
                let mut hasher = Sha256::new();
                hasher.update([SHA256_INNER_TAG]);
                hasher.update(left);
                hasher.update(right);
                hasher.finalize().into()
            }
            Tree::Blake3 => {
                let mut hasher = blake3::Hasher::new();
                hasher.update(BLAKE3_PARENT_DOMAIN);
                hasher.update(left);
                hasher.update(right);
                hasher.finalize().into()
            }
        }
    }

    /// The bytes hashed into the digest: the tree's top node bound to the
    /// file's logical `size` (and, for BLAKE3, the tree `height`), so files
    /// whose zero-padded leaves agree still differ (`hello` vs `hello\0`).
    pub(super) fn root_record(self, size: u64, height: u32, top: &Hash) -> Vec<u8> {
        let mut record = Vec::with_capacity(80);
        match self {
            Tree::Sha256 => {
                record.extend_from_slice(SHA256_ROOT_PREFIX);
                record.extend_from_slice(&size.to_le_bytes());
                record.extend_from_slice(&(MERKLE_LEAF_SIZE as u32).to_le_bytes());
            }
            Tree::Blake3 => {
                record.extend_from_slice(BLAKE3_ROOT_DOMAIN);
                record.extend_from_slice(&size.to_le_bytes());
                record.extend_from_slice(&(MERKLE_LEAF_SIZE as u32).to_le_bytes());
                record.extend_from_slice(&height.to_le_bytes());
            }
        }
        record.extend_from_slice(top);
        record
    }

    /// The digest of a file of logical `size` whose tree of `height` has `top`.
    pub(super) fn root(self, size: u64, height: u32, top: &Hash) -> Hash {
        let record = self.root_record(size, height, top);
        match self {
            Tree::Sha256 => Sha256::digest(&record).into(),
            Tree::Blake3 => blake3::hash(&record).into(),
        }
    }

    /// zero[k] = the root of an all-zero subtree of height k, k in 0..=depth.
    pub(super) fn zero_subtrees(self, depth: u32) -> Vec<Hash> {
        let mut zero = Vec::with_capacity(depth as usize + 1);
        zero.push(self.leaf(&ZEROS));
        for k in 1..=depth as usize {
            zero.push(self.parent(&zero[k - 1], &zero[k - 1]));
        }
        zero
    }
}

/// The merkle digest of `input`: only the leaves overlapping its data
/// extents are read, one window at a time, on all cores. With `leaf_sink`,
/// every non-zero leaf (index, hash) is appended to it, in index order.
pub(super) fn digest(
    tree: Tree,
    input: &Input,
    monitor: &Monitor,
    mut leaf_sink: Option<&mut Vec<(u64, Hash)>>,
) -> Result<Hash> {
    let leaves = input.size.div_ceil(MERKLE_LEAF_SIZE).max(1);
    let depth = tree_depth(leaves);
    let zero = tree.zero_subtrees(depth);
    let window_height = depth.min(WINDOW_HEIGHT);
    let pieces = split_at_windows(&data_leaf_ranges(input.extents), window_height);
    let total: u64 = pieces.iter().map(|r| leaf_bytes(r, input.size)).sum();
    monitor.phase(crate::progress::Phase::Hash, total)?;

    let mut window_roots: Vec<(u64, Hash)> = Vec::new();
    for group in pieces.chunk_by(|a, b| a.start >> window_height == b.start >> window_height) {
        let window = group[0].start >> window_height;
        let mut leaf_hashes = hash_leaves(tree, input, group, &zero[0], monitor)?;
        leaf_hashes.sort_unstable_by_key(|(index, _)| *index);
        if let Some(out) = leaf_sink.as_deref_mut() {
            out.extend(leaf_hashes.iter().filter(|(_, hash)| *hash != zero[0]));
        }
        let root = subtree_root(
            tree,
            window_height,
            window << window_height,
            &leaf_hashes,
            &zero,
        );
        window_roots.push((window, root));
    }
    // The windows are the leaves of the upper part of the tree.
    let top = subtree_root(
        tree,
        depth - window_height,
        0,
        &window_roots,
        &zero[window_height as usize..],
    );
    Ok(tree.root(input.size, depth, &top))
}

/// d, the smallest with 2^d >= `leaves`.
pub(super) fn tree_depth(leaves: u64) -> u32 {
    if leaves <= 1 {
        0
    } else {
        u64::BITS - (leaves - 1).leading_zeros()
    }
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
pub(super) fn subtree_root(
    tree: Tree,
    height: u32,
    first: u64,
    nodes: &[(u64, Hash)],
    zero: &[Hash],
) -> Hash {
    match nodes {
        [] => zero[height as usize],
        // Base node indices are unique, so a height-0 subtree holds one.
        [(_, hash), ..] if height == 0 => *hash,
        _ => {
            let mid = first + (1u64 << (height - 1));
            let split = nodes.partition_point(|(index, _)| *index < mid);
            let left = subtree_root(tree, height - 1, first, &nodes[..split], zero);
            let right = subtree_root(tree, height - 1, mid, &nodes[split..], zero);
            tree.parent(&left, &right)
        }
    }
}

/// Hash the leaves in `ranges` (all in one window) on all cores. Returns
/// (leaf index, leaf hash) pairs in no particular order.
fn hash_leaves(
    tree: Tree,
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
        tree,
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
    tree: Tree,
    input: &'a Input<'a>,
    batches: &'a [Range<u64>],
    next: AtomicUsize,
    failed: AtomicBool,
    zero_leaf: &'a Hash,
    monitor: &'a Monitor<'m>,
}

impl LeafJob<'_, '_> {
    fn work(&self, out: &mut Vec<(u64, Hash)>) -> Result<()> {
        // One slot per leaf of the batch, each its leaf's whole hashed
        // message: the prefix (written once) then the leaf, read into place.
        let prefix = self.tree.leaf_prefix();
        let slot_len = prefix.len() + MERKLE_LEAF_SIZE as usize;
        let mut buffer = vec![0u8; LEAVES_PER_BATCH as usize * slot_len];
        for slot in buffer.chunks_exact_mut(slot_len) {
            slot[..prefix.len()].copy_from_slice(prefix);
        }
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            self.monitor.check()?;
            let Some(batch) = self.batches.get(self.next.fetch_add(1, Ordering::Relaxed)) else {
                return Ok(());
            };
            let size = self.input.size;
            let slots = buffer.chunks_exact_mut(slot_len);
            for (index, slot) in (batch.start..batch.end).zip(slots) {
                let len = leaf_bytes(&(index..index + 1), size) as usize;
                let leaf = &mut slot[prefix.len()..];
                self.input
                    .file
                    .read_exact_at(&mut leaf[..len], index * MERKLE_LEAF_SIZE)
                    .ctx("read", self.input.path)?;
                // Only the file's last leaf can be partial: zero-pad it to L.
                leaf[len..].fill(0);
                // Allocated zeros hash like a hole; skip the hashing.
                let hash = if is_all_zero(leaf) {
                    *self.zero_leaf
                } else {
                    self.tree.prefixed_leaf(slot)
                };
                out.push((index, hash));
            }
            self.monitor.advance(leaf_bytes(batch, size))?;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The tree pieces against `tests/vectors/msb-0.6.14/blake3/intermediates.tsv`
    //! (leaf, zero-subtree, top and root-record values recorded from
    //! microsandbox v0.6.14's own code for four small files).
    use super::*;
    use crate::sparse::Extent;
    use std::collections::BTreeMap;

    const VECTORS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/msb-0.6.14/blake3"
    );

    fn hex(bytes: &[u8]) -> String {
        super::super::hex(bytes)
    }

    fn unhex(s: &str) -> Vec<u8> {
        assert!(s.len() % 2 == 0, "odd hex {s}");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// name -> quantity -> value.
    fn intermediates() -> BTreeMap<String, BTreeMap<String, String>> {
        let text = std::fs::read_to_string(format!("{VECTORS}/intermediates.tsv")).unwrap();
        let mut cases: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for line in text.lines().skip(1).filter(|l| !l.is_empty()) {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 3, "{line}");
            cases
                .entry(cols[0].to_string())
                .or_default()
                .insert(cols[1].to_string(), cols[2].to_string());
        }
        cases
    }

    /// The logical bytes and the described extents of a vector file.
    fn content(name: &str) -> (Vec<u8>, Vec<Extent>) {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(format!("{VECTORS}/{name}.json")).unwrap())
                .unwrap();
        let size = json["logical_size"].as_u64().unwrap();
        let mut bytes = vec![0u8; size as usize];
        let mut extents = Vec::new();
        for e in json["extents"].as_array().unwrap() {
            let offset = e["offset"].as_u64().unwrap();
            let data = match e["data_hex"].as_str() {
                Some(h) => unhex(h),
                None => {
                    let byte = unhex(e["repeat_byte"].as_str().unwrap())[0];
                    vec![byte; e["length"].as_u64().unwrap() as usize]
                }
            };
            bytes[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
            extents.push(Extent {
                offset,
                len: data.len() as u64,
            });
        }
        (bytes, extents)
    }

    #[test]
    fn blake3_tree_pieces_match_the_recorded_intermediates() {
        let cases = intermediates();
        assert_eq!(cases.len(), 4, "{:?}", cases.keys());
        for (name, q) in &cases {
            let (bytes, extents) = content(name);
            assert_eq!(q["logical_size"], bytes.len().to_string(), "{name}");
            let size = bytes.len() as u64;
            let leaves = size.div_ceil(MERKLE_LEAF_SIZE).max(1);
            let height = tree_depth(leaves);
            assert_eq!(q["logical_leaf_count"], leaves.to_string(), "{name}");
            assert_eq!(q["tree_leaf_count"], (1u64 << height).to_string(), "{name}");
            assert_eq!(q["tree_height"], height.to_string(), "{name}");

            let ranges: Vec<String> = data_leaf_ranges(&extents)
                .iter()
                .map(|r| format!("({}, {})", r.start, r.end))
                .collect();
            assert_eq!(
                q["allocated_leaf_ranges"],
                format!("[{}]", ranges.join(", ")),
                "{name}"
            );

            let zero = Tree::Blake3.zero_subtrees(height);
            let mut checked_zero = 0;
            for (k, z) in zero.iter().enumerate() {
                if let Some(want) = q.get(&format!("zero_subtree_root[{k}]")) {
                    assert_eq!(&hex(z), want, "{name} zero subtree {k}");
                    checked_zero += 1;
                }
            }
            assert!(checked_zero >= 1, "{name}: no zero subtree checked");

            // Every leaf, hashed whole (the last one zero-padded).
            let mut padded = bytes.clone();
            padded.resize((leaves * MERKLE_LEAF_SIZE) as usize, 0);
            let leaf_hashes: Vec<(u64, Hash)> = padded
                .chunks_exact(MERKLE_LEAF_SIZE as usize)
                .enumerate()
                .map(|(i, leaf)| (i as u64, Tree::Blake3.leaf(leaf)))
                .collect();
            for (i, hash) in &leaf_hashes {
                if let Some(want) = q.get(&format!("leaf[{i}]")) {
                    assert_eq!(&hex(hash), want, "{name} leaf {i}");
                }
            }

            // The top from every leaf, and from the data leaves alone (the
            // rest standing in as zero subtrees): the same node.
            let top = subtree_root(Tree::Blake3, height, 0, &leaf_hashes, &zero);
            assert_eq!(hex(&top), q["top"], "{name} top");
            let data_only: Vec<(u64, Hash)> = leaf_hashes
                .iter()
                .filter(|(_, h)| *h != zero[0])
                .copied()
                .collect();
            assert_eq!(
                subtree_root(Tree::Blake3, height, 0, &data_only, &zero),
                top,
                "{name} top from data leaves"
            );

            let record = Tree::Blake3.root_record(size, height, &top);
            assert_eq!(record.len(), 79, "{name}");
            assert_eq!(hex(&record), q["root_record_hex"], "{name} root record");
            assert_eq!(
                format!("blake3:{}", hex(&Tree::Blake3.root(size, height, &top))),
                q["root"],
                "{name} root"
            );
        }
    }

    #[test]
    fn blake3_domains_are_the_recorded_bytes() {
        // SPEC-NOTES §8 gives each domain separator as hex.
        assert_eq!(
            hex(BLAKE3_LEAF_DOMAIN),
            "6d73622d66696c652d6d65726b6c652d626c616b65332d7631006c65616600"
        );
        assert_eq!(
            hex(BLAKE3_PARENT_DOMAIN),
            "6d73622d66696c652d6d65726b6c652d626c616b65332d763100706172656e7400"
        );
        assert_eq!(
            hex(BLAKE3_ROOT_DOMAIN),
            "6d73622d66696c652d6d65726b6c652d626c616b65332d763100726f6f7400"
        );
    }

    #[test]
    fn sha256_root_record_has_no_height() {
        // microsnap-merkle-sha256-v1's record predates the BLAKE3 tree and
        // must keep its bytes: prefix, LE64(size), LE32(L), top.
        let top = [7u8; 32];
        let record = Tree::Sha256.root_record(5, 3, &top);
        let mut want = b"microsnap-merkle-sha256-v1\0".to_vec();
        want.extend_from_slice(&5u64.to_le_bytes());
        want.extend_from_slice(&65536u32.to_le_bytes());
        want.extend_from_slice(&top);
        assert_eq!(record, want);
        assert_eq!(Tree::Sha256.root_record(5, 9, &top), want);
    }

    #[test]
    fn a_leaf_hashes_the_same_after_its_prefix_in_memory() {
        // The file path hashes prefix ‖ leaf in one piece, the stream path
        // in two updates: both must be the tree's leaf hash.
        let leaf: Vec<u8> = (0..MERKLE_LEAF_SIZE as u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        for tree in [Tree::Sha256, Tree::Blake3] {
            let mut message = tree.leaf_prefix().to_vec();
            message.extend_from_slice(&leaf);
            assert_eq!(tree.prefixed_leaf(&message), tree.leaf(&leaf), "{tree:?}");
        }
        assert_eq!(Tree::Sha256.leaf_prefix(), [0u8]);
        assert_eq!(Tree::Blake3.leaf_prefix().len(), 31);
    }

    #[test]
    fn tree_depth_is_log2_of_the_next_power_of_two() {
        for (leaves, depth) in [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (49, 6),
            (1 << 24, 24),
        ] {
            assert_eq!(tree_depth(leaves), depth, "{leaves}");
        }
    }
}

//! Which local artifacts hold which chunks, for pull: the home's leaf lists
//! (`crate::leaf_list`) of indexed snapshots, plus lists computed on the
//! spot for a local parent that has none. Pull copies a chunk from any local
//! artifact that has its leaf hash instead of downloading it; every chunk
//! copied this way is hashed again. Lists of snapshots no longer indexed are
//! deleted when lists are gathered, so the cache holds at most one 40-byte
//! record per non-zero chunk of each indexed snapshot.
use crate::artifact::{self, Artifact};
use crate::error::{IoContext, Result};
use crate::home::Home;
use crate::integrity::{self, LeafHash, MERKLE_LEAF_SIZE};
use crate::progress::Monitor;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

pub(crate) use crate::leaf_list::save;
use crate::leaf_list::{dir, load};

/// The leaves of an artifact's upper, read from its data (O(data)).
pub fn compute(art: &Artifact, monitor: &Monitor) -> Result<Vec<(u64, LeafHash)>> {
    let upper = art.disk_upper("read the chunks of")?;
    let path = art.upper_path();
    let size = upper.spec.size_bytes;
    let extents = crate::sparse::data_extents(upper.file).ctx("find data extents of", &path)?;
    let mut leaves = Vec::new();
    let mut buffer = vec![0u8; MERKLE_LEAF_SIZE as usize];
    let mut last = None;
    for extent in &extents {
        let first = extent.offset / MERKLE_LEAF_SIZE;
        let end = extent.end().min(size).div_ceil(MERKLE_LEAF_SIZE);
        for number in first..end {
            if last.is_some_and(|l| l >= number) {
                continue;
            }
            last = Some(number);
            monitor.check()?;
            let start = number * MERKLE_LEAF_SIZE;
            let len = MERKLE_LEAF_SIZE.min(size - start) as usize;
            upper
                .file
                .read_exact_at(&mut buffer[..len], start)
                .ctx("read", &path)?;
            if !crate::sparse::is_all_zero(&buffer[..len]) {
                leaves.push((number, integrity::merkle_sha256_leaf(&buffer[..len])));
            }
        }
    }
    Ok(leaves)
}

/// Where a chunk with a given leaf hash can be read locally.
#[derive(Clone)]
pub struct LocalChunk {
    pub file: Arc<File>,
    pub path: Arc<PathBuf>,
    pub offset: u64,
    pub len: u64,
}

/// A leaf list worked out by `gather`: (snapshot digest, upper size, leaves).
type ComputedList = (String, u64, Vec<(u64, LeafHash)>);

/// Chunks of local artifacts, by leaf hash.
#[derive(Default)]
pub struct LocalChunks {
    by_leaf: HashMap<LeafHash, LocalChunk>,
    /// Lists computed by `gather` for snapshots that had none: recorded by
    /// `save_computed` once the operation has succeeded, so a failed pull
    /// leaves the home as it was.
    computed: Vec<ComputedList>,
}

impl LocalChunks {
    /// The `wanted` leaves that local artifacts hold: every indexed
    /// snapshot with a leaf list, plus `also` (digests of local snapshots,
    /// e.g. the parent of what is pulled) whose leaves are computed when
    /// they have no list yet. Lists of snapshots no longer indexed are
    /// deleted (they describe nothing). Only wanted leaves are kept, and
    /// only the snapshots that hold one keep an open upper: on a host with
    /// thousands of snapshots a pull holds what it can use, not a
    /// descriptor and a map entry per chunk of every one.
    pub fn gather(
        home: &Home,
        also: &[String],
        wanted: &HashSet<LeafHash>,
        monitor: &Monitor,
    ) -> Result<LocalChunks> {
        let mut chunks = LocalChunks::default();
        let mut indexed: HashMap<String, PathBuf> = HashMap::new();
        for handle in crate::snapshot::list(home)? {
            indexed
                .entry(handle.digest.clone())
                .or_insert(handle.path.clone());
        }
        let cache = dir(home);
        let mut listed = std::collections::HashSet::new();
        if let Ok(entries) = fs::read_dir(&cache) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let digest = format!("sha256:{name}");
                match indexed.get(&digest) {
                    Some(path) => {
                        if let Some((_, leaves)) = load(&entry.path()) {
                            if let Ok(art) = artifact::open_dir(path) {
                                if art.digest == digest && chunks.add(&art, &leaves, wanted) {
                                    listed.insert(digest);
                                }
                            }
                        }
                    }
                    None => {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }
        for digest in also {
            if listed.contains(digest) {
                continue;
            }
            let Ok(art) = artifact::resolve_digest(home, digest) else {
                continue;
            };
            let Ok(leaves) = compute(&art, monitor) else {
                monitor.check()?;
                continue;
            };
            if chunks.add(&art, &leaves, wanted) {
                if let Some(size) = art.upper_spec().map(|u| u.size_bytes) {
                    chunks.computed.push((digest.clone(), size, leaves));
                }
            }
        }
        Ok(chunks)
    }

    /// Take the wanted leaves of `art` not yet found elsewhere; false if
    /// its upper cannot be read (a checkpoint-state snapshot).
    fn add(
        &mut self,
        art: &Artifact,
        leaves: &[(u64, LeafHash)],
        wanted: &HashSet<LeafHash>,
    ) -> bool {
        let Ok(upper) = art.disk_upper("copy chunks of") else {
            return false;
        };
        let size = upper.spec.size_bytes;
        let mut source: Option<(Arc<File>, Arc<PathBuf>)> = None;
        for (number, leaf) in leaves {
            let offset = number.saturating_mul(MERKLE_LEAF_SIZE);
            if offset >= size || !wanted.contains(leaf) || self.by_leaf.contains_key(leaf) {
                continue;
            }
            if source.is_none() {
                let Ok(file) = upper.file.try_clone() else {
                    return false;
                };
                source = Some((Arc::new(file), Arc::new(art.upper_path())));
            }
            let Some((file, path)) = &source else {
                continue;
            };
            self.by_leaf.insert(
                *leaf,
                LocalChunk {
                    file: Arc::clone(file),
                    path: Arc::clone(path),
                    offset,
                    len: MERKLE_LEAF_SIZE.min(size - offset),
                },
            );
        }
        true
    }

    /// Record the lists `gather` computed.
    pub fn save_computed(&self, home: &Home) {
        for (digest, size, leaves) in &self.computed {
            save(home, digest, *size, leaves);
        }
    }

    pub fn get(&self, leaf: &LeafHash) -> Option<&LocalChunk> {
        self.by_leaf.get(leaf)
    }

    /// Chunks a test names directly.
    #[cfg(test)]
    pub fn of(chunks: impl IntoIterator<Item = (LeafHash, LocalChunk)>) -> LocalChunks {
        LocalChunks {
            by_leaf: chunks.into_iter().collect(),
            computed: Vec::new(),
        }
    }
}

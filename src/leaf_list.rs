//! Leaf lists: for a snapshot, the `microsnap-merkle-sha256-v1` leaf hashes
//! of its upper's non-zero 64 KiB chunks, kept in
//! `<home>/cache/leaves/<hex of the snapshot digest>`. Snapshot create
//! records one when it computes that merkle digest anyway; push and pull
//! record one for what they send or receive. Push uses a snapshot's list to
//! read only the chunks its target lacks; pull uses every local list to
//! copy chunks instead of downloading them (`distribution::leaf_cache`).
//!
//! A list is derived data: written atomically (temporary file and rename),
//! ignored when missing or unreadable, and never trusted alone (a chunk
//! read through it is hashed; push checks the root of a list against the
//! recorded digest).
//!
//! File: magic `MSNAPLVS`, upper size u64 LE, count u64 LE, then count x
//! { chunk number u64 LE, leaf [32] }, sorted by chunk number.
use crate::error::{IoContext, Result};
use crate::home::Home;
use crate::integrity::LeafHash;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"MSNAPLVS";
const RECORD: usize = 8 + 32;

pub(crate) fn dir(home: &Home) -> PathBuf {
    home.root().join("cache").join("leaves")
}

pub(crate) fn file_for(home: &Home, digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| dir(home).join(hex))
}

/// Record the leaves of snapshot `digest` (best effort: a cache).
pub(crate) fn save(home: &Home, digest: &str, size: u64, leaves: &[(u64, LeafHash)]) {
    let _ = try_save(home, digest, size, leaves);
}

fn try_save(home: &Home, digest: &str, size: u64, leaves: &[(u64, LeafHash)]) -> Result<()> {
    let Some(path) = file_for(home, digest) else {
        return Ok(());
    };
    let dir = dir(home);
    fs::create_dir_all(&dir).ctx("create", &dir)?;
    let mut bytes = Vec::with_capacity(24 + leaves.len() * RECORD);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&size.to_le_bytes());
    bytes.extend_from_slice(&(leaves.len() as u64).to_le_bytes());
    for (number, leaf) in leaves {
        bytes.extend_from_slice(&number.to_le_bytes());
        bytes.extend_from_slice(leaf);
    }
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), rand_suffix()));
    let written = (|| -> Result<()> {
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(&bytes).ctx("write", &tmp)?;
        f.sync_all().ctx("sync", &tmp)?;
        fs::rename(&tmp, &path).ctx("rename into place", &path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::UNIX_EPOCH
            .elapsed()
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish()
}

pub(crate) fn load(path: &Path) -> Option<(u64, Vec<(u64, LeafHash)>)> {
    let bytes = fs::read(path).ok()?;
    if bytes.len() < 24 || &bytes[..8] != MAGIC {
        return None;
    }
    let size = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let count = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
    let body = &bytes[24..];
    if (body.len() as u64) != count.checked_mul(RECORD as u64)? {
        return None;
    }
    let leaves = body
        .chunks_exact(RECORD)
        .map(|r| {
            let number = u64::from_le_bytes(r[..8].try_into().expect("8 bytes"));
            let leaf: LeafHash = r[8..].try_into().expect("32 bytes");
            (number, leaf)
        })
        .collect();
    Some((size, leaves))
}

/// Delete the list of snapshot `digest` (best effort: its last copy is
/// gone, so the list describes nothing; a pull would delete it anyway).
pub(crate) fn forget(home: &Home, digest: &str) {
    if let Some(path) = file_for(home, digest) {
        let _ = fs::remove_file(path);
    }
}

/// The list recorded for snapshot `digest`, if any: (upper size, leaves).
pub(crate) fn load_for(home: &Home, digest: &str) -> Option<(u64, Vec<(u64, LeafHash)>)> {
    load(&file_for(home, digest)?)
}

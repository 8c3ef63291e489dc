//! What export writes for each snapshot, by archive format and artifact
//! format (decided here, written by `export.rs`):
//!
//! | archive format | v0.6.3 artifact | v0.6.14 artifact |
//! |---|---|---|
//! | `msb-v0.6.3` (default) | `sha256-<16 hex>/manifest.json` + `/<upper>` | `snapshots/<hex>/snapshot.json` + `files/<hex>/<upper>` |
//! | `msb-v0.6.14` | converted: `snapshots/<new hex>/snapshot.json` + `files/…` | as is |
//!
//! The default keeps every snapshot in its own format, so nothing changes
//! identity; a chain may then mix both layouts, and there is no
//! `archive.json`. `msb-v0.6.14` writes exactly what v0.6.14's `save` writes
//! (vectors/msb-0.6.14/SPEC-NOTES.md §9, §10): a v0.6.3 snapshot in it is
//! converted to `snapshot.json` (new identity), and every descendant's
//! `parent` is rewritten to its converted parent's new identity, root
//! first, so the lineage holds inside the archive.
//!
//! The upper's encoding in the v0.6.14 layout (§9): allocated extents widened
//! to 512-byte records and merged when they touch; one segment covering the
//! whole file or an empty file gives a plain regular member; otherwise an
//! old-GNU sparse member whose map ends with an `(L, 0)` terminator only
//! when the last segment ends before L. A member name over 100 bytes would
//! need a GNU long name, which v0.6.14's reader refuses (v0.6.14's save falls
//! back to one anyway, h26): export refuses such an upper name before
//! writing anything (`export.rs`), so every name here fits the header.
use super::sparse_entry::{SparseMap, SparseRun};
use crate::artifact::{integrity_for_v0614, Artifact, Descriptor};
use crate::error::{Error, Result};
use crate::integrity::{self, Algorithm};
use crate::manifest::Manifest;
use crate::progress::Monitor;
use crate::snapshot_json::{Integrity, SnapshotDescriptor, State};
use std::collections::BTreeMap;

const RECORD: u64 = 512;

/// How an upper goes into a v0.6.14-layout member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TheirEncoding {
    /// A regular member with all `size` bytes (holes as zeros).
    Dense,
    /// An old-GNU sparse member; its data is the map's runs.
    Sparse(SparseMap),
}

/// v0.6.14's encoding of a file of `size` bytes with these allocated
/// extents.
pub fn their_encoding(size: u64, extents: &[SparseRun]) -> TheirEncoding {
    let segments = widen_to_records(size, extents);
    let whole = segments.len() == 1 && segments[0].offset == 0 && segments[0].len == size;
    if size == 0 || whole {
        return TheirEncoding::Dense;
    }
    let mut runs = segments;
    if runs.last().map_or(0, |r| r.offset + r.len) < size {
        runs.push(SparseRun {
            offset: size,
            len: 0,
        });
    }
    TheirEncoding::Sparse(SparseMap {
        real_size: size,
        runs,
    })
}

/// Extents widened to whole 512-byte records (start down, end up, capped
/// at `size`), merged where they touch or overlap.
pub fn widen_to_records(size: u64, extents: &[SparseRun]) -> Vec<SparseRun> {
    let mut out: Vec<SparseRun> = Vec::new();
    for e in extents.iter().filter(|e| e.len > 0) {
        let start = e.offset / RECORD * RECORD;
        let end = (e.offset + e.len).div_ceil(RECORD) * RECORD;
        let end = end.min(size);
        if start >= end {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.offset + last.len >= start => {
                let last_end = (last.offset + last.len).max(end);
                last.len = last_end - last.offset;
            }
            _ => out.push(SparseRun {
                offset: start,
                len: end - start,
            }),
        }
    }
    out
}

/// One snapshot as the archive carries it.
pub struct PlannedSnapshot {
    /// The identity in the archive (a converted snapshot's new one).
    pub digest: String,
    /// The descriptor bytes written (the file's own when not converted).
    pub descriptor_bytes: Vec<u8>,
    /// v0.6.14 layout members (`snapshots/…`, `files/…`) or v0.6.3's.
    pub current_layout: bool,
    /// The v0.6.14 upper record (file state), for the inventory.
    pub upper_integrity: Option<Integrity>,
}

/// Plan the chain (root first) for an archive of `their_format`.
pub fn plan_chain(
    chain: &[Artifact],
    their_format: bool,
    monitor: &Monitor,
) -> Result<Vec<PlannedSnapshot>> {
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for art in chain {
        let planned = match (&art.descriptor, their_format) {
            (Descriptor::Manifest(_), false) => PlannedSnapshot {
                digest: art.digest.clone(),
                descriptor_bytes: art.descriptor_bytes().to_vec(),
                current_layout: false,
                upper_integrity: None,
            },
            (Descriptor::Snapshot(d), _) => {
                let new_parent = d.parent.as_ref().and_then(|p| renamed.get(p));
                match new_parent {
                    None => PlannedSnapshot {
                        digest: art.digest.clone(),
                        descriptor_bytes: shipped_bytes(art, d),
                        current_layout: true,
                        upper_integrity: d.file_upper().and_then(|u| u.integrity.clone()),
                    },
                    Some(parent) => {
                        let mut d = d.clone();
                        d.parent = Some(parent.clone());
                        rewritten(d)
                    }
                }
            }
            (Descriptor::Manifest(m), true) => {
                let parent = m
                    .parent
                    .as_ref()
                    .map(|p| renamed.get(p).unwrap_or(p).clone());
                rewritten(from_v063(art, m, parent, monitor)?)
            }
        };
        if planned.digest != art.digest {
            renamed.insert(art.digest.clone(), planned.digest.clone());
        }
        out.push(planned);
    }
    Ok(out)
}

fn rewritten(d: SnapshotDescriptor) -> PlannedSnapshot {
    PlannedSnapshot {
        digest: d.digest(),
        descriptor_bytes: d.canonical_bytes(),
        current_layout: true,
        upper_integrity: d.file_upper().and_then(|u| u.integrity.clone()),
    }
}

/// The bytes of a v0.6.14 descriptor as shipped: the file's own when they
/// are canonical (what microsandbox writes); else its canonical form, which
/// has the same identity — v0.6.14's `load` binds the member's SHA-256 to
/// the identity and refuses the file's own bytes (hostile/h25).
fn shipped_bytes(art: &Artifact, d: &SnapshotDescriptor) -> Vec<u8> {
    let bytes = art.descriptor_bytes();
    if crate::manifest::sha256_digest(bytes) == art.digest {
        bytes.to_vec()
    } else {
        d.canonical_bytes()
    }
}

/// A v0.6.3 manifest as a v0.6.14 descriptor, translated as v0.6.14's
/// migrator does (`SnapshotDescriptor::from_v063`, SPEC-NOTES §14), with
/// `parent` as given. Its recorded integrity is kept where v0.6.14's closed
/// set has it; microsnap's own SHA-256 merkle is not in that set, so BLAKE3
/// merkle is computed instead (O(allocated data)).
fn from_v063(
    art: &Artifact,
    m: &Manifest,
    parent: Option<String>,
    monitor: &Monitor,
) -> Result<SnapshotDescriptor> {
    let upper = art.disk_upper("export")?;
    let payload_size = upper
        .file
        .metadata()
        .map_err(|e| Error::io("stat", &art.upper_path(), e))?
        .len();
    let representable = m
        .upper
        .integrity
        .as_ref()
        .is_none_or(|rec| integrity_for_v0614(rec, m.upper.size_bytes).is_ok());
    let in_msb_v0614 = |e: Error| match e {
        Error::Unsupported(msg) | Error::InvalidManifest(msg) => Error::Unsupported(format!(
            "{} cannot be written as msb-v0.6.14: {msg}",
            art.path.display()
        )),
        other => other,
    };
    if representable {
        return SnapshotDescriptor::from_v063(m, payload_size, parent).map_err(in_msb_v0614);
    }
    let rec = m.upper.integrity.as_ref().map(|r| r.algorithm.clone());
    let algorithm = Algorithm::from_name(BLAKE3_MERKLE).ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: its integrity {} has no msb-v0.6.14 form and {BLAKE3_MERKLE} is not \
             available in this build",
            art.path.display(),
            rec.unwrap_or_default()
        ))
    })?;
    let mut without = m.clone();
    without.upper.integrity = None;
    let mut d =
        SnapshotDescriptor::from_v063(&without, payload_size, parent).map_err(in_msb_v0614)?;
    let root = integrity::compute_file(upper.file, &art.upper_path(), algorithm, monitor)?;
    if let State::File { upper, .. } = &mut d.state {
        upper.integrity = Some(Integrity::MerkleBlake3 {
            root,
            logical_size: payload_size,
            leaf_size: integrity::MERKLE_LEAF_SIZE,
        });
    }
    Ok(d)
}

const BLAKE3_MERKLE: &str = "msb-file-merkle-blake3-v1";

#[cfg(test)]
mod tests {
    use super::*;

    fn run(offset: u64, len: u64) -> SparseRun {
        SparseRun { offset, len }
    }

    #[test]
    fn extents_widen_to_records_and_merge() {
        assert_eq!(
            widen_to_records(10_000, &[run(100, 10), run(600, 10), run(5000, 5000)]),
            vec![run(0, 1024), run(4608, 10_000 - 4608)]
        );
    }

    #[test]
    fn terminator_only_when_the_file_ends_in_a_hole() {
        // single.tar: the last run ends at EOF, no terminator.
        let e = their_encoding(
            4194304,
            &[run(0, 4096), run(1048576, 4096), run(4190208, 4096)],
        );
        let TheirEncoding::Sparse(m) = e else {
            panic!()
        };
        assert_eq!(m.runs.len(), 3);
        // chain parent: ends in a hole, terminator (65536, 0).
        let TheirEncoding::Sparse(m) = their_encoding(65536, &[run(0, 4096), run(36864, 8192)])
        else {
            panic!()
        };
        assert_eq!(m.runs.last(), Some(&run(65536, 0)));
        // all hole: only the terminator.
        let TheirEncoding::Sparse(m) = their_encoding(1 << 20, &[]) else {
            panic!()
        };
        assert_eq!(m.runs, vec![run(1 << 20, 0)]);
        assert_eq!(their_encoding(0, &[]), TheirEncoding::Dense);
        assert_eq!(
            their_encoding(65536, &[run(0, 65536)]),
            TheirEncoding::Dense
        );
    }
}

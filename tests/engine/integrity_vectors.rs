//! Every `tests/vectors/msb-0.6.3/sparse/*.json` file, built both sparse and dense,
//! must give the digests recorded in `digests.tsv` (sha256 and
//! msb-sparse-sha256-v1, checked against microsandbox v0.6.3) and
//! `merkle.tsv` (microsnap-merkle-sha256-v1).
use crate::support::sparse_vectors;
use microsnap::integrity::compute;
use microsnap::progress::Monitor;
use microsnap::sparse::{allocated_bytes, data_extents};
use sparse_vectors::{vectors_with_digests, Vector};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// set_len, then write only the described extents: holes everywhere else.
pub(crate) fn build_sparse(v: &Vector, path: &Path) {
    let f = File::create(path).unwrap();
    f.set_len(v.size).unwrap();
    for (offset, bytes) in &v.extents {
        f.write_all_at(bytes, *offset).unwrap();
    }
    f.sync_all().unwrap();
}

/// Write every byte, zeros included, so nothing is a hole.
pub(crate) fn build_dense(v: &Vector, path: &Path) {
    let f = File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < v.size {
        let n = (v.size - at).min(chunk.len() as u64) as usize;
        f.write_all_at(&chunk[..n], at).unwrap();
        at += n as u64;
    }
    for (offset, bytes) in &v.extents {
        f.write_all_at(bytes, *offset).unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn sparse_vectors_match_recorded_digests_sparse_and_dense() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = Monitor::none();
    for (v, expected) in vectors_with_digests() {
        let sparse = dir.path().join(format!("{}.sparse", v.name));
        let dense = dir.path().join(format!("{}.dense", v.name));
        build_sparse(&v, &sparse);
        build_dense(&v, &dense);

        // The sparse build must really have holes, or this test would not
        // exercise the hole path at all.
        let described: u64 = v.extents.iter().map(|(_, b)| b.len() as u64).sum();
        let slack = 4096 * 2 * (v.extents.len() as u64 + 1);
        let allocated = allocated_bytes(&sparse).unwrap();
        assert!(
            allocated <= described + slack,
            "{}: sparse file allocates {allocated} bytes for {described} described",
            v.name
        );
        let extents = data_extents(&File::open(&sparse).unwrap()).unwrap();
        let extent_bytes: u64 = extents.iter().map(|e| e.len).sum();
        assert!(extent_bytes <= described + slack, "{}: {extents:?}", v.name);
        assert!(
            allocated_bytes(&dense).unwrap() >= v.size,
            "{}: dense file has holes",
            v.name
        );

        for (algorithm, want) in &expected {
            for path in [&sparse, &dense] {
                let got = compute(path, *algorithm, &monitor).unwrap();
                assert_eq!(&got, want, "{} {algorithm} {}", v.name, path.display());
            }
        }
        fs::remove_file(&dense).unwrap();
    }
}

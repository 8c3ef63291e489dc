//! `integrity::copy_and_compute` / `copy_and_check`: the copy is
//! byte-identical and as sparse as the source, and the digest is exactly what
//! `integrity::compute` gives for the source, for every algorithm.
use microsnap::error::Error;
use microsnap::integrity::{compute, copy_and_check, copy_and_compute, Algorithm};
use microsnap::progress::Monitor;
use microsnap::sparse::allocated_bytes;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// 40 MiB sparse: data at the start, a small extent mid-leaf, a trailing hole.
fn sparse_source(path: &Path) {
    let f = File::create(path).unwrap();
    f.set_len(40 << 20).unwrap();
    let data: Vec<u8> = (0..(3 << 20) as u32).map(|i| (i * 7 % 251) as u8).collect();
    f.write_all_at(&data, 0).unwrap();
    f.write_all_at(b"in the middle of a leaf", (17 << 20) + 12_345)
        .unwrap();
}

#[test]
fn copy_matches_source_bytes_and_digest_for_every_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    sparse_source(&src);
    for algorithm in Algorithm::ALL {
        let dst = dir.path().join(format!("dst-{}", algorithm.name()));
        let (copied, digest) = copy_and_compute(&src, &dst, algorithm, &Monitor::none()).unwrap();
        assert_eq!(
            digest,
            compute(&src, algorithm, &Monitor::none()).unwrap(),
            "{algorithm}"
        );
        assert!(std::fs::read(&src).unwrap() == std::fs::read(&dst).unwrap());
        assert!(((3 << 20)..(4 << 20)).contains(&copied), "copied {copied}");
        assert!(
            allocated_bytes(&dst).unwrap() <= allocated_bytes(&src).unwrap() + (64 << 10),
            "the copy must keep the holes"
        );
    }
}

#[test]
fn check_refuses_a_wrong_digest_and_leaves_no_copy() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    sparse_source(&src);
    let dst = dir.path().join("dst");
    let wrong = format!("sha256:{}", "0".repeat(64));
    let err = copy_and_check(
        &src,
        &dst,
        Algorithm::MerkleSha256V1,
        &wrong,
        &Monitor::none(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::IntegrityMismatch { .. }), "{err:?}");
    assert!(!dst.exists());
    let right = compute(&src, Algorithm::MerkleSha256V1, &Monitor::none()).unwrap();
    copy_and_check(
        &src,
        &dst,
        Algorithm::MerkleSha256V1,
        &right,
        &Monitor::none(),
    )
    .unwrap();
    assert!(dst.exists());
}

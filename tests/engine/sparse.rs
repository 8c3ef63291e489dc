//! Sparse-aware copying: snapshot create, sandbox-from-snapshot and adopting
//! an upper keep holes, so a 1 GiB upper with a few MiB written costs a few
//! MiB on disk at every step, with its content intact.
use crate::support as engine_support;

use engine_support::*;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, CreateOptions};
use microsnap::sparse::allocated_bytes;
use std::path::Path;

const GIB: u64 = 1 << 30;

/// Data written into the 1 GiB upper: ~6 MiB in four extents, one at the end.
fn writes() -> Vec<(u64, Vec<u8>)> {
    vec![
        (0, pattern(2 * MIB as usize, 1)),
        (300 * MIB + 123, pattern(1_000_000, 2)),
        (700 * MIB, pattern(3 * MIB as usize, 3)),
        (GIB - 4096, pattern(4096, 4)),
    ]
}

fn written_bytes() -> u64 {
    writes().iter().map(|(_, d)| d.len() as u64).sum()
}

/// The copy's allocation is close to the source's: never a dense copy, and
/// at most a little slack for filesystem block rounding.
fn assert_sparse_like(copy: &Path, source: &Path) {
    let (c, s) = (
        allocated_bytes(copy).unwrap(),
        allocated_bytes(source).unwrap(),
    );
    assert!(
        c >= written_bytes(),
        "{}: {c} bytes allocated, less than the data",
        copy.display()
    );
    assert!(
        c <= s + MIB,
        "{}: {c} bytes allocated vs source {s}",
        copy.display()
    );
    assert_eq!(std::fs::metadata(copy).unwrap().len(), GIB);
}

fn assert_same_data(path: &Path) {
    for (offset, data) in writes() {
        assert_eq!(read_at(path, offset, data.len()), data, "at {offset}");
    }
    // And a hole still reads as zeros.
    assert_eq!(read_at(path, 500 * MIB, 4096), vec![0; 4096]);
}

#[test]
fn snapshot_and_sandbox_from_snapshot_keep_holes() {
    let t = TestHome::new();
    let w = writes();
    let refs: Vec<(u64, &[u8])> = w.iter().map(|(o, d)| (*o, d.as_slice())).collect();
    let sb = t.sandbox_with("big", GIB, &refs);
    assert!(allocated_bytes(&sb.upper_path).unwrap() < 16 * MIB);

    let opts = CreateOptions {
        record_integrity: true,
        integrity_algorithm: Some(Algorithm::MerkleSha256V1),
        ..named("big-snap")
    };
    let art = snapshot::create(&t.home, "big", &opts, &Monitor::none()).unwrap();
    assert_eq!(art.upper_spec().unwrap().size_bytes, GIB);
    assert_sparse_like(&art.upper_path(), &sb.upper_path);
    assert_same_data(&art.upper_path());

    let copy = t.sandbox_from("copy", "big-snap").unwrap();
    assert_sparse_like(&copy.upper_path, &art.upper_path());
    assert_same_data(&copy.upper_path);

    // A grandchild snapshot of the copy stays sparse too.
    let again = t.snapshot("copy", "copy-snap");
    assert_sparse_like(&again.upper_path(), &copy.upper_path);
    assert_eq!(
        snapshot::verify(&t.home, "big-snap", &Monitor::none())
            .unwrap()
            .upper
            .kind,
        "verified"
    );
}

#[test]
fn adopting_an_upper_and_snapshotting_to_a_path_keep_holes() {
    let t = TestHome::new();
    let w = writes();
    let refs: Vec<(u64, &[u8])> = w.iter().map(|(o, d)| (*o, d.as_slice())).collect();
    let original = t.outside("disk.img");
    sparse_file(&original, GIB, &refs);
    let sb = sandbox::create(
        &t.home,
        "adopted",
        &SandboxSource::Upper {
            path: original.clone(),
            fstype: "ext4".into(),
            image: IMAGE_REF.into(),
        },
        &Monitor::none(),
    )
    .unwrap();
    assert_sparse_like(&sb.upper_path, &original);
    assert_same_data(&sb.upper_path);

    let dest = t.outside("exports").join("adopted-snap");
    let art = snapshot::create(&t.home, "adopted", &at_path(&dest), &Monitor::none()).unwrap();
    assert_sparse_like(&art.upper_path(), &original);
    assert_same_data(&art.upper_path());
}

//! `compute` against a deliberately naive reference that reads every byte and
//! builds the whole Merkle tree level by level, on layouts chosen to hit the
//! edge cases of the hole-skipping implementation: leaf boundaries, extents
//! straddling leaves and 1 GiB hashing windows, partial last leaves,
//! allocated zeros, empty and one-leaf files.
use crate::support::pseudo_random;
use microsnap::error::Error;
use microsnap::integrity::{compute, Algorithm};
use microsnap::progress::{CancelToken, Monitor};
use microsnap::sparse::data_extents;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

const L: u64 = 65536;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Read the file front to back in leaf-sized pieces (holes included).
fn for_each_leaf(path: &Path, mut f: impl FnMut(&[u8])) -> u64 {
    let mut file = File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut leaf = vec![0u8; L as usize];
    let mut remaining = size;
    while remaining > 0 {
        let n = remaining.min(L) as usize;
        file.read_exact(&mut leaf[..n]).unwrap();
        f(&leaf[..n]);
        remaining -= n as u64;
    }
    size
}

/// The DESIGN.md definition, transcribed as literally as possible.
fn naive_merkle(path: &Path) -> String {
    let leaf_hash = |bytes: &[u8]| -> Vec<u8> {
        let mut padded = bytes.to_vec();
        padded.resize(L as usize, 0);
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(&padded);
        h.finalize().to_vec()
    };
    let mut level: Vec<Vec<u8>> = Vec::new();
    let size = for_each_leaf(path, |leaf| level.push(leaf_hash(leaf)));
    if level.is_empty() {
        level.push(leaf_hash(&[]));
    }
    let mut width = 1;
    while width < level.len() {
        width *= 2;
    }
    let zero_leaf = leaf_hash(&[]);
    level.resize(width, zero_leaf);
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let mut h = Sha256::new();
                h.update([1u8]);
                h.update(&pair[0]);
                h.update(&pair[1]);
                h.finalize().to_vec()
            })
            .collect();
    }
    let mut h = Sha256::new();
    h.update(b"microsnap-merkle-sha256-v1\0");
    h.update(size.to_le_bytes());
    h.update((L as u32).to_le_bytes());
    h.update(&level[0]);
    format!("sha256:{}", hex(&h.finalize()))
}

/// Plain and msb-sparse digests of every byte, read front to back.
fn naive_streams(path: &Path) -> (String, String) {
    let mut plain = Sha256::new();
    let mut msb = Sha256::new();
    msb.update(b"msb-sparse-sha256-v1\0");
    let size = File::open(path).unwrap().metadata().unwrap().len();
    msb.update(size.to_le_bytes());
    for_each_leaf(path, |bytes| {
        plain.update(bytes);
        msb.update(bytes);
    });
    (
        format!("sha256:{}", hex(&plain.finalize())),
        format!("sha256:{}", hex(&msb.finalize())),
    )
}

struct Layout {
    name: &'static str,
    size: u64,
    writes: Vec<(u64, Vec<u8>)>,
}

fn build(layout: &Layout, path: &Path) {
    let f = File::create(path).unwrap();
    f.set_len(layout.size).unwrap();
    for (offset, bytes) in &layout.writes {
        f.write_all_at(bytes, *offset).unwrap();
    }
}

fn check_against_reference(layout: &Layout) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(layout.name);
    build(layout, &path);
    let monitor = Monitor::none();
    let merkle = compute(&path, Algorithm::MerkleSha256V1, &monitor).unwrap();
    assert_eq!(
        merkle,
        naive_merkle(&path),
        "merkle, layout {}",
        layout.name
    );
    let (plain, msb) = naive_streams(&path);
    assert_eq!(
        compute(&path, Algorithm::Sha256, &monitor).unwrap(),
        plain,
        "sha256, layout {}",
        layout.name
    );
    assert_eq!(
        compute(&path, Algorithm::MsbSparseSha256V1, &monitor).unwrap(),
        msb,
        "msb-sparse, layout {}",
        layout.name
    );
}

#[test]
fn small_layouts_match_naive_reference() {
    let layouts = vec![
        Layout {
            name: "empty",
            size: 0,
            writes: vec![],
        },
        Layout {
            name: "one-byte",
            size: 1,
            writes: vec![(0, vec![0x42])],
        },
        Layout {
            name: "exactly-one-leaf-hole",
            size: L,
            writes: vec![],
        },
        Layout {
            name: "exactly-one-leaf-data",
            size: L,
            writes: vec![(0, pseudo_random(L as usize, 1))],
        },
        Layout {
            name: "one-leaf-plus-one",
            size: L + 1,
            writes: vec![(L, vec![0x5a])],
        },
        Layout {
            name: "straddling-and-partial-last-leaf",
            size: 3 * L + 123,
            writes: vec![
                (L - 10, pseudo_random(20, 2)),
                (3 * L + 100, pseudo_random(23, 3)),
            ],
        },
        Layout {
            name: "leaf-aligned-data",
            size: 5 * L,
            writes: vec![(2 * L, pseudo_random(L as usize, 4)), (4 * L, vec![1])],
        },
        Layout {
            // 17 leaves: the tree pads to 32, so most of the right half is
            // padding leaves past the end of the file.
            name: "first-and-last-of-seventeen",
            size: 17 * L - 1,
            writes: vec![(0, vec![9; 3]), (16 * L, pseudo_random(L as usize - 1, 5))],
        },
        Layout {
            // Allocated zeros must hash exactly like a hole.
            name: "allocated-zero-leaves",
            size: 8 * L,
            writes: vec![(L, vec![0; 3 * L as usize]), (6 * L + 7, vec![3; 9])],
        },
        Layout {
            name: "dense-multi-batch",
            size: 100 * L + 4321,
            writes: vec![(0, pseudo_random((100 * L + 4321) as usize, 6))],
        },
    ];
    for layout in &layouts {
        check_against_reference(layout);
    }
}

#[test]
fn one_gib_file_with_three_small_extents_matches_reference() {
    check_against_reference(&Layout {
        name: "1g-three-extents",
        size: GIB,
        writes: vec![
            (0x1234, pseudo_random(5000, 7)),
            (512 * MIB - 3, pseudo_random(10, 8)),
            (GIB - 7, pseudo_random(7, 9)),
        ],
    });
}

#[test]
fn extents_crossing_hashing_windows_match_reference() {
    // The implementation reduces one 1 GiB window of leaves at a time; put
    // data across a window boundary and in a later, partial window.
    check_against_reference(&Layout {
        name: "2g-window-crossing",
        size: 2 * GIB + 5,
        writes: vec![
            (GIB - 3 * MIB, pseudo_random((5 * MIB) as usize, 10)),
            (2 * GIB, pseudo_random(5, 11)),
        ],
    });
}

#[test]
fn sparse_and_dense_copies_have_the_same_merkle_digest() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = dir.path().join("sparse");
    let dense = dir.path().join("dense");
    let size = 40 * L + 17;
    let data = pseudo_random(3000, 12);
    let f = File::create(&sparse).unwrap();
    f.set_len(size).unwrap();
    f.write_all_at(&data, 20 * L - 1000).unwrap();
    let mut full = vec![0u8; size as usize];
    full[(20 * L - 1000) as usize..][..3000].copy_from_slice(&data);
    std::fs::write(&dense, &full).unwrap();
    let ds = data_extents(&File::open(&sparse).unwrap()).unwrap();
    assert!(ds.iter().map(|e| e.len).sum::<u64>() < size / 4, "{ds:?}");
    let m = Monitor::none();
    assert_eq!(
        compute(&sparse, Algorithm::MerkleSha256V1, &m).unwrap(),
        compute(&dense, Algorithm::MerkleSha256V1, &m).unwrap()
    );
    // ... and one changed byte changes it.
    f.write_all_at(&[0xff], 3).unwrap();
    assert_ne!(
        compute(&sparse, Algorithm::MerkleSha256V1, &m).unwrap(),
        compute(&dense, Algorithm::MerkleSha256V1, &m).unwrap()
    );
}

#[test]
fn names_round_trip_and_default_is_merkle() {
    for (algorithm, name) in [
        (Algorithm::Sha256, "sha256"),
        (Algorithm::MsbSparseSha256V1, "msb-sparse-sha256-v1"),
        (Algorithm::MerkleSha256V1, "microsnap-merkle-sha256-v1"),
    ] {
        assert_eq!(algorithm.name(), name);
        assert_eq!(Algorithm::from_name(name), Some(algorithm));
    }
    assert_eq!(Algorithm::from_name("SHA256"), None);
    assert_eq!(Algorithm::from_name("md5"), None);
    assert_eq!(Algorithm::DEFAULT, Algorithm::MerkleSha256V1);
}

#[test]
fn progress_reports_hash_phase_over_data_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let f = File::create(&path).unwrap();
    f.set_len(64 * MIB).unwrap();
    f.write_all_at(&[1; 10], 5 * MIB + 3).unwrap(); // one leaf
    f.write_all_at(&[2; 10], 9 * MIB).unwrap(); // one leaf
    drop(f);
    for algorithm in [Algorithm::MerkleSha256V1, Algorithm::MsbSparseSha256V1] {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let m = Monitor::new(
            None,
            Some(Box::new(move |phase: &str, done, total| {
                sink.lock().unwrap().push((phase.to_string(), done, total));
                true
            })),
        );
        compute(&path, algorithm, &m).unwrap();
        let seen = seen.lock().unwrap();
        let (phase, done, total) = seen.last().unwrap().clone();
        assert_eq!(phase, "hash");
        assert_eq!(done, total, "{algorithm}: {seen:?}");
        assert!(
            total > 0 && total < 64 * MIB / 8,
            "{algorithm}: total {total}"
        );
        if algorithm == Algorithm::MerkleSha256V1 {
            assert_eq!(total, 2 * L, "merkle reads exactly the two data leaves");
        }
    }
}

#[test]
fn cancellation_and_bad_paths_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    std::fs::write(&path, pseudo_random((8 * MIB) as usize, 13)).unwrap();
    for algorithm in [Algorithm::MerkleSha256V1, Algorithm::Sha256] {
        let token = CancelToken::new();
        token.cancel();
        let r = compute(&path, algorithm, &Monitor::with_cancel(token));
        assert!(matches!(r, Err(Error::Cancelled)), "{algorithm}: {r:?}");
        // The callback asking to stop mid-way also cancels.
        let m = Monitor::new(None, Some(Box::new(|_: &str, done, _| done == 0)));
        let r = compute(&path, algorithm, &m);
        assert!(matches!(r, Err(Error::Cancelled)), "{algorithm}: {r:?}");
    }
    let missing = dir.path().join("missing");
    let err = compute(&missing, Algorithm::DEFAULT, &Monitor::none()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing"), "{err}");
    let err = compute(dir.path(), Algorithm::DEFAULT, &Monitor::none()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

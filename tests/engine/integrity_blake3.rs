//! `msb-file-merkle-blake3-v1`, microsandbox v0.6.14's BLAKE3 merkle, against
//! the v0.6.14 vectors (`tests/vectors/msb-0.6.14/blake3/`): every described
//! file, built sparse and dense, gives the digests of `digests.tsv` (the
//! BLAKE3 root and, where recorded, msb-sparse-sha256-v1 and sha256); the
//! 1 TiB vector is built sparse only and must cost O(log size), not O(size);
//! the streaming digest equals the file's; a cancelled hash stops.
use crate::integrity_vectors::{build_dense, build_sparse};
use crate::support::pseudo_random;
use crate::support::sparse_vectors::{load_tsv, load_vector, Vector};
use crate::support::vector_sets::MSB_V0614;
use microsnap::error::Error;
use microsnap::integrity::{compute, Algorithm, DigestThread, StreamDigest};
use microsnap::progress::{CancelToken, Monitor};
use microsnap::sparse::allocated_bytes;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const L: u64 = 65536;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Above this the vector is built sparse only (b12 is 1 TiB).
const DENSE_LIMIT: u64 = GIB;

fn vector_dir() -> PathBuf {
    Path::new(MSB_V0614).join("blake3")
}

/// Every vector with its recorded digests; "-" (not recorded) is left out.
fn vectors() -> Vec<(Vector, Vec<(Algorithm, String)>)> {
    let digests = load_tsv(&vector_dir().join("digests.tsv"));
    let mut files: Vec<PathBuf> = fs::read_dir(vector_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 16, "expected the 16 blake3 vectors: {files:?}");
    assert_eq!(digests.len(), files.len(), "one digests.tsv row per vector");
    files
        .iter()
        .map(|file| {
            let v = load_vector(file);
            let row = &digests[&v.name];
            assert_eq!(row["logical_size"], v.size.to_string(), "{}", v.name);
            let expected = [
                (Algorithm::MerkleBlake3V1, "msb_file_merkle_blake3_v1"),
                (Algorithm::MsbSparseSha256V1, "msb_sparse_sha256_v1"),
                (Algorithm::Sha256, "sha256"),
            ]
            .into_iter()
            .filter(|(_, column)| row[*column] != "-")
            .map(|(algorithm, column)| (algorithm, row[column].clone()))
            .collect();
            (v, expected)
        })
        .collect()
}

#[test]
fn blake3_vectors_match_recorded_digests_sparse_and_dense() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = Monitor::none();
    let mut dense_built = 0;
    for (v, expected) in vectors() {
        assert!(
            expected[0].0 == Algorithm::MerkleBlake3V1,
            "{}: no blake3 root",
            v.name
        );
        let sparse = dir.path().join(format!("{}.sparse", v.name));
        build_sparse(&v, &sparse);
        // The sparse build must really have holes, or the hole path would
        // not be exercised at all.
        let described: u64 = v.extents.iter().map(|(_, b)| b.len() as u64).sum();
        let slack = 4096 * 2 * (v.extents.len() as u64 + 1);
        let allocated = allocated_bytes(&sparse).unwrap();
        assert!(
            allocated <= described + slack,
            "{}: sparse file allocates {allocated} bytes for {described} described",
            v.name
        );
        let mut builds = vec![sparse.clone()];
        if v.size <= DENSE_LIMIT {
            let dense = dir.path().join(format!("{}.dense", v.name));
            build_dense(&v, &dense);
            assert!(allocated_bytes(&dense).unwrap() >= v.size, "{}", v.name);
            builds.push(dense);
            dense_built += 1;
        } else {
            // Only the BLAKE3 root is recorded for it (the SHA-256 digests
            // would read every byte of 1 TiB).
            assert_eq!(expected.len(), 1, "{}", v.name);
        }
        for (algorithm, want) in &expected {
            for path in &builds {
                let got = compute(path, *algorithm, &monitor).unwrap();
                assert_eq!(&got, want, "{} {algorithm} {}", v.name, path.display());
            }
        }
        for path in builds {
            fs::remove_file(path).unwrap();
        }
    }
    assert_eq!(
        dense_built, 15,
        "every vector but the 1 TiB one built dense"
    );
}

#[test]
fn one_tib_sparse_vector_is_hashed_in_o_log_size() {
    let (v, expected) = vectors()
        .into_iter()
        .find(|(v, _)| v.name == "b12-one-tib-sparse")
        .unwrap();
    assert_eq!(v.size, 1 << 40);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b12");
    build_sparse(&v, &path);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let monitor = Monitor::new(
        None,
        Some(Box::new(move |phase: &str, done, total| {
            sink.lock().unwrap().push((phase.to_string(), done, total));
            true
        })),
    );
    let started = Instant::now();
    let got = compute(&path, Algorithm::MerkleBlake3V1, &monitor).unwrap();
    let took = started.elapsed();
    assert_eq!(got, expected[0].1);
    // Two data leaves are read, nothing else: the 2^24 leaves between them
    // are zero subtrees. Reading 1 TiB of zeros would take many minutes;
    // the bound only tells the two apart on a loaded machine.
    let (phase, done, total) = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!((phase.as_str(), done, total), ("hash", 2 * L, 2 * L));
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // The stream sees the same two pieces and gives the same root.
    let mut stream = StreamDigest::new(Algorithm::MerkleBlake3V1, v.size);
    for (offset, bytes) in &v.extents {
        stream.update_at(*offset, bytes).unwrap();
    }
    assert_eq!(stream.finish(), expected[0].1);
}

/// Feed `v`'s extents in pieces of at most `piece` bytes.
fn streamed(v: &Vector, algorithm: Algorithm, piece: usize) -> String {
    let mut digest = StreamDigest::new(algorithm, v.size);
    for (offset, bytes) in &v.extents {
        for (i, chunk) in bytes.chunks(piece).enumerate() {
            digest
                .update_at(offset + (i * piece) as u64, chunk)
                .unwrap();
        }
    }
    digest.finish()
}

fn threaded(v: &Vector, algorithm: Algorithm, piece: usize) -> String {
    let mut thread = DigestThread::spawn(algorithm, v.size, piece).unwrap();
    for (offset, bytes) in &v.extents {
        for (i, chunk) in bytes.chunks(piece).enumerate() {
            let mut buffer = thread.buffer();
            buffer[..chunk.len()].copy_from_slice(chunk);
            thread
                .feed(offset + (i * piece) as u64, buffer, chunk.len())
                .unwrap();
        }
    }
    thread.finish().unwrap()
}

#[test]
fn blake3_vectors_stream_to_their_recorded_roots() {
    for (v, expected) in vectors() {
        let want = &expected[0].1;
        for piece in [1000, 4096, L as usize, 3 * L as usize + 17] {
            assert_eq!(
                &streamed(&v, Algorithm::MerkleBlake3V1, piece),
                want,
                "{} pieces of {piece}",
                v.name
            );
        }
        assert_eq!(
            &threaded(&v, Algorithm::MerkleBlake3V1, 8192),
            want,
            "{} threaded",
            v.name
        );
    }
}

#[test]
fn stream_equals_file_across_hashing_windows() {
    // Data on both sides of a 1 GiB window boundary, a window with no data,
    // a partial last leaf: the stream reduces windows as it passes them,
    // the file computation one window at a time on all cores.
    let v = Vector {
        name: "windows".into(),
        size: 3 * GIB + 5,
        extents: vec![
            (GIB - 3 * MIB, pseudo_random(5 * MIB as usize, 21)),
            (3 * GIB, pseudo_random(5, 22)),
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    build_sparse(&v, &path);
    let file = compute(&path, Algorithm::MerkleBlake3V1, &Monitor::none()).unwrap();
    assert!(file.starts_with("blake3:") && file.len() == 71, "{file}");
    assert_eq!(streamed(&v, Algorithm::MerkleBlake3V1, MIB as usize), file);
    assert_eq!(threaded(&v, Algorithm::MerkleBlake3V1, MIB as usize), file);
    // Not the SHA-256 tree under another name.
    let sha = compute(&path, Algorithm::MerkleSha256V1, &Monitor::none()).unwrap();
    assert_ne!(sha["sha256:".len()..], file["blake3:".len()..]);
}

#[test]
fn cancelled_blake3_hash_stops_with_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    File::create(&path)
        .unwrap()
        .write_all_at(&pseudo_random((16 * MIB) as usize, 23), 0)
        .unwrap();
    let token = CancelToken::new();
    token.cancel();
    let r = compute(
        &path,
        Algorithm::MerkleBlake3V1,
        &Monitor::with_cancel(token),
    );
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");

    // The progress callback asking to stop after the first batch: the
    // workers stop instead of hashing the other 7 batches.
    let calls = Arc::new(Mutex::new(Vec::new()));
    let sink = calls.clone();
    let m = Monitor::new(
        None,
        Some(Box::new(move |_: &str, done, _| {
            sink.lock().unwrap().push(done);
            done == 0
        })),
    );
    let r = compute(&path, Algorithm::MerkleBlake3V1, &m);
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    let calls = calls.lock().unwrap();
    assert!(
        calls.iter().all(|&done| done < 16 * MIB),
        "hashed to the end: {calls:?}"
    );
}

#[test]
fn name_prefix_and_default() {
    let a = Algorithm::from_name("msb-file-merkle-blake3-v1").unwrap();
    assert_eq!(a, Algorithm::MerkleBlake3V1);
    assert_eq!(a.name(), "msb-file-merkle-blake3-v1");
    assert_eq!(a.digest_prefix(), "blake3:");
    assert_eq!(Algorithm::MerkleSha256V1.digest_prefix(), "sha256:");
    assert!(Algorithm::ALL.contains(&a));
    assert_eq!(Algorithm::recorded("msb-file-merkle-blake3-v1").unwrap(), a);
    assert_eq!(Algorithm::from_name("MSB-FILE-MERKLE-BLAKE3-V1"), None);
    // New artifacts keep recording the SHA-256 merkle unless asked.
    assert_eq!(Algorithm::DEFAULT, Algorithm::MerkleSha256V1);
}

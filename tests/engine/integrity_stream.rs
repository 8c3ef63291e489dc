//! `StreamDigest` and `DigestThread` (data fed once, in offset order) must
//! give exactly what `compute` gives for a file of the same logical bytes,
//! whatever the pieces look like: every shared sparse vector, and layouts
//! fed in pieces that start and end anywhere relative to merkle leaves and
//! 1 GiB hashing windows, with and without gaps, with allocated zeros.
use crate::support::pseudo_random;
use crate::support::sparse_vectors;
use microsnap::error::Error;
use microsnap::integrity::{compute, Algorithm, DigestThread, StreamDigest};
use microsnap::progress::Monitor;
use sparse_vectors::vectors_with_digests;
use std::fs::File;
use std::os::unix::fs::FileExt;
const L: u64 = 65536;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A file's data as (offset, bytes), sorted, not overlapping.
struct Layout {
    size: u64,
    data: Vec<(u64, Vec<u8>)>,
}

impl Layout {
    fn file_digest(&self, algorithm: Algorithm) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = File::create(&path).unwrap();
        f.set_len(self.size).unwrap();
        for (offset, bytes) in &self.data {
            f.write_all_at(bytes, *offset).unwrap();
        }
        compute(&path, algorithm, &Monitor::none()).unwrap()
    }

    /// Feed every data range cut into pieces of at most `piece` bytes.
    fn streamed(&self, algorithm: Algorithm, piece: usize) -> String {
        let mut digest = StreamDigest::new(algorithm, self.size);
        for (offset, bytes) in &self.data {
            for (i, chunk) in bytes.chunks(piece).enumerate() {
                digest
                    .update_at(offset + (i * piece) as u64, chunk)
                    .unwrap();
            }
        }
        digest.finish()
    }

    fn threaded(&self, algorithm: Algorithm, piece: usize) -> String {
        let mut thread = DigestThread::spawn(algorithm, self.size, piece).unwrap();
        for (offset, bytes) in &self.data {
            for (i, chunk) in bytes.chunks(piece).enumerate() {
                let mut buffer = thread.buffer();
                assert_eq!(buffer.len(), piece);
                buffer[..chunk.len()].copy_from_slice(chunk);
                thread
                    .feed(offset + (i * piece) as u64, buffer, chunk.len())
                    .unwrap();
            }
        }
        thread.finish().unwrap()
    }
}

fn check(name: &str, layout: &Layout, algorithms: &[Algorithm]) {
    for &algorithm in algorithms {
        let want = layout.file_digest(algorithm);
        for piece in [1000, L as usize, 3 * L as usize + 17, MIB as usize] {
            assert_eq!(
                layout.streamed(algorithm, piece),
                want,
                "{name} {algorithm} pieces of {piece}"
            );
        }
        assert_eq!(
            layout.threaded(algorithm, MIB as usize),
            want,
            "{name} {algorithm} threaded"
        );
    }
}

#[test]
fn layouts_stream_to_the_file_digest() {
    let layouts = [
        (
            "empty",
            Layout {
                size: 0,
                data: vec![],
            },
        ),
        (
            "all hole",
            Layout {
                size: 3 * L + 5,
                data: vec![],
            },
        ),
        (
            "one byte",
            Layout {
                size: 1,
                data: vec![(0, vec![9])],
            },
        ),
        (
            "partial last leaf",
            Layout {
                size: 2 * L + 100,
                data: vec![
                    (L - 10, pseudo_random(L as usize + 50, 1)),
                    (2 * L + 99, vec![1]),
                ],
            },
        ),
        (
            "two ranges in one leaf, allocated zeros, aligned leaves",
            Layout {
                size: 16 * L,
                data: vec![
                    (10, pseudo_random(20, 2)),
                    (4000, pseudo_random(30, 3)),
                    (2 * L, vec![0; 3 * L as usize]),
                    (5 * L, pseudo_random(4 * L as usize, 4)),
                    (15 * L + 1, pseudo_random(L as usize - 1, 5)),
                ],
            },
        ),
    ];
    for (name, layout) in &layouts {
        check(name, layout, &Algorithm::ALL);
    }
}

#[test]
fn windows_are_reduced_as_the_stream_passes_them() {
    // One hashing window is 1 GiB of leaves: data across a window boundary,
    // a window skipped entirely, and a partial last window. Only merkle has
    // windows (the linear digests would just hash 3 GiB of zeros many times).
    check(
        "window crossing",
        &Layout {
            size: 3 * GIB + 5,
            data: vec![
                (GIB - 3 * MIB, pseudo_random(5 * MIB as usize, 6)),
                (3 * GIB, pseudo_random(5, 7)),
            ],
        },
        &[Algorithm::MerkleSha256V1],
    );
}

#[test]
fn shared_sparse_vectors_stream_to_their_recorded_digests() {
    for (v, expected) in vectors_with_digests() {
        let layout = Layout {
            size: v.size,
            data: v.extents,
        };
        for (algorithm, want) in &expected {
            let name = &v.name;
            assert_eq!(
                &layout.streamed(*algorithm, 4096),
                want,
                "{name} {algorithm}"
            );
            assert_eq!(
                &layout.threaded(*algorithm, 8192),
                want,
                "{name} {algorithm} threaded"
            );
        }
    }
}

#[test]
fn out_of_order_or_oversized_input_is_an_error_not_a_wrong_digest() {
    let mut digest = StreamDigest::new(Algorithm::MerkleSha256V1, 10 * L);
    digest.update_at(2 * L, &[1; 100]).unwrap();
    assert!(matches!(
        digest.update_at(L, &[1; 10]),
        Err(Error::Internal(_))
    ));
    assert!(matches!(
        digest.update_at(10 * L - 5, &[1; 10]),
        Err(Error::Internal(_))
    ));
    assert!(matches!(
        digest.update_at(u64::MAX, &[1; 10]),
        Err(Error::Internal(_))
    ));

    // The thread reports the same error, from feed or from finish.
    let mut thread = DigestThread::spawn(Algorithm::Sha256, 100, 64).unwrap();
    thread.feed(50, thread.buffer(), 10).unwrap();
    let early = thread.feed(0, thread.buffer(), 10);
    let result = early.and_then(|()| thread.finish().map(drop));
    assert!(matches!(result, Err(Error::Internal(_))), "{result:?}");
}

#[test]
fn dropping_an_unfinished_digest_thread_does_not_hash_the_rest_of_the_file() {
    // A failed or cancelled import drops its DigestThread. Finishing a
    // linear digest of a 1 PiB file would hash zeros for days, so the drop
    // must stop the thread without finishing; the bound below only tells a
    // stop from that.
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for algorithm in Algorithm::ALL {
            let mut thread = DigestThread::spawn(algorithm, 1 << 50, 4096).unwrap();
            let buffer = thread.buffer();
            thread.feed(0, buffer, 100).unwrap();
            drop(thread);
        }
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("drop waited for the digest of the whole file");
}

//! copy_sparse keeps holes and content, refuses to overwrite, and cleans up
//! on cancel; SparseWriter turns zero blocks into holes.
use crate::support::pseudo_random;
use microsnap::error::Error;
use microsnap::progress::{CancelToken, Monitor};
use microsnap::sparse::{allocated_bytes, copy_sparse, data_extents, Extent, SparseWriter};
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

const MIB: u64 = 1 << 20;

/// 256 MiB logical, ~7 MiB of data in four extents (one unaligned, one at EOF).
fn make_sparse_source(path: &Path) -> u64 {
    let size = 256 * MIB;
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    f.write_all_at(&pseudo_random(4 * MIB as usize, 1), 0)
        .unwrap();
    f.write_all_at(&pseudo_random(3000, 2), 100 * MIB + 5)
        .unwrap();
    f.write_all_at(&pseudo_random(3 * MIB as usize, 3), 150 * MIB)
        .unwrap();
    f.write_all_at(&[0xEE; 100], size - 100).unwrap();
    f.sync_all().unwrap();
    size
}

fn extent_bytes(path: &Path) -> u64 {
    data_extents(&File::open(path).unwrap())
        .unwrap()
        .iter()
        .map(|e| e.len)
        .sum()
}

#[test]
fn data_extents_find_the_written_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let f = File::create(&path).unwrap();
    f.set_len(64 * MIB).unwrap();
    f.write_all_at(&[1; 4096], 8 * MIB).unwrap();
    f.write_all_at(&[1; 4096], 8 * MIB + 4096).unwrap(); // adjacent: merged
    f.write_all_at(&[2; 10], 32 * MIB + 1).unwrap();
    let extents = data_extents(&f).unwrap();
    // Filesystems may allocate a little more than written, never less.
    assert_eq!(extents.len(), 2, "{extents:?}");
    assert!(extents[0].offset <= 8 * MIB && extents[0].end() >= 8 * MIB + 8192);
    assert!(extents[1].offset <= 32 * MIB + 1 && extents[1].end() >= 32 * MIB + 11);
    assert!(
        extents.iter().map(|e| e.len).sum::<u64>() < 4 * MIB,
        "{extents:?}"
    );
    // Clipped to st_size even when the last block is allocated past it.
    f.set_len(32 * MIB + 5).unwrap();
    let extents = data_extents(&f).unwrap();
    assert_eq!(extents.last().unwrap().end(), 32 * MIB + 5);
    // Empty and all-hole files have no extents; a dense file has one.
    f.set_len(0).unwrap();
    assert_eq!(data_extents(&f).unwrap(), vec![]);
    f.set_len(MIB).unwrap();
    assert_eq!(data_extents(&f).unwrap(), vec![]);
    fs::write(&path, vec![7u8; 12345]).unwrap();
    let f = File::open(&path).unwrap();
    assert_eq!(
        data_extents(&f).unwrap(),
        vec![Extent {
            offset: 0,
            len: 12345
        }]
    );
}

#[test]
fn copy_keeps_holes_and_content() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    let size = make_sparse_source(&src);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let monitor = Monitor::new(
        None,
        Some(Box::new(move |phase: &str, done, total| {
            sink.lock().unwrap().push((phase.to_string(), done, total));
            true
        })),
    );
    let copied = copy_sparse(&src, &dst, &monitor).unwrap();
    assert_eq!(copied, extent_bytes(&src));
    assert!(copied < 16 * MIB, "copied {copied}");
    assert_eq!(fs::metadata(&dst).unwrap().len(), size);
    let (src_alloc, dst_alloc) = (
        allocated_bytes(&src).unwrap(),
        allocated_bytes(&dst).unwrap(),
    );
    assert!(
        dst_alloc <= src_alloc + 256 * 1024,
        "copy allocates {dst_alloc}, source {src_alloc}"
    );
    assert!(
        fs::read(&src).unwrap() == fs::read(&dst).unwrap(),
        "content differs"
    );
    let seen = seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last, &("copy".to_string(), copied, copied));
}

#[test]
fn copy_of_dense_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("dense", pseudo_random((3 * MIB + 7) as usize, 4)),
        ("empty", Vec::new()),
    ] {
        let src = dir.path().join(name);
        let dst = dir.path().join(format!("{name}.copy"));
        fs::write(&src, &content).unwrap();
        let copied = copy_sparse(&src, &dst, &Monitor::none()).unwrap();
        assert_eq!(copied, content.len() as u64);
        assert!(fs::read(&dst).unwrap() == content, "{name} differs");
    }
}

#[test]
fn copy_refuses_an_existing_destination() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    fs::write(&src, b"new").unwrap();
    fs::write(&dst, b"keep me").unwrap();
    let err = copy_sparse(&src, &dst, &Monitor::none()).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert!(
        err.to_string().contains(&dst.display().to_string()),
        "{err}"
    );
    assert_eq!(fs::read(&dst).unwrap(), b"keep me");
}

#[test]
fn copy_errors_name_the_source_and_leave_no_destination() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("no-such-source");
    let dst = dir.path().join("dst");
    let err = copy_sparse(&src, &dst, &Monitor::none()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-source"), "{err}");
    assert!(!dst.exists());
    let err = copy_sparse(dir.path(), &dst, &Monitor::none()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(!dst.exists());
}

#[test]
fn cancel_mid_copy_removes_the_partial_destination() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    make_sparse_source(&src);
    // Stop after the first chunk has been copied.
    let calls = Arc::new(Mutex::new(0u32));
    let counter = calls.clone();
    let monitor = Monitor::new(
        None,
        Some(Box::new(move |_: &str, done, _| {
            *counter.lock().unwrap() += 1;
            done == 0
        })),
    );
    let err = copy_sparse(&src, &dst, &monitor).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(
        *calls.lock().unwrap() >= 2,
        "cancel came before any data moved"
    );
    assert!(!dst.exists(), "partial copy left behind");

    // Cancelled before starting: nothing is created either.
    let token = CancelToken::new();
    token.cancel();
    let err = copy_sparse(&src, &dst, &Monitor::with_cancel(token)).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err:?}");
    assert!(!dst.exists());
}

#[test]
fn sparse_writer_turns_zero_blocks_into_holes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restored");
    let size = 32 * MIB + 1234;
    // Mostly zeros, with non-zero runs at aligned and unaligned places.
    let mut content = vec![0u8; size as usize];
    let islands: [(u64, usize); 5] = [
        (0, 10),
        (4095, 2),                // straddles a block boundary
        (3 * MIB, 64 * 1024),     // aligned run
        (17 * MIB + 333, 70_000), // unaligned run
        (size - 5, 5),            // in the partial last block
    ];
    for (i, (offset, len)) in islands.iter().enumerate() {
        content[*offset as usize..][..*len].copy_from_slice(&pseudo_random(*len, i as u64 + 20));
    }
    let mut writer = SparseWriter::new(File::create(&path).unwrap());
    // Feed it in odd-sized, unaligned pieces, as a tar stream would.
    let mut at = 0usize;
    let mut piece = 1000usize;
    while at < content.len() {
        let n = piece.min(content.len() - at);
        writer.write_at(at as u64, &content[at..at + n]).unwrap();
        at += n;
        piece = (piece * 7 + 4097) % 300_000 + 1;
    }
    let file = writer.finish(size).unwrap();
    assert_eq!(file.metadata().unwrap().len(), size);
    assert!(
        fs::read(&path).unwrap() == content,
        "restored content differs"
    );
    let nonzero: u64 = islands.iter().map(|(_, len)| *len as u64).sum();
    let allocated = allocated_bytes(&path).unwrap();
    assert!(
        allocated <= nonzero + 4096 * 2 * islands.len() as u64,
        "allocated {allocated} for {nonzero} non-zero bytes"
    );
}

#[test]
fn sparse_writer_trailing_length_is_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut writer = SparseWriter::with_path(File::create(&path).unwrap(), &path);
    writer.write_at(0, &[0u8; 1 << 20]).unwrap();
    writer.write_at(5, b"abc").unwrap();
    let file = writer.finish(100 * MIB).unwrap();
    assert_eq!(file.metadata().unwrap().len(), 100 * MIB);
    assert!(allocated_bytes(&path).unwrap() <= 8192);
    drop(file);
    let mut head = [0u8; 9];
    File::open(&path)
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    assert_eq!(&head, b"\0\0\0\0\0abc\0");
}

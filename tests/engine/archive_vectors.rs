//! The real microsandbox v0.6.3 exports and the v0.6.3 hostile corpus
//! (`tests/vectors/msb-0.6.3`).
use crate::support::archive as archive_support;
use archive_support::*;
use microsnap::archive;
use microsnap::error::ErrorCode;
use microsnap::progress::Monitor;
use sha2::{Digest, Sha256};
use std::fs;

fn tsv(rel: &str) -> Vec<Vec<String>> {
    fs::read_to_string(vectors(rel))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn v063_exports_import_with_the_expected_heads() {
    let rows = tsv("archives/heads.tsv");
    assert_eq!(rows.len(), 4);
    for row in rows {
        let (file, head, dir_name, order) = (&row[0], &row[1], &row[2], &row[3]);
        // The plain tars are stored as their .tar.zst: what the test imports
        // must be the very file microsandbox wrote.
        let archive_path = vectors(&format!("archives/{file}"));
        let bytes = fs::read(&archive_path).unwrap();
        assert_eq!(
            format!("sha256:{:x}", Sha256::digest(&bytes)),
            row[4],
            "{file}: not the bytes microsandbox exported"
        );
        let (_t, home) = new_home();
        let report = archive::import(&home, &archive_path, None, &Monitor::none())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(&report.head.digest, head, "{file}");
        assert_eq!(
            report.head.path,
            home.snapshots_dir().join(dir_name),
            "{file}"
        );
        let got: Vec<&str> = report.imported.iter().map(|a| a.digest.as_str()).collect();
        let want: Vec<&str> = order.split(',').collect();
        assert_eq!(got, want, "{file}");
        // Every imported upper is sparse: v0.6.3 stores them dense (zeros).
        for art in &report.imported {
            let upper = art.path.join(&art.upper_spec().unwrap().file);
            assert!(
                allocated(&upper) < art.upper_spec().unwrap().size_bytes / 4,
                "{file}: {} not sparse",
                upper.display()
            );
        }
        let indexed: Vec<String> = index_rows(&home).into_iter().map(|(_, d)| d).collect();
        for d in want {
            assert!(indexed.iter().any(|x| x == d), "{file}: {d} not indexed");
        }
    }
}

#[test]
fn reimport_of_the_same_archive_is_idempotent() {
    let (_t, home) = new_home();
    let archive_path = vectors("archives/chain-with-parents.tar.zst");
    let first = archive::import(&home, &archive_path, None, &Monitor::none()).unwrap();
    let before = tree(&home.snapshots_dir());
    let second = archive::import(&home, &archive_path, None, &Monitor::none()).unwrap();
    assert_eq!(first.head.digest, second.head.digest);
    assert_eq!(tree(&home.snapshots_dir()), before);
}

/// The positive control microsandbox v0.6.3 and v0.6.14 accept and microsnap
/// refuses on purpose (README, "Compatibility"): a tar without its
/// end-of-archive marker cannot be told from one cut short at an entry
/// boundary.
const A17: &str = "a17-ACCEPT-dir-entry-upper-first-no-eof-marker.tar";
const NO_END_MARKER: &str = "ends without its end-of-archive marker: truncated?";

/// The head digest `hostile.tsv` gives for a positive control.
fn expected_head(expected: &str) -> String {
    let head = expected.split("sha256:").nth(1).map(|h| &h[..64]).unwrap();
    format!("sha256:{head}")
}

#[test]
fn shared_hostile_corpus_is_refused_and_controls_import() {
    for row in tsv("hostile/hostile.tsv") {
        let (file, expected) = (&row[0], &row[1]);
        let (t, home) = new_home();
        let dest = t.path().join("dest");
        fs::create_dir_all(&dest).unwrap();
        let path = vectors(&format!("hostile/{file}"));
        let result = archive::import(&home, &path, Some(&dest), &Monitor::none());
        if file == A17 {
            let err = result.expect_err(file);
            assert_eq!(err.code(), ErrorCode::InvalidArchive, "{file}: {err}");
            assert!(err.to_string().contains(NO_END_MARKER), "{file}: {err}");
            assert_eq!(
                tree(&dest),
                Vec::<String>::new(),
                "{file} left files behind"
            );
            assert!(index_rows(&home).is_empty(), "{file} touched the index");
        } else if file.starts_with('a') {
            let report = result.unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(report.head.digest, expected_head(expected), "{file}");
        } else {
            let err = result.expect_err(file);
            assert!(
                matches!(
                    err.code(),
                    ErrorCode::InvalidArchive | ErrorCode::IntegrityMismatch
                ),
                "{file}: {:?} {err}",
                err.code()
            );
            assert_eq!(
                tree(&dest),
                Vec::<String>::new(),
                "{file} left files behind"
            );
            assert!(index_rows(&home).is_empty(), "{file} touched the index");
        }
    }
}

/// What a17 controls besides the missing marker (a one-component directory
/// entry, the upper before its manifest) still imports as microsandbox
/// imports it once the marker is there.
#[test]
fn a17_with_its_end_marker_imports_the_head_microsandbox_reports() {
    let row = tsv("hostile/hostile.tsv")
        .into_iter()
        .find(|r| r[0] == A17)
        .expect("a17 in hostile.tsv");
    let mut bytes = fs::read(vectors(&format!("hostile/{A17}"))).unwrap();
    assert!(
        bytes[bytes.len() - 512..].iter().any(|&b| b != 0),
        "a17 has no end marker"
    );
    bytes.extend_from_slice(&[0u8; 1024]);
    let (t, home) = new_home();
    let path = t.path().join("a17-with-marker.tar");
    fs::write(&path, &bytes).unwrap();
    let report = archive::import(&home, &path, None, &Monitor::none()).unwrap();
    assert_eq!(report.head.digest, expected_head(&row[1]));
}

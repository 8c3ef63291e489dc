//! The v0.6.14 descriptor vectors (tests/vectors/msb-0.6.14/descriptors and
//! invalid, made by microsandbox v0.6.14's own parser and serializer): every
//! valid one parses to its recorded identity and re-serializes to its bytes,
//! every non-canonical one to its recorded canonical form, every invalid one
//! is refused with microsandbox's message.
use std::fs;
use std::path::{Path, PathBuf};

use super::{Integrity, SnapshotDescriptor, State, DESCRIPTOR_FILE};
use crate::error::Error;
use crate::manifest::sha256_digest;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/msb-0.6.14");

fn dir(rel: &str) -> PathBuf {
    Path::new(VECTORS).join(rel)
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of a vectors TSV file, header skipped, split on tabs.
pub(super) fn tsv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = String::from_utf8(read(path)).unwrap();
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip(1)
        .filter(|line| !line.is_empty())
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect();
    assert!(!rows.is_empty(), "{}: no rows", path.display());
    rows
}

/// The `*.json` files of a directory (not its subdirectories), sorted.
fn json_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

fn message(err: Error) -> String {
    match err {
        Error::InvalidManifest(msg) => msg,
        other => panic!("expected InvalidManifest, got {other:?}"),
    }
}

#[test]
fn every_descriptor_vector_parses_to_its_identity_and_bytes() {
    let rows = tsv_rows(&dir("descriptors/digests.tsv"));
    let listed: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        listed,
        json_files(&dir("descriptors")),
        "digests.tsv vs files"
    );
    for row in &rows {
        let (file, digest, same_as_file, requires) = (&row[0], &row[1], &row[2], &row[3]);
        let bytes = read(&dir("descriptors").join(file));
        let d = SnapshotDescriptor::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(&d.digest(), digest, "{file}: identity");
        assert_eq!(same_as_file, "yes", "{file}");
        assert_eq!(&sha256_digest(&bytes), digest, "{file}: sha256 of the file");
        assert_eq!(
            String::from_utf8(d.canonical_bytes()).unwrap(),
            String::from_utf8(bytes.clone()).unwrap(),
            "{file}: re-serialization"
        );
        let expected_requires = requires
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap();
        let expected_requires: Vec<&str> = expected_requires
            .split(',')
            .filter(|k| !k.is_empty())
            .collect();
        assert_eq!(d.unsupported_requires(), expected_requires, "{file}");
        // Parsing the canonical bytes again is a fixed point.
        assert_eq!(SnapshotDescriptor::parse(&d.canonical_bytes()).unwrap(), d);
    }
}

#[test]
fn what_the_descriptor_vectors_hold() {
    let parse =
        |name: &str| SnapshotDescriptor::parse(&read(&dir("descriptors").join(name))).unwrap();
    let d = parse("02-create-shape-blake3.json");
    let upper = d.file_upper().unwrap();
    assert_eq!(upper.file, "upper.ext4");
    assert!(matches!(
        &upper.integrity,
        Some(Integrity::MerkleBlake3 {
            logical_size: 4294967296,
            leaf_size: 65536,
            ..
        })
    ));
    assert_eq!(
        upper.integrity.as_ref().unwrap().algorithm(),
        "msb-file-merkle-blake3-v1"
    );
    let d = parse("08-checkpoint-resumable.json");
    assert!(d.file_upper().is_none());
    assert!(matches!(d.state, State::Checkpoint { .. }));
    assert_eq!(
        parse("22-created-at-leap-second.json").created_at,
        "2016-12-31T23:59:60Z"
    );
    assert_eq!(
        parse("20-quirk-upper-file-trailing-slash.json")
            .file_upper()
            .unwrap()
            .file,
        "upper.ext4/"
    );
}

#[test]
fn every_noncanonical_vector_parses_to_its_canonical_form() {
    let base = dir("descriptors/noncanonical");
    let rows = tsv_rows(&base.join("noncanonical.tsv"));
    let inputs: Vec<String> = json_files(&base)
        .into_iter()
        .filter(|n| !n.ends_with(".canonical.json"))
        .collect();
    let listed: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(listed, inputs, "noncanonical.tsv vs files");
    for row in &rows {
        let (file, digest, input_sha, canonical, fixed_point, created_at) =
            (&row[0], &row[1], &row[2], &row[3], &row[4], &row[5]);
        let bytes = read(&base.join(file));
        assert_eq!(&sha256_digest(&bytes), input_sha, "{file}: input file");
        let d = SnapshotDescriptor::parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(&d.created_at, created_at, "{file}: created_at");
        assert_eq!(
            String::from_utf8(d.canonical_bytes()).unwrap(),
            String::from_utf8(read(&base.join(canonical))).unwrap(),
            "{file}: canonical form"
        );
        assert_eq!(&d.digest(), digest, "{file}: identity");
        let reparsed = SnapshotDescriptor::parse(&d.canonical_bytes())
            .unwrap()
            .digest();
        if fixed_point == "yes" {
            assert_eq!(&reparsed, digest, "{file}: fixed point");
        } else {
            // nc14: serde_json's float parsing moves these numbers once more;
            // we match microsandbox, including this.
            let recorded = fixed_point
                .strip_prefix("NO: re-parsing it gives ")
                .unwrap_or_else(|| panic!("{file}: {fixed_point}"));
            assert_eq!(reparsed, recorded, "{file}: re-parsed identity");
        }
    }
}

#[test]
fn every_invalid_vector_is_refused_with_microsandbox_message() {
    const PREFIX: &str = "manifest parse error: ";
    let rows = tsv_rows(&dir("invalid/invalid.tsv"));
    let listed: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(listed, json_files(&dir("invalid")), "invalid.tsv vs files");
    for row in &rows {
        let (file, expected) = (&row[0], &row[2]);
        let expected = expected.strip_prefix(PREFIX).unwrap();
        let err = SnapshotDescriptor::parse(&read(&dir("invalid").join(file))).expect_err(file);
        assert_eq!(message(err), expected, "{file}");
    }
}

#[test]
fn write_to_then_read_file_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    for name in [
        "02-create-shape-blake3.json",
        "10-extensions-nested.json",
        "08-checkpoint-resumable.json",
    ] {
        let d = SnapshotDescriptor::parse(&read(&dir("descriptors").join(name))).unwrap();
        d.write_to(tmp.path()).unwrap();
        let path = tmp.path().join(DESCRIPTOR_FILE);
        let file = fs::File::open(&path).unwrap();
        let (back, digest, bytes) = SnapshotDescriptor::read_file(&file, &path).unwrap();
        assert_eq!(back, d, "{name}");
        assert_eq!(digest, d.digest(), "{name}");
        assert_eq!(bytes, d.canonical_bytes(), "{name}");
        assert!(!tmp.path().join("snapshot.json.tmp").exists());
    }
}

#[test]
fn write_to_normalizes_and_refuses_an_invalid_value() {
    let tmp = tempfile::tempdir().unwrap();
    let mut d =
        SnapshotDescriptor::parse(&read(&dir("descriptors/01-minimal-file-nulls.json"))).unwrap();
    d.created_at = "2026-05-01T13:00:00.500+01:00".into();
    d.write_to(tmp.path()).unwrap();
    let written = read(&tmp.path().join(DESCRIPTOR_FILE));
    let back = SnapshotDescriptor::parse(&written).unwrap();
    assert_eq!(back.created_at, "2026-05-01T12:00:00.5Z");
    assert_eq!(back.digest(), d.digest());
    assert_eq!(sha256_digest(&written), d.digest());

    d.created_at = "yesterday".into();
    let err = message(d.write_to(tmp.path()).unwrap_err());
    assert_eq!(
        err,
        "snapshot descriptor: created_at is not RFC 3339: premature end of input"
    );
    // The earlier, valid file is still there untouched.
    assert_eq!(read(&tmp.path().join(DESCRIPTOR_FILE)), written);
}

#[test]
fn read_file_names_the_path_in_errors() {
    let path = dir("invalid/i01-schema-2.json");
    let file = fs::File::open(&path).unwrap();
    let err = message(SnapshotDescriptor::read_file(&file, &path).unwrap_err());
    assert_eq!(
        err,
        format!(
            "{}: snapshot descriptor: unsupported schema version 2 (expected 1)",
            path.display()
        )
    );
}

//! Digest helpers and DiskFormat spellings, checked against the v0.6.3
//! vectors where they pin a value (how the vectors' `created_at` values read
//! as instants is a unit test in src/manifest.rs: timestamps are internal).
use std::fs;
use std::path::Path;

use microsnap::error::ErrorCode;
use microsnap::manifest::{digest_prefix, is_digest_form, DiskFormat, Manifest};

use crate::support::vector_sets;
use vector_sets::MSB_V063 as VECTORS;

fn vector_manifest(name: &str) -> Manifest {
    let path = Path::new(VECTORS).join("manifests").join(name);
    Manifest::parse(&fs::read(&path).unwrap()).unwrap()
}

#[test]
fn digest_prefix_matches_real_export_directory_names() {
    let heads = fs::read_to_string(Path::new(VECTORS).join("archives/heads.tsv")).unwrap();
    let mut checked = 0;
    for line in heads.lines().skip(1).filter(|l| !l.is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(digest_prefix(cols[1]), cols[2], "{line}");
        checked += 1;
    }
    assert!(checked >= 2);
}

#[test]
fn digest_prefix_other_forms() {
    // SPEC-NOTES §8 example.
    let sha512 = format!("sha512:{}", "0123456789abcdef".repeat(8));
    assert_eq!(digest_prefix(&sha512), "sha512-0123456789abc");
    assert_eq!(digest_prefix("sha256:abc"), "sha256-abc");
    assert_eq!(digest_prefix("sha256:"), "sha256-");
    assert_eq!(digest_prefix("x:y:z"), "x-y-z");
    // Cut by characters, so multi-byte text never splits mid-character.
    let wide = format!("é:{}", "é".repeat(21));
    assert_eq!(digest_prefix(&wide), format!("é-{}", "é".repeat(18)));
    assert_eq!(
        digest_prefix("sha256:ééééééééééééééééé").chars().count(),
        7 + 16
    );
}

#[test]
fn digest_form_is_nonempty_colon_nonempty() {
    for ok in ["sha256:abc", "x:y", "md5:not-hex!", "a:b:c", "a::"] {
        assert!(is_digest_form(ok), "{ok}");
    }
    for bad in ["", ":", "sha256:", ":abc", "deadbeef"] {
        assert!(!is_digest_form(bad), "{bad}");
    }
}

#[test]
fn digest_is_sha256_of_the_canonical_bytes() {
    let m = vector_manifest("01-minimal-nulls.json");
    let digest = m.digest();
    assert_eq!(
        digest,
        "sha256:c3d295c5adf0b3438aa089666057a2444b889c244902ff1983a03f2d6835a359"
    );
    // Changing any member changes the identity.
    let mut other = m.clone();
    other.created_at = "2026-05-01T12:00:00+00:00".into();
    assert_eq!(
        other.digest(),
        "sha256:b7d3731dc05d2d9746a56ddabfe9f2718d2aa056fdc453eb08ccc1a11f014977"
    );
}

#[test]
fn disk_format_spellings() {
    for (format, name) in [(DiskFormat::Raw, "raw"), (DiskFormat::Qcow2, "qcow2")] {
        assert_eq!(format.as_str(), name);
        assert_eq!(format.to_string(), name);
        assert_eq!(name.parse::<DiskFormat>().unwrap(), format);
        assert_eq!(
            serde_json::to_string(&format).unwrap(),
            format!("\"{name}\"")
        );
    }
    for bad in ["RAW", "Qcow2", "", "qcow"] {
        let err = bad.parse::<DiskFormat>().unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidArgument);
    }
    assert_eq!(
        vector_manifest("17-qcow2-format.json").format,
        DiskFormat::Qcow2
    );
}

//! Digest helpers, DiskFormat spellings and `created_at` handling, checked
//! against the v0.6.3 vectors where they pin a value.
use std::fs;
use std::path::Path;

use microsnap::error::ErrorCode;
use microsnap::manifest::{digest_prefix, is_digest_form, DiskFormat, Manifest};
use microsnap::timefmt::{format_rfc3339, parse_rfc3339};

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

#[test]
fn created_at_of_the_vectors() {
    let noon = 1_777_636_800_i64 * 1_000_000_000;
    for (file, nanos) in [
        ("01-minimal-nulls.json", Some(noon)),
        ("10-created-at-plus00-whole-second.json", Some(noon)),
        // 17:30:00.123 at +05:30 is 12:00:00.123 UTC.
        ("11-created-at-offset-millis.json", Some(noon + 123_000_000)),
        // 23:59:59.999999 at -07:00 on Apr 30 is 06:59:59.999999 UTC on May 1.
        (
            "12-created-at-negative-offset-micros.json",
            Some(noon - 5 * 3600 * 1_000_000_000 - 1_000),
        ),
        ("13-created-at-nanos-plus00.json", Some(noon + 1)),
        // Not RFC 3339: parses as a manifest, but has no instant.
        ("14-created-at-not-rfc3339.json", None),
    ] {
        let m = vector_manifest(file);
        assert_eq!(
            parse_rfc3339(&m.created_at),
            nanos,
            "{file}: {}",
            m.created_at
        );
    }
}

#[test]
fn create_style_created_at_round_trips() {
    // Vectors 10 and 13 hold exactly what chrono's to_rfc3339 writes.
    for file in [
        "10-created-at-plus00-whole-second.json",
        "13-created-at-nanos-plus00.json",
        "02-create-path-shape.json",
    ] {
        let created_at = vector_manifest(file).created_at;
        let nanos = parse_rfc3339(&created_at).unwrap();
        let (secs, sub) = (
            nanos.div_euclid(1_000_000_000),
            nanos.rem_euclid(1_000_000_000),
        );
        assert_eq!(format_rfc3339(secs, sub as u32), created_at, "{file}");
    }
}

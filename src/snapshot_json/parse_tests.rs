//! Parser cases the vectors do not spell out: one member changed at a time in
//! descriptor 01, each refused (or accepted) the way v0.6.14's types and
//! checks decide.
use super::{Integrity, SnapshotDescriptor};
use crate::error::Error;

const MINIMAL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/msb-0.6.14/descriptors/01-minimal-file-nulls.json"
));

/// Descriptor 01 with `from` replaced by `to` (exactly once).
fn edited(from: &str, to: &str) -> String {
    assert_eq!(MINIMAL.matches(from).count(), 1, "{from}");
    MINIMAL.replacen(from, to, 1)
}

fn refused(json: &str) -> String {
    match SnapshotDescriptor::parse(json.as_bytes()) {
        Err(Error::InvalidManifest(msg)) => msg,
        other => panic!("expected InvalidManifest for {json}: {other:?}"),
    }
}

#[test]
fn nullable_members_must_be_present() {
    let msg = refused(&edited(r#""source_sandbox":null,"#, ""));
    assert!(
        msg.starts_with("snapshot descriptor: parse failed: missing field `source_sandbox`"),
        "{msg}"
    );
    let msg = refused(&edited(r#","parent":null"#, ""));
    assert!(msg.contains("missing field `parent`"), "{msg}");
    // Present and null, or present and a string: both fine.
    let d = SnapshotDescriptor::parse(
        edited(r#""source_sandbox":null"#, r#""source_sandbox":"sb""#).as_bytes(),
    )
    .unwrap();
    assert_eq!(d.source_sandbox.as_deref(), Some("sb"));
}

#[test]
fn integer_members_refuse_floats_negatives_and_out_of_range() {
    for (from, to, phrase) in [
        (
            r#""schema":1"#,
            r#""schema":1.0"#,
            "invalid type: floating point `1.0`, expected u32",
        ),
        (r#""schema":1"#, r#""schema":4294967297"#, "expected u32"),
        (
            r#""schema":1"#,
            r#""schema":"1""#,
            "invalid type: string \"1\"",
        ),
        (
            r#""size_bytes":4294967296"#,
            r#""size_bytes":4294967296.0"#,
            "invalid type: floating point",
        ),
        (
            r#""size_bytes":4294967296"#,
            r#""size_bytes":-1"#,
            "invalid value: integer `-1`",
        ),
        (
            r#""size_bytes":4294967296"#,
            r#""size_bytes":18446744073709551616"#,
            "invalid type: floating point",
        ),
    ] {
        let msg = refused(&edited(from, to));
        assert!(msg.contains(phrase), "{to}: {msg}");
    }
}

#[test]
fn leaf_size_is_a_u32_as_in_v0614() {
    let blake3 = |leaf: &str| {
        edited(
            r#""integrity":null"#,
            &format!(
                r#""integrity":{{"algorithm":"msb-file-merkle-blake3-v1","root":"blake3:{}","logical_size":4294967296,"leaf_size":{leaf}}}"#,
                "a".repeat(64)
            ),
        )
    };
    let d = SnapshotDescriptor::parse(blake3("65536").as_bytes()).unwrap();
    assert!(matches!(
        d.file_upper().unwrap().integrity,
        Some(Integrity::MerkleBlake3 {
            leaf_size: 65536,
            ..
        })
    ));
    let msg = refused(&blake3("4294967296"));
    assert!(
        msg.contains("invalid value: integer `4294967296`, expected u32"),
        "{msg}"
    );
    let msg = refused(&blake3("4096"));
    assert_eq!(
        msg,
        "snapshot descriptor: state.upper.integrity.leaf_size must be 65536: 4096"
    );
}

#[test]
fn created_at_is_checked_before_the_other_rules() {
    // v0.6.14 normalizes created_at before validating: with two faults, the
    // timestamp is the one reported.
    let json =
        edited(r#""schema":1"#, r#""schema":2"#).replace("2026-05-01T12:00:00Z", "yesterday");
    assert_eq!(
        refused(&json),
        "snapshot descriptor: created_at is not RFC 3339: premature end of input"
    );
    // Then the order of §1.
    let json = edited(r#""schema":1"#, r#""schema":2"#)
        .replace(r#""artifact":"snapshot""#, r#""artifact":"x""#);
    assert_eq!(
        refused(&json),
        "snapshot descriptor: unsupported schema version 2 (expected 1)"
    );
}

#[test]
fn digests_are_strict() {
    let hex = "9eb908302b2f0669713ef2246088951e9478d232331951dfebb427fba5610b18";
    for (parent, ok) in [
        (format!("sha256:{hex}"), true),
        (format!("sha256:{}", &hex[1..]), false),
        (format!("sha256:{hex}0"), false),
        (format!("sha256:{}", hex.replace('e', "E")), false),
        (format!("SHA256:{hex}"), false),
        (format!("sha256:{}", hex.replace('e', "g")), false),
    ] {
        let json = edited(r#""parent":null"#, &format!(r#""parent":"{parent}""#));
        assert_eq!(
            SnapshotDescriptor::parse(json.as_bytes()).is_ok(),
            ok,
            "{parent}"
        );
    }
}

#[test]
fn upper_file_rules() {
    for (file, expected) in [
        ("upper.ext4/.", None),
        (".hidden", None),
        (
            "",
            Some("state.upper.file must be one relative normal filename: "),
        ),
        (
            ".",
            Some("state.upper.file must be one relative normal filename: ."),
        ),
        (
            "..",
            Some("state.upper.file must be one relative normal filename: .."),
        ),
        (
            ".snapshot-migration.lock",
            Some("state.upper.file uses reserved filename: .snapshot-migration.lock"),
        ),
    ] {
        let json = edited(r#""file":"upper.ext4""#, &format!(r#""file":"{file}""#));
        match expected {
            None => assert!(SnapshotDescriptor::parse(json.as_bytes()).is_ok(), "{file}"),
            Some(msg) => assert_eq!(
                refused(&json),
                format!("snapshot descriptor: {msg}"),
                "{file}"
            ),
        }
    }
}

#[test]
fn canonical_bytes_normalize_a_value_built_in_code() {
    let mut d = SnapshotDescriptor::parse(MINIMAL.as_bytes()).unwrap();
    let canonical_digest = d.digest();
    d.created_at = "2026-05-01T14:00:00.000+02:00".into();
    assert_eq!(d.digest(), canonical_digest);
    assert_eq!(d.canonical_bytes(), MINIMAL.as_bytes());
    d.extensions.insert(
        "x/1".into(),
        serde_json::json!({"b": 1, "a": {"d": 2, "c": 3}}),
    );
    let text = String::from_utf8(d.canonical_bytes()).unwrap();
    assert!(
        text.contains(r#""extensions":{"x/1":{"a":{"c":3,"d":2},"b":1}}"#),
        "{text}"
    );
}

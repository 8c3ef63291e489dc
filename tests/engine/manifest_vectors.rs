//! manifest.json against the microsandbox v0.6.3 vectors: every canonical
//! vector parses to its recorded digest and re-serializes byte for byte; every
//! invalid vector is refused with a message naming what is wrong.
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use microsnap::error::{Error, ErrorCode};
use microsnap::manifest::{Manifest, MANIFEST_FILE};

use crate::support::vector_sets;

fn vectors_dir() -> PathBuf {
    vector_sets::v063("manifests")
}

/// Rows of a TSV file with a header line, split on tabs.
fn tsv_rows(path: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn invalid_message(err: Error) -> String {
    assert_eq!(err.code(), ErrorCode::InvalidManifest, "{err}");
    match err {
        Error::InvalidManifest(msg) => msg,
        other => panic!("expected InvalidManifest, got {other:?}"),
    }
}

#[test]
fn canonical_vectors_parse_to_their_digest_and_bytes() {
    let dir = vectors_dir();
    let digests: BTreeMap<String, String> = tsv_rows(&dir.join("digests.tsv"))
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
    let files = json_files(&dir);
    assert_eq!(files.len(), 20, "expected the 20 canonical vectors");
    assert_eq!(
        digests.len(),
        files.len(),
        "digests.tsv covers every vector"
    );
    for path in files {
        let name = file_name(&path);
        let bytes = fs::read(&path).unwrap();
        let manifest = Manifest::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(manifest.canonical_bytes(), bytes, "{name}: canonical bytes");
        assert_eq!(
            Some(&manifest.digest()),
            digests.get(&name),
            "{name}: digest"
        );
    }
}

/// For the invalid vectors whose reason is a semantic check or a named
/// member, the field our message must mention.
fn expected_field(file: &str) -> &'static str {
    match file {
        "i01-unknown-top-level-field.json" => "extra",
        "i02-missing-source-sandbox.json" => "source_sandbox",
        "i03-missing-parent.json" => "parent",
        "i04-schema-2.json" => "schema",
        "i05-bad-digest-no-colon.json" | "i06-bad-digest-empty-hex.json" => "image.manifest_digest",
        "i07-upper-file-slash.json"
        | "i08-upper-file-dotdot.json"
        | "i09-upper-file-absolute.json"
        | "i10-upper-file-dot-prefix.json"
        | "i11-upper-file-empty.json" => "upper.file",
        "i12-empty-fstype.json" => "fstype",
        "i13-empty-image-ref.json" => "image.ref",
        "i14-format-uppercase.json" => "format",
        "i15-missing-integrity.json" => "integrity",
        "i16-legacy-upper-sha256.json" => "sha256",
        "i17-empty-integrity-algorithm.json" => "upper.integrity.algorithm",
        "i18-size-float.json" | "i19-size-negative.json" | "i20-size-overflow.json" => {
            "upper.size_bytes"
        }
        other => panic!("no expectation for new invalid vector {other}; add one"),
    }
}

#[test]
fn invalid_vectors_are_refused_naming_the_field() {
    let dir = vectors_dir();
    let rows = tsv_rows(&dir.join("invalid.tsv"));
    let files = json_files(&dir.join("invalid"));
    assert_eq!(rows.len(), files.len(), "invalid.tsv covers every file");
    assert!(files.len() >= 20);
    for row in rows {
        let (name, reason) = (&row[0], &row[1]);
        let bytes = fs::read(dir.join("invalid").join(name)).unwrap();
        let msg = match Manifest::parse(&bytes) {
            Ok(m) => panic!("{name} ({reason}) was accepted: {m:?}"),
            Err(e) => invalid_message(e),
        };
        let field = expected_field(name);
        assert!(
            msg.contains(field),
            "{name} ({reason}): {msg:?} should name {field}"
        );
    }
}

/// v0.6.3's exact wording for the semantic checks (their text after the
/// `snapshot manifest: ` prefix), so users see the same errors here.
#[test]
fn semantic_errors_match_v063_wording() {
    let dir = vectors_dir();
    for row in tsv_rows(&dir.join("invalid.tsv")) {
        let their = &row[2];
        let Some(text) = their.strip_prefix("manifest parse error: snapshot manifest: ") else {
            continue;
        };
        if text.starts_with("parse failed:") {
            continue; // serde's wording; ours adds the field name
        }
        let bytes = fs::read(dir.join("invalid").join(&row[0])).unwrap();
        let msg = invalid_message(Manifest::parse(&bytes).unwrap_err());
        assert_eq!(msg, text, "{}", row[0]);
    }
}

const BASE: &str = r#"{"schema":1,"format":"raw","fstype":"ext4","image":{"ref":"docker.io/library/python:3.12","manifest_digest":"sha256:aaaa"},"parent":null,"created_at":"2026-05-01T12:00:00Z","labels":{"k":"v"},"upper":{"file":"upper.ext4","size_bytes":4096,"integrity":null},"source_sandbox":"sb"}"#;

fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

fn refused(input: &[u8]) -> String {
    match Manifest::parse(input) {
        Ok(m) => panic!("accepted {:?}: {m:?}", String::from_utf8_lossy(input)),
        Err(e) => invalid_message(e),
    }
}

#[test]
fn base_manifest_is_canonical() {
    let m = Manifest::parse(BASE.as_bytes()).unwrap();
    assert_eq!(m.canonical_bytes(), BASE.as_bytes());
}

#[test]
fn rejects_duplicate_struct_members() {
    let msg = refused(base_with(r#""schema":1,"#, r#""schema":1,"schema":1,"#).as_bytes());
    assert!(msg.contains("duplicate field `schema`"), "{msg}");
    let msg = refused(base_with(r#""file":"upper.ext4","#, r#""file":"a","file":"b","#).as_bytes());
    assert!(msg.contains("duplicate field `file`"), "{msg}");
}

#[test]
fn rejects_bom_trailing_garbage_and_bad_utf8() {
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(BASE.as_bytes());
    assert!(refused(&with_bom).contains("byte order mark"));
    assert!(refused(format!("{BASE}x").as_bytes()).contains("trailing characters"));
    assert!(refused(format!("{BASE}{{}}").as_bytes()).contains("trailing characters"));
    let mut bytes = base_with("\"sb\"", "\"s?b\"").into_bytes();
    let at = bytes.iter().position(|&b| b == b'?').unwrap();
    bytes[at] = 0xff; // never valid in UTF-8
    refused(&bytes);
}

#[test]
fn rejects_non_integer_and_out_of_range_numbers() {
    for (from, to, field) in [
        (
            r#""size_bytes":4096"#,
            r#""size_bytes":-0"#,
            "upper.size_bytes",
        ),
        (
            r#""size_bytes":4096"#,
            r#""size_bytes":4096.0"#,
            "upper.size_bytes",
        ),
        (
            r#""size_bytes":4096"#,
            r#""size_bytes":4e3"#,
            "upper.size_bytes",
        ),
        (
            r#""size_bytes":4096"#,
            r#""size_bytes":"4096""#,
            "upper.size_bytes",
        ),
        (r#""schema":1"#, r#""schema":1.0"#, "schema"),
        (r#""schema":1"#, r#""schema":-0"#, "schema"),
        (r#""schema":1"#, r#""schema":-1"#, "schema"),
        (r#""schema":1"#, r#""schema":"1""#, "schema"),
        (r#""schema":1"#, r#""schema":4294967297"#, "schema"),
    ] {
        let msg = refused(base_with(from, to).as_bytes());
        assert!(msg.contains(field), "{to}: {msg}");
    }
    // The largest u64 is fine, one more is not.
    let max = base_with("4096", "18446744073709551615");
    assert_eq!(
        Manifest::parse(max.as_bytes()).unwrap().upper.size_bytes,
        u64::MAX
    );
    refused(base_with("4096", "18446744073709551616").as_bytes());
}

#[test]
fn rejects_bad_strings() {
    // A lone surrogate escape, a raw control character, a raw newline.
    for bad in ["\"s\\ud800b\"", "\"s\u{1}b\"", "\"s\nb\""] {
        refused(base_with("\"sb\"", bad).as_bytes());
    }
    // A reversed surrogate pair is no better.
    refused(base_with("\"sb\"", "\"\\udc00\\ud800\"").as_bytes());
}

#[test]
fn rejects_wrong_types_naming_the_member() {
    for (from, to, field) in [
        (r#""labels":{"k":"v"}"#, r#""labels":null"#, "labels"),
        (r#""labels":{"k":"v"}"#, r#""labels":{"k":1}"#, "labels"),
        (r#""fstype":"ext4""#, r#""fstype":4"#, "fstype"),
        (r#""parent":null"#, r#""parent":7"#, "parent"),
        (
            r#""source_sandbox":"sb""#,
            r#""source_sandbox":true"#,
            "source_sandbox",
        ),
        (
            r#""created_at":"2026-05-01T12:00:00Z""#,
            r#""created_at":null"#,
            "created_at",
        ),
        (
            r#""integrity":null"#,
            r#""integrity":"sha256:x""#,
            "upper.integrity",
        ),
        (r#""format":"raw""#, r#""format":"Raw""#, "format"),
        (r#""format":"raw""#, r#""format":null"#, "format"),
        (
            r#""ref":"docker.io/library/python:3.12""#,
            r#""ref":null"#,
            "image.ref",
        ),
        (r#""image":{"#, r#""image":7,"x":{"#, "image"),
    ] {
        let msg = refused(base_with(from, to).as_bytes());
        assert!(msg.contains(field), "{to}: {msg}");
    }
}

#[test]
fn rejects_unknown_members_at_every_level() {
    for (from, to) in [
        (r#""schema":1,"#, r#""schema":1,"x":1,"#),
        (r#""ref":"#, r#""x":null,"ref":"#),
        (r#""file":"#, r#""x":null,"file":"#),
        (
            r#""integrity":null"#,
            r#""integrity":{"algorithm":"sha256","digest":"a:b","x":1}"#,
        ),
    ] {
        let msg = refused(base_with(from, to).as_bytes());
        assert!(msg.contains("unknown field `x`"), "{msg}");
    }
}

#[test]
fn nullable_members_are_required_keys() {
    for (from, field) in [
        (r#""parent":null,"#, "parent"),
        (r#","source_sandbox":"sb""#, "source_sandbox"),
        (r#","integrity":null"#, "integrity"),
    ] {
        let msg = refused(base_with(from, "").as_bytes());
        assert!(msg.contains(&format!("missing field `{field}`")), "{msg}");
    }
    let msg = refused(base_with(r#""labels":{"k":"v"},"#, "").as_bytes());
    assert!(msg.contains("missing field `labels`"), "{msg}");
}

#[test]
fn semantic_checks_run_in_v063_order() {
    // schema wins over every later problem.
    let many = base_with(r#""schema":1"#, r#""schema":2"#)
        .replace(r#""fstype":"ext4""#, r#""fstype":"""#)
        .replace("upper.ext4", "../x");
    assert_eq!(
        refused(many.as_bytes()),
        "unsupported schema version 2 (expected 1)"
    );
    // fstype before image.ref before the digest before upper.file.
    let later = base_with(r#""fstype":"ext4""#, r#""fstype":"""#)
        .replace("docker.io/library/python:3.12", "")
        .replace("sha256:aaaa", "nocolon");
    assert_eq!(refused(later.as_bytes()), "empty fstype");
    let later = base_with("sha256:aaaa", "nocolon").replace("upper.ext4", "a/b");
    assert!(refused(later.as_bytes()).starts_with("image.manifest_digest"));
    let parent = base_with(r#""parent":null"#, r#""parent":":x""#).replace("upper.ext4", "");
    assert_eq!(refused(parent.as_bytes()), "parent has empty component: :x");
    let integrity = base_with(
        r#""integrity":null"#,
        r#""integrity":{"algorithm":"","digest":"bad"}"#,
    );
    assert_eq!(
        refused(integrity.as_bytes()),
        "empty upper.integrity.algorithm"
    );
    let digest = base_with(
        r#""integrity":null"#,
        r#""integrity":{"algorithm":"sha256","digest":"bad"}"#,
    );
    assert!(refused(digest.as_bytes()).starts_with("upper.integrity.digest"));
}

#[test]
fn upper_file_follows_path_components_rules() {
    for ok in [
        "upper.ext4",
        "upper.ext4/",
        "upper.ext4//",
        "upper.ext4/.",
        "a b\u{e9}",
    ] {
        Manifest::parse(base_with("upper.ext4", ok).as_bytes())
            .unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    for bad in [".", "..", "../x", "./x", "/x", "a/b", "a/..", "//x"] {
        let msg = refused(base_with("upper.ext4", bad).as_bytes());
        assert!(msg.starts_with("upper.file must be"), "{bad:?}: {msg}");
    }
}

/// A non-canonical file parses and its digest is that of the canonical form.
fn assert_same_identity(noncanonical: &str, canonical: &str) {
    let parsed = Manifest::parse(noncanonical.as_bytes()).unwrap();
    assert_eq!(parsed.canonical_bytes(), canonical.as_bytes());
    assert_eq!(
        parsed.digest(),
        Manifest::parse(canonical.as_bytes()).unwrap().digest()
    );
    assert_ne!(noncanonical.as_bytes(), canonical.as_bytes());
}

#[test]
fn noncanonical_inputs_get_the_canonical_digest() {
    let canonical = BASE;
    let value: serde_json::Value = serde_json::from_str(BASE).unwrap();
    let pretty = format!(
        "\r\n\t{}  \n",
        serde_json::to_string_pretty(&value).unwrap()
    );
    assert_same_identity(&pretty, canonical);

    let reordered = r#"{"source_sandbox":"sb","upper":{"integrity":null,"size_bytes":4096,"file":"upper.ext4"},"labels":{"k":"v"},"created_at":"2026-05-01T12:00:00Z","parent":null,"image":{"manifest_digest":"sha256:aaaa","ref":"docker.io/library/python:3.12"},"fstype":"ext4","format":"raw","schema":1}"#;
    assert_same_identity(reordered, canonical);

    let escaped = base_with(
        "docker.io/library/python:3.12",
        r"docker.io\/library\/python:3.12",
    )
    .replace(r#""k":"v""#, r#""\u006b":"\u0076""#);
    assert_same_identity(&escaped, canonical);

    // Duplicate label keys: the last value wins; unsorted keys get sorted.
    let duplicate = base_with(
        r#""labels":{"k":"v"}"#,
        r#""labels":{"z":"1","k":"old","k":"v"}"#,
    );
    let sorted = base_with(r#""labels":{"k":"v"}"#, r#""labels":{"k":"v","z":"1"}"#);
    assert_same_identity(&duplicate, &sorted);

    // A surrogate-pair escape becomes raw UTF-8; `\u001F` becomes `\u001f`.
    let pair = base_with(r#""k":"v""#, r#""k":"\ud83d\ude00\u001F""#);
    let raw = base_with(r#""k":"v""#, "\"k\":\"\u{1F600}\\u001f\"");
    assert_same_identity(&pair, &raw);
}

#[test]
fn noncanonical_vectors_when_shipped() {
    let dir = vectors_dir().join("noncanonical");
    let Ok(rows) = fs::read_to_string(dir.join("noncanonical.tsv")) else {
        eprintln!("no noncanonical/ vectors shipped; covered by the built inputs above");
        return;
    };
    // Columns: file, digest, ... (the digest of the canonical re-serialization).
    for line in rows.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let bytes = fs::read(dir.join(cols[0])).unwrap();
        let m = Manifest::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", cols[0]));
        assert!(
            cols.contains(&m.digest().as_str()),
            "{}: {}",
            cols[0],
            m.digest()
        );
    }
}

#[test]
fn write_to_and_read_dir_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let src = vectors_dir().join("09-all-fields-set.json");
    let bytes = fs::read(&src).unwrap();
    let manifest = Manifest::parse(&bytes).unwrap();
    manifest.write_to(dir.path()).unwrap();
    assert_eq!(fs::read(dir.path().join(MANIFEST_FILE)).unwrap(), bytes);
    assert!(!dir.path().join("manifest.json.tmp").exists());
    let (read, digest) = Manifest::read_dir(dir.path()).unwrap();
    assert_eq!(read, manifest);
    assert_eq!(
        digest,
        "sha256:e825981881f3d332c8651071f606bda4539e324f0c8dfcdb48b7c0088f06d639"
    );
}

#[test]
fn read_dir_reports_missing_and_invalid_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let msg = invalid_message(Manifest::read_dir(dir.path()).unwrap_err());
    assert!(
        msg.contains("missing") && msg.contains(MANIFEST_FILE),
        "{msg}"
    );

    fs::write(dir.path().join(MANIFEST_FILE), base_with("ext4", "")).unwrap();
    let msg = invalid_message(Manifest::read_dir(dir.path()).unwrap_err());
    assert!(
        msg.contains(MANIFEST_FILE) && msg.ends_with("empty fstype"),
        "{msg}"
    );

    // A directory where the file should be is an I/O error, not a bad manifest.
    let nested = tempfile::tempdir().unwrap();
    fs::create_dir(nested.path().join(MANIFEST_FILE)).unwrap();
    let err = Manifest::read_dir(nested.path()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io, "{err}");
}

#[test]
fn write_to_refuses_an_invalid_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let mut manifest = Manifest::parse(BASE.as_bytes()).unwrap();
    manifest.upper.file = "../escape".into();
    invalid_message(manifest.write_to(dir.path()).unwrap_err());
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

/// Vector 14: v0.6.3 does not validate `created_at` on read (SPEC-NOTES §5,
/// digests.tsv "index falls back to now()"). The manifest parses, keeps its
/// bytes and digest, and indexing it lists the text as written with the
/// time of indexing as its instant.
#[test]
fn created_at_that_is_not_rfc3339_is_accepted_and_indexes_as_now() {
    use microsnap::home::Home;
    use microsnap::snapshot;

    let file = "14-created-at-not-rfc3339.json";
    let bytes = fs::read(vectors_dir().join(file)).unwrap();
    let manifest = Manifest::parse(&bytes).unwrap();
    assert_eq!(manifest.created_at, "yesterday");
    assert_eq!(manifest.canonical_bytes(), bytes);

    let root = tempfile::tempdir().unwrap();
    let home = Home::open(root.path()).unwrap();
    let artifact = home.snapshots_dir().join("not-rfc3339");
    fs::create_dir_all(&artifact).unwrap();
    fs::write(artifact.join(MANIFEST_FILE), &bytes).unwrap();
    let upper = fs::File::create(artifact.join(&manifest.upper.file)).unwrap();
    upper.set_len(manifest.upper.size_bytes).unwrap(); // sparse: no disk used

    let unix_nanos = || {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        i64::try_from(since.unwrap().as_nanos()).unwrap()
    };
    let before = unix_nanos();
    let opened = snapshot::open(&home, "not-rfc3339").unwrap();
    let after = unix_nanos();
    assert_eq!(opened.descriptor.created_at(), "yesterday");
    let listed = snapshot::list(&home).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].created_at, "yesterday");
    let at = listed[0].created_at_unix_nanos;
    assert!(
        (before..=after).contains(&at),
        "indexed as {at}, expected now ({before}..={after})"
    );
}

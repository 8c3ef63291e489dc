//! The migration vectors of v0.6.14 (tests/vectors/msb-0.6.14/migration):
//! each v0.6.3 manifest vector converts to the `snapshot.json` their
//! migrator wrote or is refused with its blocking code, and each downgrade
//! vector comes back as the `manifest.json` their reverse translation wrote.
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::vector_tests::tsv_rows;
use super::{Integrity, SnapshotDescriptor};
use crate::error::{Error, ErrorCode};
use crate::manifest::Manifest;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors");

fn path(rel: &str) -> PathBuf {
    Path::new(VECTORS).join(rel)
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn v063_manifest(name: &str) -> Manifest {
    Manifest::parse(&read(&path("msb-0.6.3/manifests").join(name))).unwrap()
}

fn descriptor(rel: &str) -> SnapshotDescriptor {
    SnapshotDescriptor::parse(&read(&path("msb-0.6.14").join(rel))).unwrap()
}

/// The code a refused conversion reports for a reason code.
fn expected_code(reason: &str) -> ErrorCode {
    match reason {
        "legacy_payload_size_mismatch" | "legacy_payload_missing" => ErrorCode::InvalidManifest,
        "legacy_parent_missing" => ErrorCode::InvalidArgument,
        _ => ErrorCode::Unsupported,
    }
}

#[test]
fn every_v063_manifest_vector_migrates_or_blocks_as_in_v0614() {
    let rows = tsv_rows(&path("msb-0.6.14/migration/v063-manifests.tsv"));
    assert_eq!(rows.len(), 20);
    let (mut migrated, mut blocked) = (0, 0);
    for row in &rows {
        let (file, v063_digest, outcome, digest, snapshot_json, code, message) = (
            &row[0], &row[1], &row[2], &row[3], &row[4], &row[5], &row[8],
        );
        let manifest = v063_manifest(file);
        assert_eq!(&manifest.digest(), v063_digest, "{file}: v0.6.3 identity");
        // Their run gave each directory a payload of `size_bytes`, except
        // where that was impossible (u64::MAX): the message says `file=0`.
        let payload_size = match message.split_once("file=") {
            Some((_, n)) => n.parse().unwrap(),
            None => manifest.upper.size_bytes,
        };
        // No vector has a parent in the same pass, so none is mapped.
        let result = SnapshotDescriptor::from_v063(&manifest, payload_size, None);
        match outcome.as_str() {
            "MIGRATED" => {
                migrated += 1;
                let d = result.unwrap_or_else(|e| panic!("{file}: {e}"));
                let expected =
                    read(&path("msb-0.6.14/migration/v063-manifests").join(snapshot_json));
                assert_eq!(
                    String::from_utf8(d.canonical_bytes()).unwrap(),
                    String::from_utf8(expected.clone()).unwrap(),
                    "{file}"
                );
                assert_eq!(&d.digest(), digest, "{file}: v0.6.14 identity");
                // What v0.6.14 wrote parses back to the same value.
                assert_eq!(SnapshotDescriptor::parse(&expected).unwrap(), d, "{file}");
            }
            "BLOCKED" => {
                blocked += 1;
                let err = result.expect_err(file);
                assert_eq!(err.code(), expected_code(code), "{file}: {err}");
                let text = err.to_string();
                assert!(text.contains(&format!("{code}: ")), "{file}: {text}");
                // Their detail, where ours is worded the same.
                for phrase in [
                    "created_at is not RFC3339: premature end of input",
                    "descriptor=18446744073709551615, file=0",
                    "expected raw ext4 payload",
                    "whatever-algo",
                ] {
                    if message.contains(phrase) {
                        assert!(text.contains(phrase), "{file}: {text}");
                    }
                }
            }
            other => panic!("{file}: outcome {other}"),
        }
    }
    assert_eq!((migrated, blocked), (13, 7));
}

#[test]
fn a_mapped_parent_migrates_and_a_chain_gets_v0614_identities() {
    // The chain of ../msb-0.6.3/archives/chain-with-parents.tar.zst, which
    // v0.6.14 migrated in its managed dir (migration/scenarios.tsv, S1):
    // root sha256:ee97f58b… -> sha256:082f6e6c…, child sha256:5841d504… ->
    // sha256:ada8f001… with the root's new identity as parent.
    let archive = fs::File::open(path("msb-0.6.3/archives/chain-with-parents.tar.zst")).unwrap();
    let mut tar = tar::Archive::new(zstd::stream::read::Decoder::new(archive).unwrap());
    let mut manifests = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().ends_with("manifest.json") {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            manifests.push(Manifest::parse(&bytes).unwrap());
        }
    }
    let find = |digest: &str| manifests.iter().find(|m| m.digest() == digest).unwrap();
    let root = find("sha256:ee97f58b92745b74a9454ebf42280fb9492ddb727c0c60c7eea040983e7d03a9");
    let child = find("sha256:5841d504961e8b7e27e0fc067b8fcf0f44bbb3be1cff74539c5c1ff5f356b3c2");

    let new_root = SnapshotDescriptor::from_v063(root, root.upper.size_bytes, None).unwrap();
    assert_eq!(
        new_root.digest(),
        "sha256:082f6e6c663250ac8aaa67dd1ae613bae7e4d7040958da89efa3c5de616deb4b"
    );
    // Without the parent's identity the child is blocked, as in S2/S3.
    let err = SnapshotDescriptor::from_v063(child, child.upper.size_bytes, None).unwrap_err();
    assert!(
        err.to_string()
            .contains("legacy_parent_missing: parent sha256:ee97f58b"),
        "{err}"
    );
    let new_child =
        SnapshotDescriptor::from_v063(child, child.upper.size_bytes, Some(new_root.digest()))
            .unwrap();
    assert_eq!(
        new_child.parent.as_deref(),
        Some(new_root.digest().as_str())
    );
    assert_eq!(
        new_child.digest(),
        "sha256:ada8f0019d07afeaa7dad7c53aca3291da581b291ae748ddad9855703db40560"
    );
    assert_eq!(new_child.created_at, "2026-05-01T12:05:00.5Z");

    // A parent for a manifest without one, or a malformed one: refused.
    let err = SnapshotDescriptor::from_v063(root, root.upper.size_bytes, Some(new_root.digest()))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    let err = SnapshotDescriptor::from_v063(child, child.upper.size_bytes, Some("x:y".into()))
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
}

#[test]
fn forward_refuses_what_v0614_would_not_migrate() {
    let base = v063_manifest("01-minimal-nulls.json");
    let size = base.upper.size_bytes;
    let refused = |m: &Manifest, code: &str| {
        let err = SnapshotDescriptor::from_v063(m, m.upper.size_bytes, None).unwrap_err();
        assert!(err.to_string().contains(code), "{code}: {err}");
        assert_eq!(err.code(), expected_code(code), "{err}");
    };
    let mut m = base.clone();
    m.upper.file = "manifest.json".into();
    refused(
        &m,
        "legacy_descriptor_malformed: upper.file uses a reserved name",
    );
    m.upper.file = "../upper.ext4".into();
    refused(
        &m,
        "legacy_descriptor_malformed: upper.file is not confined",
    );
    m.upper.file = "upper.ext4/.".into();
    refused(&m, "legacy_payload_missing");
    let mut m = base.clone();
    m.fstype = "xfs".into();
    refused(&m, "unsupported_legacy_layout");
    let mut m = base.clone();
    m.image.manifest_digest = "sha256:AB".into();
    refused(&m, "legacy_descriptor_malformed: image.manifest_digest");
    let mut m = base.clone();
    m.schema = 2;
    refused(&m, "unsupported_legacy_schema");
    // Sizes past 2^53-1 are not representable in snapshot.json.
    let mut m = base.clone();
    m.upper.size_bytes = 1 << 53;
    refused(&m, "state.upper.size_bytes exceeds JSON safe-integer limit");
    // The integrity is carried, never checked.
    let m = v063_manifest("08-integrity-sparse.json");
    let d = SnapshotDescriptor::from_v063(&m, m.upper.size_bytes, None).unwrap();
    assert_eq!(
        d.file_upper().unwrap().integrity,
        Some(Integrity::SparseSha256 {
            digest: m.upper.integrity.clone().unwrap().digest
        })
    );
    assert!(SnapshotDescriptor::from_v063(&base, size, None).is_ok());
}

#[test]
fn every_downgrade_vector_comes_back_as_v0614_wrote_it() {
    let rows = tsv_rows(&path("msb-0.6.14/migration/downgrade/downgrade.tsv"));
    let v063_rows = tsv_rows(&path("msb-0.6.14/migration/v063-manifests.tsv"));
    let mut checked = 0;
    for row in &rows {
        let (legacy_file, from, result, note) = (&row[0], &row[1], &row[2], &row[3]);
        let source = descriptor(from);
        if legacy_file == "(refused)" {
            let err = source.to_v063().unwrap_err();
            assert_eq!(err.code(), ErrorCode::Unsupported, "{from}: {err}");
            let phrase = result.strip_prefix("manifest parse error: ").unwrap();
            assert!(err.to_string().contains(phrase), "{from}: {err}");
            checked += 1;
            continue;
        }
        let expected = read(&path("msb-0.6.14/migration/downgrade").join(legacy_file));
        let manifest = if matches!(
            source.file_upper().unwrap().integrity,
            Some(Integrity::MerkleBlake3 { .. })
        ) {
            // Their projection was a placeholder: the one the file records.
            let projection = Manifest::parse(&expected)
                .unwrap()
                .upper
                .integrity
                .unwrap()
                .digest;
            source.to_v063_with(None, Some(&projection)).unwrap()
        } else {
            source.to_v063().unwrap()
        };
        assert_eq!(
            String::from_utf8(manifest.canonical_bytes()).unwrap(),
            String::from_utf8(expected).unwrap(),
            "{legacy_file}"
        );
        assert_eq!(&manifest.digest(), result, "{legacy_file}");
        // Equal to the original v0.6.3 vector's identity exactly when its
        // created_at was already in the normalized form.
        if note == "yes" || note == "no" {
            let original = legacy_file.replace(".manifest.json", ".json");
            let original_digest = &v063_rows.iter().find(|r| r[0] == original).unwrap()[1];
            assert_eq!(
                &manifest.digest() == original_digest,
                note == "yes",
                "{legacy_file}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 11);
}

#[test]
fn downgrade_refusals_and_projection_rules() {
    let blake3 = descriptor("descriptors/02-create-shape-blake3.json");
    let err = blake3.to_v063_with(None, Some("sha256:xyz")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    let sparse = descriptor("descriptors/03-integrity-sparse-sha256.json");
    let Some(Integrity::SparseSha256 { digest }) = sparse.file_upper().unwrap().integrity.clone()
    else {
        panic!("03 records msb-sparse-sha256-v1");
    };
    // The same value as a projection changes nothing; another one is refused.
    assert_eq!(
        sparse.to_v063_with(None, Some(&digest)).unwrap(),
        sparse.to_v063().unwrap()
    );
    let other = format!("sha256:{}", "c".repeat(64));
    assert!(matches!(
        sparse.to_v063_with(None, Some(&other)),
        Err(Error::InvalidArgument(_))
    ));
    // Checkpoint state with disk scope, and an fstype other than ext4.
    let err = descriptor("descriptors/09-checkpoint-disk-scope.json")
        .to_v063()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("snapshot_downgrade_unrepresentable: checkpoint state"),
        "{err}"
    );
    let err = descriptor("descriptors/18-fstype-any-nonempty.json")
        .to_v063()
        .unwrap_err();
    assert!(
        err.to_string().contains("only raw ext4 file state"),
        "{err}"
    );
    let err = descriptor("descriptors/11-requires-unknown-extension.json")
        .to_v063()
        .unwrap_err();
    assert!(
        err.to_string().contains("extensions are not representable"),
        "{err}"
    );
}

#[test]
fn parent_references_across_the_conversion() {
    // to_v063 keeps the reference; to_v063_with replaces it.
    let child = descriptor("descriptors/05-parent-set.json");
    let kept = child.to_v063().unwrap();
    assert_eq!(kept.parent, child.parent);
    let legacy_parent = format!("sha256:{}", "d".repeat(64));
    let mapped = child
        .to_v063_with(Some(legacy_parent.clone()), None)
        .unwrap();
    assert_eq!(mapped.parent, Some(legacy_parent));
    assert!(child.to_v063_with(Some("x:y".into()), None).is_err());
    // And the round trip: forward of the downgrade is the descriptor again.
    let back =
        SnapshotDescriptor::from_v063(&kept, kept.upper.size_bytes, child.parent.clone()).unwrap();
    assert_eq!(back, child);
    assert_eq!(back.digest(), child.digest());
}

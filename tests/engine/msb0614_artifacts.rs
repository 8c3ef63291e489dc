//! microsandbox v0.6.14 artifact directories (`tests/vectors/msb-0.6.14/
//! artifacts/`, made by their own create) through every read microsnap has:
//! open, get, list, list_dir, reindex, verify, export and sandbox creation.
//! Each case is copied into a fresh home first (its upper built sparse from
//! `upper.json` where the set stores a description instead of the image),
//! and checked to be left byte-for-byte as it was: microsnap never migrates
//! or writes into a directory it only reads.
use crate::support::sparse_vectors::{load_tsv_by, load_vector};
use crate::support::vector_sets::MSB_V0614;
use crate::support::{code_of, sparse_file, TestHome};
use microsnap::artifact::{self, ArtifactFormat};
use microsnap::error::ErrorCode;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

struct Case {
    name: String,
    row: HashMap<String, String>,
}

fn cases() -> Vec<Case> {
    let rows = load_tsv_by(
        &Path::new(MSB_V0614).join("artifacts/artifacts.tsv"),
        "case",
    );
    let mut cases: Vec<Case> = rows
        .into_iter()
        .map(|(name, row)| Case { name, row })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(cases.len(), 9, "the set has nine artifact cases");
    cases
}

/// Copy the case's directory to `dest`; an `upper.json` becomes the sparse
/// `upper.ext4` it describes.
fn install(case: &str, dest: &Path) {
    let src = Path::new(MSB_V0614).join("artifacts").join(case);
    fs::create_dir_all(dest).unwrap();
    for entry in fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name == "upper.json" {
            let v = load_vector(&entry.path());
            let writes: Vec<(u64, &[u8])> =
                v.extents.iter().map(|(o, b)| (*o, b.as_slice())).collect();
            sparse_file(&dest.join(&v.name), v.size, &writes);
        } else {
            fs::copy(entry.path(), dest.join(&name)).unwrap();
        }
    }
}

/// Every file of a directory with its bytes: what "left as it was" compares.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn is_checkpoint(case: &Case) -> bool {
    case.row["state_kind"] == "checkpoint"
}

#[test]
fn every_v0614_artifact_opens_with_its_recorded_identity_and_verifies_as_theirs_did() {
    let th = TestHome::new();
    for case in cases() {
        let dir = th.home.snapshots_dir().join(&case.name);
        install(&case.name, &dir);
        let before = contents(&dir);

        let art = artifact::open_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(art.digest, case.row["identity_digest"], "{}", case.name);
        assert_eq!(art.format(), ArtifactFormat::MsbV0614, "{}", case.name);
        let parent = case.row["parent"].as_str();
        assert_eq!(
            art.descriptor.parent(),
            (parent != "null").then_some(parent),
            "{}",
            case.name
        );
        match art.upper_spec() {
            Some(u) => {
                assert_eq!(u.file, case.row["upper_file"], "{}", case.name);
                assert_eq!(
                    u.size_bytes.to_string(),
                    case.row["size_bytes"],
                    "{}",
                    case.name
                );
            }
            None => assert!(is_checkpoint(&case), "{} has no upper", case.name),
        }

        let verified = artifact::verify_artifact(&art, &Monitor::none());
        let theirs = &case.row["their_verify"];
        match verified {
            Ok(report) if theirs.starts_with("VERIFY-OK NotRecorded") => {
                assert_eq!(report.upper.kind, "not_recorded", "{}", case.name)
            }
            Ok(report) => {
                assert_eq!(report.upper.kind, "verified", "{}", case.name);
                assert_eq!(
                    format!(
                        "VERIFY-OK Verified {} {}",
                        report.upper.algorithm, report.upper.digest
                    ),
                    *theirs,
                    "{}",
                    case.name
                );
            }
            Err(e) => {
                assert!(theirs.starts_with("VERIFY-ERR"), "{}: {e}", case.name);
                assert_eq!(e.code(), ErrorCode::Unsupported, "{}: {e}", case.name);
                assert!(
                    e.to_string().contains("checkpoint-state"),
                    "{}: {e}",
                    case.name
                );
            }
        }

        // Get indexes it; the handle says which format it is in.
        let handle = snapshot::get(&th.home, &case.name).unwrap();
        assert_eq!(handle.digest, case.row["identity_digest"]);
        assert_eq!(handle.artifact_format, "msb-v0.6.14");
        assert_eq!(
            handle.size_bytes.is_none(),
            is_checkpoint(&case),
            "{}",
            case.name
        );
        assert_eq!(
            contents(&dir),
            before,
            "{}: reading changed the directory",
            case.name
        );
    }

    // Reindex and list see all of them, and still change nothing.
    let snapshots = th.home.snapshots_dir();
    let before: Vec<_> = cases()
        .iter()
        .map(|c| contents(&snapshots.join(&c.name)))
        .collect();
    assert_eq!(snapshot::reindex(&th.home, None).unwrap(), 9);
    let listed: BTreeMap<String, String> = snapshot::list(&th.home)
        .unwrap()
        .into_iter()
        .map(|h| (h.name.unwrap(), h.digest))
        .collect();
    let listing = artifact::list_dir(&snapshots).unwrap();
    assert!(listing.skipped.is_empty(), "{:?}", listing.skipped);
    for case in cases() {
        assert_eq!(listed[&case.name], case.row["identity_digest"]);
    }
    assert_eq!(listing.artifacts.len(), 9);
    let after: Vec<_> = cases()
        .iter()
        .map(|c| contents(&snapshots.join(&c.name)))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn a_sandbox_boots_from_a_v0614_disk_snapshot_but_not_from_a_checkpoint() {
    let th = TestHome::new();
    for case in ["a02-create-integrity", "a07-checkpoint-descriptor-only"] {
        install(case, &th.home.snapshots_dir().join(case));
    }
    let sb = sandbox::create(
        &th.home,
        "from-v0614",
        &SandboxSource::Snapshot {
            name_or_path: "a02-create-integrity".into(),
        },
        &Monitor::none(),
    )
    .unwrap();
    let original = Path::new(MSB_V0614).join("artifacts/a02-create-integrity/upper.ext4");
    assert_eq!(
        fs::read(&sb.upper_path).unwrap(),
        fs::read(original).unwrap()
    );

    let refused = sandbox::create(
        &th.home,
        "from-checkpoint",
        &SandboxSource::Snapshot {
            name_or_path: "a07-checkpoint-descriptor-only".into(),
        },
        &Monitor::none(),
    );
    assert_eq!(code_of(refused), ErrorCode::Unsupported);
    assert!(sandbox::get(&th.home, "from-checkpoint").is_err());
}

#[test]
fn a_descriptor_that_requires_an_unknown_extension_opens_but_does_not_boot() {
    let th = TestHome::new();
    let dir = th.home.snapshots_dir().join("needs-ext");
    install("a01-create-default", &dir);
    // Descriptor 11 of the set, with its upper made to match a01's.
    let upper_size = fs::metadata(dir.join("upper.ext4")).unwrap().len();
    let mut d: serde_json::Value = serde_json::from_slice(
        &fs::read(Path::new(MSB_V0614).join("descriptors/11-requires-unknown-extension.json"))
            .unwrap(),
    )
    .unwrap();
    d["state"]["upper"]["size_bytes"] = upper_size.into();
    d["state"]["upper"]["file"] = "upper.ext4".into();
    d["state"]["upper"]["integrity"] = serde_json::Value::Null;
    fs::write(dir.join("snapshot.json"), serde_json::to_vec(&d).unwrap()).unwrap();
    let art = artifact::open_dir(&dir).unwrap();
    assert!(art.descriptor.restore_blocker().is_some());
    let refused = sandbox::create(
        &th.home,
        "needs-ext-box",
        &SandboxSource::Snapshot {
            name_or_path: "needs-ext".into(),
        },
        &Monitor::none(),
    );
    let msg = match refused {
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::Unsupported);
            e.to_string()
        }
        Ok(_) => panic!("booted a snapshot that requires an unknown extension"),
    };
    assert!(
        msg.contains("requires unsupported runtime capabilities"),
        "{msg}"
    );
}

#[test]
fn a_v0614_snapshot_created_by_microsnap_reads_back_as_that_format() {
    let th = TestHome::new();
    th.sandbox_with("box", 1 << 20, &[(4096, b"hello v0.6.14")]);
    let opts = snapshot::CreateOptions {
        name: Some("new-format".into()),
        format: ArtifactFormat::MsbV0614,
        ..Default::default()
    };
    let art = snapshot::create(&th.home, "box", &opts, &Monitor::none()).unwrap();
    assert_eq!(art.format(), ArtifactFormat::MsbV0614);
    let files: Vec<String> = contents(&art.path).into_keys().collect();
    assert_eq!(files, ["snapshot.json", "upper.ext4"]);
    let bytes = fs::read(art.path.join("snapshot.json")).unwrap();
    // Canonical as written: the file's hash is the identity.
    assert_eq!(crate::support::image::sha256_of(&bytes), art.digest);
    let d: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = vec![
        "schema",
        "artifact",
        "scope",
        "created_at",
        "parent",
        "image",
        "source_sandbox",
        "state",
        "labels",
        "extensions",
        "requires",
    ];
    expected.sort();
    assert_eq!(keys, expected);
    let created_at = d["created_at"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && !created_at.contains("+00:00"),
        "{created_at}"
    );
    assert_eq!(artifact::open_dir(&art.path).unwrap().digest, art.digest);
}

/// Every refused descriptor of the set, as the `snapshot.json` of a real
/// directory with an upper beside it: open refuses it as an invalid
/// manifest with v0.6.14's own reason, and list_dir reports it as skipped.
#[test]
fn a_directory_with_an_invalid_v0614_descriptor_is_refused_everywhere() {
    let th = TestHome::new();
    let table = fs::read_to_string(Path::new(MSB_V0614).join("invalid/invalid.tsv")).unwrap();
    let scan = th.outside("scan");
    fs::create_dir_all(&scan).unwrap();
    let mut n = 0;
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, theirs) = (cols[0], cols[2]);
        let dir = scan.join(file.trim_end_matches(".json"));
        fs::create_dir_all(&dir).unwrap();
        fs::copy(
            Path::new(MSB_V0614).join("invalid").join(file),
            dir.join("snapshot.json"),
        )
        .unwrap();
        sparse_file(&dir.join("upper.ext4"), 1 << 20, &[]);
        let e = artifact::open_dir(&dir).expect_err(file);
        assert_eq!(e.code(), ErrorCode::InvalidManifest, "{file}: {e}");
        let reason = theirs
            .strip_prefix("manifest parse error: snapshot descriptor: ")
            .unwrap_or_else(|| panic!("{file}: unexpected recorded text {theirs}"));
        assert!(
            e.to_string().contains(reason),
            "{file}: {e} lacks {reason:?}"
        );
        n += 1;
    }
    assert_eq!(n, 42);
    let listing = artifact::list_dir(&scan).unwrap();
    assert!(listing.artifacts.is_empty());
    assert_eq!(listing.skipped.len(), 42);
}

/// With integrity, a v0.6.14 snapshot records what v0.6.14's create records
/// (the BLAKE3 merkle with its logical and leaf size); an algorithm their
/// closed set lacks is refused before anything is copied.
#[test]
fn a_v0614_snapshot_with_integrity_records_the_blake3_merkle() {
    use microsnap::integrity::Algorithm;
    let th = TestHome::new();
    th.sandbox_with("box", 3 << 20, &[(1 << 20, b"blake3 please")]);
    let opts = snapshot::CreateOptions {
        name: Some("b3".into()),
        format: ArtifactFormat::MsbV0614,
        record_integrity: true,
        ..Default::default()
    };
    let art = snapshot::create(&th.home, "box", &opts, &Monitor::none()).unwrap();
    let d: serde_json::Value =
        serde_json::from_slice(&fs::read(art.path.join("snapshot.json")).unwrap()).unwrap();
    let integrity = &d["state"]["upper"]["integrity"];
    assert_eq!(integrity["algorithm"], "msb-file-merkle-blake3-v1");
    assert_eq!(integrity["logical_size"], 3 << 20);
    assert_eq!(integrity["leaf_size"], 65536);
    assert!(integrity["root"].as_str().unwrap().starts_with("blake3:"));
    let report = artifact::verify_artifact(&art, &Monitor::none()).unwrap();
    assert_eq!(report.upper.kind, "verified");
    assert_eq!(report.upper.digest, integrity["root"].as_str().unwrap());

    let before = crate::support::home_state(&th.home, &[]);
    let refused = snapshot::create(
        &th.home,
        "box",
        &snapshot::CreateOptions {
            name: Some("sha-merkle".into()),
            integrity_algorithm: Some(Algorithm::MerkleSha256V1),
            ..opts
        },
        &Monitor::none(),
    );
    assert_eq!(code_of(refused), ErrorCode::Unsupported);
    assert_eq!(crate::support::home_state(&th.home, &[]), before);
}

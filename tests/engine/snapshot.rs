//! Snapshot operations through the public engine API, on real artifacts:
//! create (name, path, labels, force, integrity, sandbox states), open and its
//! metadata checks, get, list, list_dir, remove, reindex, verify, and two
//! artifacts of one name in different directories.
use crate::support as engine_support;

use engine_support::*;
use microsnap::error::{Error, ErrorCode};
use microsnap::integrity::{self, Algorithm};
use microsnap::manifest::{DiskFormat, Manifest, MANIFEST_FILE};
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, CreateOptions};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Copy an artifact directory (manifest + upper, holes kept) to `dest`.
fn copy_artifact(from: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        microsnap::sparse::copy_sparse(
            &entry.path(),
            &dest.join(entry.file_name()),
            &Monitor::none(),
        )
        .unwrap();
    }
}

#[test]
fn create_by_bare_name_writes_a_complete_artifact_and_indexes_it() {
    let t = TestHome::new();
    let data = pattern(100_000, 1);
    let sb = t.sandbox_with("dev", 8 * MIB, &[(2 * MIB, &data)]);
    let opts = CreateOptions {
        labels: labels(&[("stage", "baseline"), ("owner", "tests")]),
        ..named("baseline")
    };
    let art = snapshot::create(&t.home, "dev", &opts, &Monitor::none()).unwrap();
    assert_eq!(art.path, t.home.snapshots_dir().join("baseline"));
    let m = art.manifest().unwrap();
    assert_eq!(m.schema, 1);
    assert_eq!(m.format, DiskFormat::Raw);
    assert_eq!(m.fstype, "ext4");
    assert_eq!(m.image, sb.image);
    assert_eq!(m.parent, None);
    assert_eq!(m.source_sandbox.as_deref(), Some("dev"));
    assert_eq!(m.labels, opts.labels);
    assert_eq!(m.upper.file, "upper.ext4");
    assert_eq!(m.upper.size_bytes, 8 * MIB);
    assert_eq!(m.upper.integrity, None);
    assert_eq!(names_in(&art.path), [MANIFEST_FILE, "upper.ext4"]);
    // The file on disk is the canonical manifest whose digest is the identity.
    let bytes = fs::read(art.path.join(MANIFEST_FILE)).unwrap();
    assert_eq!(bytes, m.canonical_bytes());
    assert_eq!(Manifest::parse(&bytes).unwrap().digest(), art.digest);
    assert_eq!(read_at(&art.upper_path(), 2 * MIB, data.len()), data);

    // open, get by name / digest / path all agree.
    assert_eq!(snapshot::open(&t.home, "baseline").unwrap(), art);
    let by_name = snapshot::get(&t.home, "baseline").unwrap();
    assert_eq!(by_name.digest, art.digest);
    assert_eq!(by_name.name.as_deref(), Some("baseline"));
    assert_eq!(by_name.path, art.path);
    assert_eq!(by_name.labels, opts.labels);
    assert_eq!(by_name.size_bytes, Some(8 * MIB));
    assert_eq!(by_name.image_manifest_digest, t.image_digest);
    assert_eq!(by_name.child_count, 0);
    assert_eq!(snapshot::get(&t.home, &art.digest).unwrap(), by_name);
    assert_eq!(
        snapshot::get(&t.home, art.path.to_str().unwrap()).unwrap(),
        by_name
    );
    assert_eq!(snapshot::list(&t.home).unwrap(), vec![by_name]);
    assert_eq!(staging_in(&t.home.tmp_dir()), Vec::<String>::new());
    // Snapshotting left the sandbox as it was.
    assert_eq!(
        sandbox::get(&t.home, "dev").unwrap().state,
        sandbox::SandboxState::Created
    );
}

#[test]
fn create_at_an_explicit_path_outside_the_home() {
    let t = TestHome::new();
    t.sandbox_with("dev", 4 * MIB, &[(0, b"explicit")]);
    let dest = t.outside("exports").join("nested").join("snap-1");
    let art = snapshot::create(&t.home, "dev", &at_path(&dest), &Monitor::none()).unwrap();
    assert_eq!(art.path, dest);
    assert_eq!(read_at(&dest.join("upper.ext4"), 0, 8), b"explicit");
    // Staging happened beside it and is gone.
    assert_eq!(names_in(dest.parent().unwrap()), ["snap-1"]);
    assert_eq!(staging_in(&t.home.tmp_dir()), Vec::<String>::new());
    let h = snapshot::get(&t.home, dest.to_str().unwrap()).unwrap();
    assert_eq!(h.path, dest);
    // No bare name resolves there: it is known by its path alone.
    assert_eq!(h.name, None);
    assert_eq!(snapshot::get(&t.home, &art.digest).unwrap().path, dest);
    // A relative path works too and resolves against the current directory.
    let opened = snapshot::open_dir(&dest).unwrap();
    assert_eq!(opened.digest, art.digest);
}

#[test]
fn create_refuses_an_existing_destination_unless_forced() {
    let t = TestHome::new();
    t.sandbox_with("dev", 4 * MIB, &[(0, b"one")]);
    let first = t.snapshot("dev", "s");
    write_at(&sandbox::get(&t.home, "dev").unwrap().upper_path, 0, b"two");
    let before = t.state(&[]);
    expect_code(
        snapshot::create(&t.home, "dev", &named("s"), &Monitor::none()),
        ErrorCode::AlreadyExists,
    );
    assert_eq!(t.state(&[]), before);

    let forced = CreateOptions {
        force: true,
        ..named("s")
    };
    let second = snapshot::create(&t.home, "dev", &forced, &Monitor::none()).unwrap();
    assert_ne!(second.digest, first.digest);
    assert_eq!(read_at(&second.upper_path(), 0, 3), b"two");
    let listed = snapshot::list(&t.home).unwrap();
    assert_eq!(listed.len(), 1, "one row per path: {listed:?}");
    assert_eq!(listed[0].digest, second.digest);
    expect_code(
        snapshot::get(&t.home, &first.digest),
        ErrorCode::SnapshotNotFound,
    );
    assert_eq!(staging_in(&t.home.tmp_dir()), Vec::<String>::new());

    // Force never replaces something that is not an artifact.
    let precious = t.outside("precious");
    fs::create_dir(&precious).unwrap();
    fs::write(precious.join("thesis.txt"), b"do not lose").unwrap();
    let opts = CreateOptions {
        force: true,
        ..at_path(&precious)
    };
    expect_code(
        snapshot::create(&t.home, "dev", &opts, &Monitor::none()),
        ErrorCode::AlreadyExists,
    );
    assert_eq!(
        fs::read(precious.join("thesis.txt")).unwrap(),
        b"do not lose"
    );
}

#[test]
fn record_integrity_with_each_algorithm_and_verify_it() {
    let t = TestHome::new();
    let sb = t.sandbox_with(
        "dev",
        8 * MIB,
        &[(12345, &pattern(200_000, 5)), (7 * MIB, b"tail")],
    );
    for algorithm in Algorithm::ALL {
        let name = format!("snap-{}", algorithm.name());
        let opts = CreateOptions {
            record_integrity: true,
            integrity_algorithm: Some(algorithm),
            ..named(&name)
        };
        let art = snapshot::create(&t.home, "dev", &opts, &Monitor::none()).unwrap();
        let recorded = art.upper_spec().unwrap().integrity.clone().unwrap();
        assert_eq!(recorded.algorithm, algorithm.name());
        let expected = integrity::compute(&sb.upper_path, algorithm, &Monitor::none()).unwrap();
        assert_eq!(recorded.digest, expected, "{algorithm:?}");
        let report = snapshot::verify(&t.home, &name, &Monitor::none()).unwrap();
        assert_eq!(report.upper.kind, "verified");
        assert_eq!(report.upper.algorithm, algorithm.name());
        assert_eq!(report.upper.digest, expected);
        assert_eq!(report.digest, art.digest);
        assert_eq!(report.path, art.path);
        assert_eq!(snapshot::get(&t.home, &name).unwrap().digest, art.digest,);
    }
    // The digests differ: they really are different algorithms.
    let digests: std::collections::HashSet<String> = Algorithm::ALL
        .iter()
        .map(|a| integrity::compute(&sb.upper_path, *a, &Monitor::none()).unwrap())
        .collect();
    assert_eq!(digests.len(), Algorithm::ALL.len());

    // No algorithm given: the default is recorded.
    let opts = CreateOptions {
        record_integrity: true,
        ..named("default")
    };
    let art = snapshot::create(&t.home, "dev", &opts, &Monitor::none()).unwrap();
    assert_eq!(
        art.upper_spec()
            .unwrap()
            .integrity
            .clone()
            .unwrap()
            .algorithm,
        Algorithm::DEFAULT.name()
    );
}

#[test]
fn verify_reports_not_recorded_and_names_both_digests_on_a_flipped_byte() {
    let t = TestHome::new();
    t.sandbox_with("dev", 4 * MIB, &[(MIB, &pattern(4096, 9))]);
    let plain = t.snapshot("dev", "plain");
    let report = snapshot::verify(&t.home, "plain", &Monitor::none()).unwrap();
    assert_eq!(report.upper.kind, "not_recorded");
    assert_eq!(report.upper.algorithm, "");
    assert_eq!(report.upper.digest, "");
    assert_eq!(report.digest, plain.digest);

    let opts = CreateOptions {
        record_integrity: true,
        ..named("sealed")
    };
    let art = snapshot::create(&t.home, "dev", &opts, &Monitor::none()).unwrap();
    let expected = art.upper_spec().unwrap().integrity.clone().unwrap().digest;
    flip_byte(&art.upper_path(), MIB + 100);
    match snapshot::verify(&t.home, &art.digest, &Monitor::none()) {
        Err(Error::IntegrityMismatch {
            path,
            expected: e,
            actual,
        }) => {
            assert_eq!(e, expected);
            assert_ne!(actual, expected);
            assert!(actual.starts_with("sha256:"), "{actual}");
            assert_eq!(path, art.upper_path().display().to_string());
        }
        other => panic!("expected integrity_mismatch, got {other:?}"),
    }
    // A flipped byte in a hole (size unchanged) is caught too.
    flip_byte(&art.upper_path(), MIB + 100); // restore
    snapshot::verify_artifact(&art, &Monitor::none()).unwrap();
    write_at(&art.upper_path(), 3 * MIB, &[1]);
    expect_code(
        snapshot::verify_artifact(&art, &Monitor::none()),
        ErrorCode::IntegrityMismatch,
    );
}

#[test]
fn create_accepts_stopped_crashed_and_never_started_but_not_running() {
    let t = TestHome::new();
    t.sandbox("never", MIB);
    t.sandbox("stopped", MIB);
    t.sandbox("crashed", MIB);
    t.sandbox("running", MIB);
    sandbox::start(&t.home, "stopped").unwrap().stop().unwrap();
    drop(sandbox::start(&t.home, "crashed").unwrap());
    let live = sandbox::start(&t.home, "running").unwrap();
    for name in ["never", "stopped", "crashed"] {
        let art = t.snapshot(name, &format!("of-{name}"));
        assert_eq!(art.descriptor.source_sandbox(), Some(name));
    }
    let before = t.state(&[]);
    expect_code(
        snapshot::create(&t.home, "running", &named("of-running"), &Monitor::none()),
        ErrorCode::SandboxRunning,
    );
    let path_opts = at_path(&t.outside("of-running"));
    expect_code(
        snapshot::create(&t.home, "running", &path_opts, &Monitor::none()),
        ErrorCode::SandboxRunning,
    );
    assert_eq!(t.state(&[]), before);
    assert!(!t.outside("of-running").exists());
    assert_eq!(
        names_in(t.dir.path()),
        ["home"],
        "no staging beside the path"
    );
    live.stop().unwrap();
    t.snapshot("running", "of-running");
}

/// An artifact at an explicit path to break in one way per case.
fn broken_copy(t: &TestHome, good: &Path, name: &str) -> std::path::PathBuf {
    let dest = t.outside("broken").join(name);
    copy_artifact(good, &dest);
    dest
}

#[test]
fn open_checks_metadata_and_refuses_each_broken_upper_with_its_code() {
    let t = TestHome::new();
    t.sandbox_with("dev", 2 * MIB, &[(0, b"raw data")]);
    let raw = t.snapshot("dev", "raw");
    // Opening does not hash: a changed byte of the right size still opens.
    let changed = broken_copy(&t, &raw.path, "changed-byte");
    flip_byte(&changed.join("upper.ext4"), 0);
    assert_eq!(snapshot::open_dir(&changed).unwrap().digest, raw.digest);

    let missing = broken_copy(&t, &raw.path, "missing-upper");
    fs::remove_file(missing.join("upper.ext4")).unwrap();
    let msg = expect_code(snapshot::open_dir(&missing), ErrorCode::InvalidManifest);
    assert!(msg.contains("upper.ext4"), "{msg}");

    let short = broken_copy(&t, &raw.path, "wrong-size");
    fs::OpenOptions::new()
        .write(true)
        .open(short.join("upper.ext4"))
        .unwrap()
        .set_len(MIB)
        .unwrap();
    let msg = expect_code(snapshot::open_dir(&short), ErrorCode::IntegrityMismatch);
    assert!(
        msg.contains(&(2 * MIB).to_string()) && msg.contains(&MIB.to_string()),
        "{msg}"
    );

    let link = broken_copy(&t, &raw.path, "symlink-upper");
    let target = t.outside("elsewhere.ext4");
    fs::rename(link.join("upper.ext4"), &target).unwrap();
    std::os::unix::fs::symlink(&target, link.join("upper.ext4")).unwrap();
    expect_code(snapshot::open_dir(&link), ErrorCode::InvalidManifest);

    let dir_upper = broken_copy(&t, &raw.path, "dir-upper");
    fs::remove_file(dir_upper.join("upper.ext4")).unwrap();
    fs::create_dir(dir_upper.join("upper.ext4")).unwrap();
    expect_code(snapshot::open_dir(&dir_upper), ErrorCode::InvalidManifest);

    let magic = broken_copy(&t, &raw.path, "raw-with-qcow2-magic");
    write_at(&magic.join("upper.ext4"), 0, b"QFI\xfb");
    let msg = expect_code(snapshot::open_dir(&magic), ErrorCode::InvalidManifest);
    assert!(msg.contains("qcow2"), "{msg}");

    // qcow2 artifacts: the magic must be there and no backing file allowed.
    let qcow = t.outside("disk.qcow2");
    fs::write(&qcow, qcow2_image(1 << 30, None)).unwrap();
    sandbox::create(
        &t.home,
        "q",
        &SandboxSource::Upper {
            path: qcow,
            fstype: "ext4".into(),
            image: IMAGE_REF.into(),
        },
        &Monitor::none(),
    )
    .unwrap();
    let q = t.snapshot("q", "qcow");
    assert_eq!(q.descriptor.disk_format().unwrap(), DiskFormat::Qcow2);
    assert_eq!(snapshot::open(&t.home, "qcow").unwrap().digest, q.digest);

    let no_magic = broken_copy(&t, &q.path, "qcow2-without-magic");
    write_at(&no_magic.join("upper.qcow2"), 0, b"\0\0\0\0");
    expect_code(snapshot::open_dir(&no_magic), ErrorCode::InvalidManifest);

    let backed = broken_copy(&t, &q.path, "qcow2-with-backing");
    let with_backing = qcow2_image(1 << 30, Some("/var/lib/base.img"));
    write_at(&backed.join("upper.qcow2"), 0, &with_backing[..4096]);
    let msg = expect_code(snapshot::open_dir(&backed), ErrorCode::Unsupported);
    assert!(msg.contains("/var/lib/base.img"), "{msg}");

    let no_manifest = t.outside("broken").join("no-manifest");
    fs::create_dir_all(&no_manifest).unwrap();
    expect_code(
        snapshot::open_dir(&no_manifest),
        ErrorCode::SnapshotNotFound,
    );
    let bad_manifest = broken_copy(&t, &raw.path, "bad-manifest");
    fs::write(bad_manifest.join(MANIFEST_FILE), b"{\"schema\": 2}").unwrap();
    expect_code(
        snapshot::open_dir(&bad_manifest),
        ErrorCode::InvalidManifest,
    );
}

#[test]
fn list_is_newest_first_and_list_dir_skips_malformed_entries() {
    let t = TestHome::new();
    t.sandbox("dev", MIB);
    let order = ["first", "second", "third"];
    let mut digests = Vec::new();
    for name in order {
        digests.push(t.snapshot("dev", name).digest);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let listed = snapshot::list(&t.home).unwrap();
    let names: Vec<&str> = listed.iter().map(|h| h.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["third", "second", "first"]);
    assert!(listed
        .windows(2)
        .all(|w| w[0].created_at_unix_nanos > w[1].created_at_unix_nanos));

    // list_each hands out the same handles in the same order, and an error
    // from the callback stops the walk and comes back as is.
    let mut each = Vec::new();
    snapshot::list_each(&t.home, |h| {
        each.push(h);
        Ok(())
    })
    .unwrap();
    assert_eq!(each, listed);
    let mut seen = 0;
    let stopped = snapshot::list_each(&t.home, |_| {
        seen += 1;
        Err(Error::Internal("stop here".into()))
    });
    assert!(matches!(stopped, Err(Error::Internal(m)) if m == "stop here"));
    assert_eq!(seen, 1);

    // Broken neighbours in the same directory, plus hidden and stray entries.
    let dir = t.home.snapshots_dir();
    fs::create_dir(dir.join("garbage")).unwrap();
    fs::write(dir.join("garbage").join(MANIFEST_FILE), b"not json").unwrap();
    fs::create_dir(dir.join("empty")).unwrap();
    fs::create_dir(dir.join(".hidden")).unwrap();
    fs::write(dir.join("stray-file"), b"x").unwrap();
    let listing = snapshot::list_dir(&dir).unwrap();
    let found: Vec<String> = listing.artifacts.iter().map(|a| a.digest.clone()).collect();
    let mut expected = digests.clone();
    expected.sort_by_key(|d| order[digests.iter().position(|x| x == d).unwrap()]);
    assert_eq!(found.len(), 3);
    for d in &digests {
        assert!(found.contains(d));
    }
    let skipped: Vec<(String, ErrorCode)> = listing
        .skipped
        .iter()
        .map(|(p, e)| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                e.code(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            ("empty".to_string(), ErrorCode::SnapshotNotFound),
            ("garbage".to_string(), ErrorCode::InvalidManifest)
        ]
    );
    // The index listing is unaffected by the junk.
    assert_eq!(snapshot::list(&t.home).unwrap(), listed);
    expect_code(
        snapshot::list_dir(&t.outside("no-such-dir")),
        ErrorCode::InvalidArgument,
    );
}

#[test]
fn remove_by_name_digest_and_path() {
    let t = TestHome::new();
    t.sandbox("dev", MIB);
    let a = t.snapshot("dev", "a");
    write_at(&sandbox::get(&t.home, "dev").unwrap().upper_path, 0, b"b");
    let b = t.snapshot("dev", "b");
    let outside = t.outside("c");
    write_at(&sandbox::get(&t.home, "dev").unwrap().upper_path, 0, b"c");
    let c = snapshot::create(&t.home, "dev", &at_path(&outside), &Monitor::none()).unwrap();
    assert_eq!(snapshot::list(&t.home).unwrap().len(), 3);

    snapshot::remove(&t.home, "a", false).unwrap();
    assert!(!a.path.exists());
    expect_code(snapshot::get(&t.home, "a"), ErrorCode::SnapshotNotFound);

    snapshot::remove(&t.home, &b.digest, false).unwrap();
    assert!(!b.path.exists());
    expect_code(
        snapshot::get(&t.home, &b.digest),
        ErrorCode::SnapshotNotFound,
    );

    snapshot::remove(&t.home, outside.to_str().unwrap(), false).unwrap();
    assert!(!c.path.exists());
    assert_eq!(
        names_in(t.dir.path()),
        ["home"],
        "no trash left beside the path"
    );

    assert_eq!(snapshot::list(&t.home).unwrap(), vec![]);
    assert_eq!(names_in(&t.home.snapshots_dir()), Vec::<String>::new());
    assert_eq!(staging_in(&t.home.tmp_dir()), Vec::<String>::new());
    expect_code(
        snapshot::remove(&t.home, "a", false),
        ErrorCode::SnapshotNotFound,
    );
    expect_code(
        snapshot::remove(&t.home, &b.digest, true),
        ErrorCode::SnapshotNotFound,
    );
}

#[test]
fn reindex_counts_artifacts_drops_vanished_rows_and_recomputes_children() {
    let t = TestHome::new();
    t.sandbox("dev", MIB);
    let parent = t.snapshot("dev", "parent");
    t.sandbox_from("kid", "parent").unwrap();
    t.snapshot("kid", "child-1");
    t.snapshot("kid", "child-2");
    let doomed = t.snapshot("dev", "doomed");
    assert_eq!(snapshot::get(&t.home, "parent").unwrap().child_count, 2);

    // Behind the engine's back: one artifact vanishes, one child's directory
    // vanishes, and one valid artifact appears unindexed.
    fs::remove_dir_all(&doomed.path).unwrap();
    fs::remove_dir_all(t.home.snapshots_dir().join("child-2")).unwrap();
    copy_artifact(&parent.path, &t.home.snapshots_dir().join("parent-copy"));
    fs::create_dir(t.home.snapshots_dir().join("junk")).unwrap();
    fs::write(
        t.home.snapshots_dir().join("junk").join(MANIFEST_FILE),
        b"{}",
    )
    .unwrap();
    assert_eq!(
        snapshot::list(&t.home).unwrap().len(),
        4,
        "stale before reindex"
    );

    let count = snapshot::reindex(&t.home, None).unwrap();
    assert_eq!(count, 3); // parent, parent-copy, child-1
    let listed = snapshot::list(&t.home).unwrap();
    let mut names: Vec<&str> = listed.iter().map(|h| h.name.as_deref().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["child-1", "parent", "parent-copy"]);
    for h in &listed {
        let expected = if h.digest == parent.digest { 1 } else { 0 };
        assert_eq!(h.child_count, expected, "{:?}", h.name);
    }
    // Reindex is idempotent.
    assert_eq!(snapshot::reindex(&t.home, None).unwrap(), 3);
    assert_eq!(snapshot::list(&t.home).unwrap().len(), 3);

    // Reindexing another directory adds its artifacts beside the home's.
    let elsewhere = t.outside("elsewhere");
    snapshot::create(
        &t.home,
        "dev",
        &at_path(&elsewhere.join("x")),
        &Monitor::none(),
    )
    .unwrap();
    fs::remove_dir_all(elsewhere.join("x")).unwrap();
    copy_artifact(&parent.path, &elsewhere.join("y"));
    assert_eq!(snapshot::reindex(&t.home, Some(&elsewhere)).unwrap(), 1);
    let paths: Vec<_> = snapshot::list(&t.home)
        .unwrap()
        .into_iter()
        .map(|h| h.path)
        .collect();
    assert!(paths.contains(&elsewhere.join("y")));
    assert!(!paths.contains(&elsewhere.join("x")));
    assert_eq!(paths.len(), 4);
}

#[test]
fn two_artifacts_named_foo_in_different_directories_coexist() {
    let t = TestHome::new();
    t.sandbox_with("dev", MIB, &[(0, b"home foo")]);
    let in_home = t.snapshot("dev", "foo");
    write_at(
        &sandbox::get(&t.home, "dev").unwrap().upper_path,
        0,
        b"away foo",
    );
    let away_path = t.outside("away").join("foo");
    let away = snapshot::create(&t.home, "dev", &at_path(&away_path), &Monitor::none()).unwrap();
    assert_ne!(in_home.digest, away.digest);

    let listed = snapshot::list(&t.home).unwrap();
    assert_eq!(listed.len(), 2);
    // Only the one the bare name resolves to is listed by name.
    for h in &listed {
        let expected = (h.path == in_home.path).then_some("foo");
        assert_eq!(h.name.as_deref(), expected, "{}", h.path.display());
    }
    let mut paths: Vec<_> = listed.iter().map(|h| h.path.clone()).collect();
    paths.sort();
    let mut expected = vec![in_home.path.clone(), away_path.clone()];
    expected.sort();
    assert_eq!(paths, expected);
    // The bare name means the home's; the others are reached by path or digest.
    assert_eq!(
        snapshot::get(&t.home, "foo").unwrap().digest,
        in_home.digest
    );
    assert_eq!(
        snapshot::get(&t.home, away_path.to_str().unwrap())
            .unwrap()
            .digest,
        away.digest
    );
    assert_eq!(
        snapshot::get(&t.home, &away.digest).unwrap().path,
        away_path
    );

    // Reindexing the home keeps the other directory's row.
    snapshot::reindex(&t.home, None).unwrap();
    assert_eq!(snapshot::list(&t.home).unwrap().len(), 2);
    // Removing one leaves the other.
    snapshot::remove(&t.home, "foo", false).unwrap();
    let listed = snapshot::list(&t.home).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].path, away_path);
    assert!(away_path.join(MANIFEST_FILE).is_file());
}

#[test]
fn a_bare_name_never_reaches_an_artifact_outside_the_home() {
    let t = TestHome::new();
    t.sandbox_with("sb1", MIB, &[(0, b"outside")]);
    let outside = t.outside("some-dir").join("art1");
    let art = snapshot::create(&t.home, "sb1", &at_path(&outside), &Monitor::none()).unwrap();

    // Listed by its path, not by a name that would resolve elsewhere.
    let listed = snapshot::list(&t.home).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, None);
    assert_eq!(listed[0].path, outside);

    // The bare name means <home>/snapshots/art1, which does not exist.
    for result in [
        snapshot::get(&t.home, "art1").map(drop),
        snapshot::open(&t.home, "art1").map(drop),
        snapshot::verify(&t.home, "art1", &Monitor::none()).map(drop),
        snapshot::remove(&t.home, "art1", false),
    ] {
        assert_eq!(code_of(result), ErrorCode::SnapshotNotFound);
    }
    assert!(
        outside.join(MANIFEST_FILE).is_file(),
        "rm by bare name reached outside the home"
    );

    // Its digest and its path work everywhere.
    for reference in [art.digest.clone(), outside.to_string_lossy().into_owned()] {
        assert_eq!(snapshot::get(&t.home, &reference).unwrap().path, outside);
        assert_eq!(
            snapshot::open(&t.home, &reference).unwrap().digest,
            art.digest
        );
        assert_eq!(
            snapshot::verify(&t.home, &reference, &Monitor::none())
                .unwrap()
                .digest,
            art.digest
        );
    }
    snapshot::remove(&t.home, &art.digest, false).unwrap();
    assert!(!outside.exists());
}

#[test]
fn every_listed_name_or_path_resolves_back_to_its_row() {
    let t = TestHome::new();
    t.sandbox_with("sb", MIB, &[(0, b"one")]);
    t.snapshot("sb", "in-home");
    let away = t.outside("away").join("in-home");
    snapshot::create(&t.home, "sb", &at_path(&away), &Monitor::none()).unwrap();
    let away2 = t.outside("away2").join("other");
    snapshot::create(&t.home, "sb", &at_path(&away2), &Monitor::none()).unwrap();

    let listed = snapshot::list(&t.home).unwrap();
    assert_eq!(listed.len(), 3);
    let mut names: Vec<_> = listed.iter().filter_map(|h| h.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, ["in-home"], "no two rows share a name");
    let out = t.outside("exports");
    fs::create_dir_all(&out).unwrap();
    for (i, h) in listed.iter().enumerate() {
        let shown = h
            .name
            .clone()
            .unwrap_or_else(|| h.path.to_string_lossy().into_owned());
        assert_eq!(
            snapshot::get(&t.home, &shown).unwrap().path,
            h.path,
            "{shown}"
        );
        assert_eq!(
            snapshot::open(&t.home, &shown).unwrap().path,
            h.path,
            "{shown}"
        );
        assert_eq!(
            snapshot::verify(&t.home, &shown, &Monitor::none())
                .unwrap()
                .path,
            h.path
        );
        let report = microsnap::archive::export(
            &t.home,
            &shown,
            &out.join(format!("{i}.tar.zst")),
            &Default::default(),
            &Monitor::none(),
        )
        .unwrap();
        assert_eq!(report.snapshots, [h.digest.clone()]);
    }
}

#[test]
fn import_installs_the_head_under_a_chosen_name() {
    let t = TestHome::new();
    t.sandbox_with("sb", MIB, &[(0, b"head")]);
    let art = t.snapshot("sb", "made-here");
    let archive = t.outside("x").join("a.tar.zst");
    fs::create_dir_all(archive.parent().unwrap()).unwrap();
    microsnap::archive::export(
        &t.home,
        "made-here",
        &archive,
        &Default::default(),
        &Monitor::none(),
    )
    .unwrap();

    let other = TestHome::new();
    let report = microsnap::archive::import_named(
        &other.home,
        &archive,
        None,
        Some("mine"),
        &Monitor::none(),
    )
    .unwrap();
    assert_eq!(report.head.path, other.home.snapshots_dir().join("mine"));
    assert_eq!(report.head.digest, art.digest);
    let h = snapshot::get(&other.home, "mine").unwrap();
    assert_eq!(
        (h.name.as_deref(), h.digest.as_str()),
        (Some("mine"), art.digest.as_str())
    );
    // The same snapshot again under that name is fine; a different one is refused.
    microsnap::archive::import_named(&other.home, &archive, None, Some("mine"), &Monitor::none())
        .unwrap();
    t.sandbox_with("sb2", MIB, &[(0, b"different")]);
    t.snapshot("sb2", "different");
    let archive2 = t.outside("x").join("b.tar.zst");
    microsnap::archive::export(
        &t.home,
        "different",
        &archive2,
        &Default::default(),
        &Monitor::none(),
    )
    .unwrap();
    let e = microsnap::archive::import_named(
        &other.home,
        &archive2,
        None,
        Some("mine"),
        &Monitor::none(),
    );
    assert_eq!(code_of(e), ErrorCode::AlreadyExists);
    let e = microsnap::archive::import_named(
        &other.home,
        &archive2,
        None,
        Some("../up"),
        &Monitor::none(),
    );
    assert_eq!(code_of(e), ErrorCode::InvalidArgument);
    assert_eq!(snapshot::list(&other.home).unwrap().len(), 1);
}

const ENV_FEW_FDS_HOME: &str = "MICROSNAP_TEST_FEW_FDS_HOME";
/// More artifacts than the helper process may hold descriptors.
const MANY: usize = 300;
const FD_LIMIT: u64 = 128;

/// Reindex, the C ABI's list_dir and digest resolution open one artifact at
/// a time: a directory of more artifacts than the process may hold
/// descriptors still lists and indexes whole (an opened artifact holds its
/// upper open, so collecting them all would run out).
#[test]
fn a_directory_of_more_artifacts_than_descriptors_lists_and_reindexes() {
    let t = TestHome::new();
    t.sandbox_with("sb", MIB, &[(0, b"template")]);
    let template = t.snapshot("sb", "template");
    fs::remove_dir_all(&template.path).unwrap();
    for i in 0..MANY {
        let dir = t.home.snapshots_dir().join(format!("s-{i:04}"));
        fs::create_dir_all(&dir).unwrap();
        let mut m = template.manifest().expect("a v0.6.3 template").clone();
        m.labels = labels(&[("seq", &i.to_string())]);
        m.upper.size_bytes = MIB;
        fs::write(dir.join(MANIFEST_FILE), m.canonical_bytes()).unwrap();
        fs::File::create(dir.join(&m.upper.file))
            .unwrap()
            .set_len(MIB)
            .unwrap();
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "snapshot::helper_reindex_with_few_descriptors",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_FEW_FDS_HOME, t.home.root())
        .status()
        .unwrap();
    assert!(status.success(), "helper: {status}");
}

#[test]
#[ignore = "helper process"]
fn helper_reindex_with_few_descriptors() {
    let Some(root) = std::env::var_os(ENV_FEW_FDS_HOME) else {
        return;
    };
    let limit = libc::rlimit {
        rlim_cur: FD_LIMIT,
        rlim_max: FD_LIMIT,
    };
    // SAFETY: setrlimit with a valid, initialised struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let home = microsnap::home::Home::open(Path::new(&root)).unwrap();
    assert_eq!(snapshot::reindex(&home, None).unwrap() as usize, MANY);
    assert_eq!(snapshot::list(&home).unwrap().len(), MANY);
    // The C ABI's list_dir encodes them one at a time.
    let dir = home.snapshots_dir();
    let args =
        std::ffi::CString::new(format!(r#"{{"home":"{}"}}"#, root.to_string_lossy())).unwrap();
    let mut ctx = std::ptr::null_mut();
    let mut out = std::ptr::null_mut();
    assert_eq!(
        microsnap::ffi::msnap_context_open(&mut ctx, &mut out, args.as_ptr()),
        0
    );
    // SAFETY: a library string, freed once.
    unsafe { microsnap::ffi::msnap_string_free(out) };
    let args = std::ffi::CString::new(format!(r#"{{"dir":"{}"}}"#, dir.display())).unwrap();
    assert_eq!(
        microsnap::ffi::msnap_snapshot_list_dir(&mut out, ctx, args.as_ptr()),
        0
    );
    // SAFETY: a library string, read then freed once.
    let listing: serde_json::Value =
        serde_json::from_str(&unsafe { std::ffi::CStr::from_ptr(out) }.to_string_lossy()).unwrap();
    // SAFETY: as above.
    unsafe { microsnap::ffi::msnap_string_free(out) };
    assert_eq!(listing["artifacts"].as_array().unwrap().len(), MANY);
    assert_eq!(listing["skipped"].as_array().unwrap().len(), 0);
    assert_eq!(microsnap::ffi::msnap_context_free(ctx), 0);
}

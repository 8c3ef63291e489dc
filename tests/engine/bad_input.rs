//! Bad input gets the right error code and changes nothing: every failing
//! call here is bracketed by a fingerprint of the index, the sandbox records
//! and every file under the home, compared before and after.
use crate::support as engine_support;

use engine_support::*;
use microsnap::error::{ErrorCode, Result};
use microsnap::home::Home;
use microsnap::manifest::MANIFEST_FILE;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, CreateOptions};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// A home with one sandbox ("dev") and one good snapshot ("good", sealed).
fn populated() -> TestHome {
    let t = TestHome::new();
    t.sandbox_with("dev", 4 * MIB, &[(MIB, &pattern(10_000, 1))]);
    let opts = CreateOptions {
        record_integrity: true,
        ..named("good")
    };
    snapshot::create(&t.home, "dev", &opts, &Monitor::none()).unwrap();
    t
}

/// Assert `call` fails with `code` and leaves the home exactly as it was.
#[track_caller]
fn refused<T: std::fmt::Debug>(
    t: &TestHome,
    code: ErrorCode,
    what: &str,
    call: impl FnOnce() -> Result<T>,
) {
    let before = t.state(&[]);
    let result = call();
    match &result {
        Err(e) => assert_eq!(e.code(), code, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected {code}, got Ok({v:?})"),
    }
    assert_eq!(t.state(&[]), before, "{what} changed the home");
}

const BAD_NAMES: [&str; 8] = ["", "a/b", ".x", "~x", "..", ".", "sha256:abc", "a\nb"];

#[test]
fn path_like_or_empty_snapshot_names_are_invalid_argument() {
    let t = populated();
    for name in BAD_NAMES {
        refused(
            &t,
            ErrorCode::InvalidArgument,
            &format!("create {name:?}"),
            || snapshot::create(&t.home, "dev", &named(name), &Monitor::none()),
        );
        let forced = CreateOptions {
            force: true,
            ..named(name)
        };
        refused(
            &t,
            ErrorCode::InvalidArgument,
            &format!("force create {name:?}"),
            || snapshot::create(&t.home, "dev", &forced, &Monitor::none()),
        );
    }
    // Neither or both of name and path, an empty path, a staging-like path,
    // an empty label key.
    let both = CreateOptions {
        path: Some(t.outside("p")),
        ..named("n")
    };
    let empty_path = CreateOptions {
        path: Some("".into()),
        ..CreateOptions::default()
    };
    let staging_path = at_path(&t.outside(".microsnap-staging-snapshot-1"));
    let mut empty_label = named("n");
    empty_label.labels = BTreeMap::from([(String::new(), "v".to_string())]);
    for (what, opts) in [
        ("neither name nor path", CreateOptions::default()),
        ("both name and path", both),
        ("empty path", empty_path),
        ("staging-like path", staging_path),
        ("empty label key", empty_label),
    ] {
        refused(&t, ErrorCode::InvalidArgument, what, || {
            snapshot::create(&t.home, "dev", &opts, &Monitor::none())
        });
    }
    assert!(!t.outside("p").exists() && !t.outside(".microsnap-staging-snapshot-1").exists());
    // References that are neither names, digests nor paths.
    for reference in ["", "~x", ".x"] {
        refused(
            &t,
            ErrorCode::InvalidArgument,
            &format!("get {reference:?}"),
            || snapshot::get(&t.home, reference),
        );
        refused(
            &t,
            ErrorCode::InvalidArgument,
            &format!("remove {reference:?}"),
            || snapshot::remove(&t.home, reference, true),
        );
    }
}

#[test]
fn path_like_or_empty_sandbox_names_are_invalid_argument() {
    let t = populated();
    for name in BAD_NAMES {
        refused(
            &t,
            ErrorCode::InvalidArgument,
            &format!("sandbox {name:?}"),
            || {
                sandbox::create(
                    &t.home,
                    name,
                    &SandboxSource::Image {
                        image: IMAGE_REF.into(),
                        size_bytes: Some(MIB),
                        fstype: None,
                    },
                    &Monitor::none(),
                )
            },
        );
    }
    for (what, size) in [
        ("zero-size upper", 0),
        ("upper past the largest file length", 1 << 63),
        ("upper of u64::MAX bytes", u64::MAX),
    ] {
        refused(&t, ErrorCode::InvalidArgument, what, || {
            sandbox::create(
                &t.home,
                "sized",
                &SandboxSource::Image {
                    image: IMAGE_REF.into(),
                    size_bytes: Some(size),
                    fstype: None,
                },
                &Monitor::none(),
            )
        });
    }
    refused(
        &t,
        ErrorCode::InvalidArgument,
        "empty image reference",
        || {
            sandbox::create(
                &t.home,
                "noimage",
                &SandboxSource::Image {
                    image: String::new(),
                    size_bytes: Some(MIB),
                    fstype: None,
                },
                &Monitor::none(),
            )
        },
    );
}

#[test]
fn unknown_sandbox_is_sandbox_not_found_everywhere() {
    let t = populated();
    refused(&t, ErrorCode::SandboxNotFound, "snapshot of ghost", || {
        snapshot::create(&t.home, "ghost", &named("of-ghost"), &Monitor::none())
    });
    refused(
        &t,
        ErrorCode::SandboxNotFound,
        "snapshot of ghost at a path",
        || {
            snapshot::create(
                &t.home,
                "ghost",
                &at_path(&t.outside("of-ghost")),
                &Monitor::none(),
            )
        },
    );
    assert!(!t.outside("of-ghost").exists());
    assert_eq!(names_in(t.dir.path()), ["home"]);
    refused(&t, ErrorCode::SandboxNotFound, "get", || {
        sandbox::get(&t.home, "ghost")
    });
    refused(&t, ErrorCode::SandboxNotFound, "start", || {
        sandbox::start(&t.home, "ghost")
    });
    refused(&t, ErrorCode::SandboxNotFound, "stop", || {
        sandbox::stop(&t.home, "ghost")
    });
    refused(&t, ErrorCode::SandboxNotFound, "hold", || {
        sandbox::hold(&t.home, "ghost")
    });
    refused(&t, ErrorCode::SandboxNotFound, "remove", || {
        sandbox::remove(&t.home, "ghost")
    });
}

#[test]
fn unknown_snapshot_is_snapshot_not_found_everywhere() {
    let t = populated();
    let zero = format!("sha256:{}", "0".repeat(64));
    let missing_path = t.outside("nowhere").join("snap");
    let missing_path = missing_path.to_str().unwrap();
    for reference in ["ghost", zero.as_str(), missing_path] {
        refused(
            &t,
            ErrorCode::SnapshotNotFound,
            &format!("get {reference}"),
            || snapshot::get(&t.home, reference),
        );
        refused(
            &t,
            ErrorCode::SnapshotNotFound,
            &format!("open {reference}"),
            || snapshot::resolve(&t.home, reference),
        );
        refused(
            &t,
            ErrorCode::SnapshotNotFound,
            &format!("verify {reference}"),
            || snapshot::verify(&t.home, reference, &Monitor::none()),
        );
        refused(
            &t,
            ErrorCode::SnapshotNotFound,
            &format!("remove {reference}"),
            || snapshot::remove(&t.home, reference, false),
        );
        refused(
            &t,
            ErrorCode::SnapshotNotFound,
            &format!("forced remove {reference}"),
            || snapshot::remove(&t.home, reference, true),
        );
        refused(
            &t,
            ErrorCode::SnapshotNotFound,
            &format!("sandbox from {reference}"),
            || t.sandbox_from("kid", reference),
        );
    }
    refused(&t, ErrorCode::SnapshotNotFound, "open ghost", || {
        snapshot::open(&t.home, "ghost")
    });
    refused(
        &t,
        ErrorCode::SnapshotNotFound,
        "open_dir of a plain directory",
        || snapshot::open_dir(t.dir.path()),
    );
}

/// Put a broken copy of the good artifact in the home's snapshots dir.
fn broken(t: &TestHome, name: &str, breakage: impl FnOnce(&Path)) {
    let good = t.home.snapshots_dir().join("good");
    let dir = t.home.snapshots_dir().join(name);
    fs::create_dir(&dir).unwrap();
    for f in [MANIFEST_FILE, "upper.ext4"] {
        microsnap::sparse::copy_sparse(&good.join(f), &dir.join(f), &Monitor::none()).unwrap();
    }
    breakage(&dir);
}

#[test]
fn broken_artifacts_are_refused_by_every_reader_without_changes() {
    let t = populated();
    broken(&t, "garbled", |d| {
        fs::write(d.join(MANIFEST_FILE), b"{\"schema\":1,").unwrap()
    });
    broken(&t, "unknown-field", |d| {
        let text = fs::read_to_string(d.join(MANIFEST_FILE)).unwrap();
        fs::write(
            d.join(MANIFEST_FILE),
            text.replacen('{', "{\"extra\":1,", 1),
        )
        .unwrap();
    });
    broken(&t, "escaping-upper", |d| {
        let text = fs::read_to_string(d.join(MANIFEST_FILE)).unwrap();
        fs::write(
            d.join(MANIFEST_FILE),
            text.replace("\"upper.ext4\"", "\"../good/upper.ext4\""),
        )
        .unwrap();
    });
    broken(&t, "short-upper", |d| {
        fs::OpenOptions::new()
            .write(true)
            .open(d.join("upper.ext4"))
            .unwrap()
            .set_len(MIB)
            .unwrap();
    });
    broken(&t, "no-upper", |d| {
        fs::remove_file(d.join("upper.ext4")).unwrap()
    });
    let cases = [
        ("garbled", ErrorCode::InvalidManifest),
        ("unknown-field", ErrorCode::InvalidManifest),
        ("escaping-upper", ErrorCode::InvalidManifest),
        ("short-upper", ErrorCode::IntegrityMismatch),
        ("no-upper", ErrorCode::InvalidManifest),
    ];
    for (name, code) in cases {
        refused(&t, code, &format!("open {name}"), || {
            snapshot::open(&t.home, name)
        });
        refused(&t, code, &format!("get {name}"), || {
            snapshot::get(&t.home, name)
        });
        refused(&t, code, &format!("verify {name}"), || {
            snapshot::verify(&t.home, name, &Monitor::none())
        });
        refused(&t, code, &format!("sandbox from {name}"), || {
            t.sandbox_from("kid", name)
        });
        // Creating over it without force is already_exists.
        refused(
            &t,
            ErrorCode::AlreadyExists,
            &format!("create over {name}"),
            || snapshot::create(&t.home, "dev", &named(name), &Monitor::none()),
        );
    }
    // The good artifact still verifies, and listing reports the broken ones.
    assert_eq!(
        snapshot::verify(&t.home, "good", &Monitor::none())
            .unwrap()
            .upper
            .kind,
        "verified"
    );
    let listing = snapshot::list_dir(&t.home.snapshots_dir()).unwrap();
    assert_eq!(listing.artifacts.len(), 1);
    assert_eq!(listing.skipped.len(), cases.len());
    // Reindex indexes only the good one.
    assert_eq!(snapshot::reindex(&t.home, None).unwrap(), 1);
    // A broken artifact can always be removed (it has no children).
    snapshot::remove(&t.home, "garbled", false).unwrap();
    assert!(!t.home.snapshots_dir().join("garbled").exists());
}

#[test]
fn a_tampered_upper_is_integrity_mismatch_and_changes_nothing() {
    let t = populated();
    let good = snapshot::open(&t.home, "good").unwrap();
    flip_byte(&good.upper_path(), MIB + 3);
    refused(&t, ErrorCode::IntegrityMismatch, "verify", || {
        snapshot::verify(&t.home, "good", &Monitor::none())
    });
    refused(&t, ErrorCode::IntegrityMismatch, "sandbox from", || {
        t.sandbox_from("kid", "good")
    });
    refused(
        &t,
        ErrorCode::IntegrityMismatch,
        "sandbox from digest",
        || t.sandbox_from("kid", &good.digest),
    );
}

#[test]
fn an_unusable_home_is_refused() {
    let t = tempfile::tempdir().unwrap();
    expect_code(Home::open(Path::new("")), ErrorCode::InvalidArgument);

    let file = t.path().join("a-file");
    fs::write(&file, b"not a home").unwrap();
    expect_code(Home::open(&file), ErrorCode::Io);
    expect_code(Home::open(&file.join("home")), ErrorCode::Io);
    assert_eq!(fs::read(&file).unwrap(), b"not a home");

    // A home whose snapshots directory is a file cannot be opened.
    let root = t.path().join("blocked");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("snapshots"), b"in the way").unwrap();
    expect_code(Home::open(&root), ErrorCode::Io);
    assert_eq!(fs::read(root.join("snapshots")).unwrap(), b"in the way");

    // A database that is not one.
    let root = t.path().join("bad-db");
    fs::create_dir(&root).unwrap();
    fs::write(root.join(microsnap::home::DB_FILE), vec![0x5a; 8192]).unwrap();
    expect_code(Home::open(&root), ErrorCode::Io);
    assert_eq!(
        fs::read(root.join(microsnap::home::DB_FILE)).unwrap(),
        vec![0x5a; 8192]
    );

    // An unreadable home: only meaningful when not root (root reads anyway).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let root = t.path().join("locked");
        Home::open(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o000)).unwrap();
        let r = Home::open(&root);
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        expect_code(r, ErrorCode::Io);
    } else {
        println!("note: running as root, the permission-denied home case is not observable");
    }
}

/// The "changes nothing" checks above are only as good as the fingerprint:
/// prove it sees each kind of change they guard against.
#[test]
fn the_home_fingerprint_sees_every_kind_of_change() {
    let t = populated();
    let good = snapshot::open(&t.home, "good").unwrap();
    let mut last = t.state(&[]);
    let mut changed = |what: &str| {
        let now = t.state(&[]);
        assert_ne!(now, last, "{what} went unnoticed");
        last = now;
    };
    flip_byte(&good.upper_path(), MIB + 1);
    changed("a changed upper byte");
    fs::write(good.path.join("extra"), b"x").unwrap();
    changed("a new file in an artifact");
    fs::write(t.home.tmp_dir().join("stray"), b"x").unwrap();
    changed("a new file in tmp");
    snapshot::remove(&t.home, "good", true).unwrap();
    changed("a removed artifact and row");
    sandbox::start(&t.home, "dev").unwrap().stop().unwrap();
    changed("a sandbox state change");
    // An index row alone (the artifact lives outside the home's tree).
    let outside = t.outside("o");
    snapshot::create(&t.home, "dev", &at_path(&outside), &Monitor::none()).unwrap();
    changed("a new index row");
}

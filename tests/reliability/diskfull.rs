//! Disk full and I/O errors: create and import onto a small tmpfs that runs
//! out of space fail with a clear `io` error and leave nothing behind; an
//! injected EIO at every fault point of create and import does the same.
//!
//! The tmpfs needs root and a kernel that lets us mount; where it cannot be
//! mounted the disk-full tests print why and skip.
use crate::support as reliability_support;

use microsnap::archive::{self, ExportOptions};
use microsnap::error::ErrorCode;
use microsnap::fuzz_targets;
use microsnap::home::Home;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
use microsnap::snapshot::{self, CreateOptions};
use reliability_support::*;
use std::path::PathBuf;
use std::process::Command;

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop.
struct SmallFs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl SmallFs {
    fn mount(size: &str) -> Result<SmallFs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount = dir.path().join("small");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallFs { _dir: dir, mount })
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn small_fs(test: &str) -> Option<SmallFs> {
    match SmallFs::mount("8m") {
        Ok(fs) => Some(fs),
        Err(why) => {
            println!("SKIP {test}: {why}");
            None
        }
    }
}

/// Nothing of a failed operation is left: no staging, no artifact, and the
/// index equals Reindex.
fn assert_clean(home: &Home, before: &Set) {
    let reopened = microsnap::open_home(home.root()).unwrap();
    let set = check_home(&reopened).unwrap_or_else(|why| panic!("{why}"));
    assert_eq!(&set, before, "the failed operation changed the snapshots");
    let staging: Vec<String> = names(&home.tmp_dir())
        .into_iter()
        .filter(|n| n.starts_with(microsnap::STAGING_PREFIX))
        .collect();
    assert!(staging.is_empty(), "{staging:?}");
}

#[test]
fn create_on_a_full_filesystem_fails_with_io_and_leaves_nothing() {
    let Some(fs) = small_fs("create_on_a_full_filesystem") else {
        return;
    };
    let home = microsnap::open_home(&fs.mount.join("home")).unwrap();
    fuzz_targets::write_test_image(&home.images_dir()).unwrap();
    new_sandbox(&home, "sb", 1); // 2 MiB of data in a 64 MiB sparse upper
                                 // Fill the upper to ~5 MiB of data: a copy cannot fit in what is left.
    let upper = home.sandboxes_dir().join("sb/upper.ext4");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&upper)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &pattern(7, 3 << 20), 32 << 20).unwrap();
    let before = indexed(&home);
    let e = snapshot::create(
        &home,
        "sb",
        &CreateOptions {
            name: Some("too-big".into()),
            record_integrity: true,
            ..Default::default()
        },
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    assert!(
        e.to_string().contains("No space left"),
        "the message says why: {e}"
    );
    assert_clean(&home, &before);
    // Space comes back, and with it the operation.
    f.set_len(0).unwrap();
    f.set_len(UPPER_SIZE).unwrap();
    snap(&home, "sb", "fits", Some(Algorithm::MerkleSha256V1));
}

#[test]
fn import_onto_a_full_filesystem_fails_with_io_and_leaves_nothing() {
    let Some(fs) = small_fs("import_onto_a_full_filesystem") else {
        return;
    };
    // The archive is built on the big disk: 4 sandboxes' worth of data.
    let big = tempfile::tempdir().unwrap();
    let src = microsnap::open_home(&big.path().join("src")).unwrap();
    fuzz_targets::write_test_image(&src.images_dir()).unwrap();
    new_sandbox(&src, "sb", 1);
    let upper = src.sandboxes_dir().join("sb/upper.ext4");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&upper)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &pattern(8, 10 << 20), 40 << 20).unwrap();
    snap(&src, "sb", "big", Some(Algorithm::MerkleSha256V1));
    let archive_path = big.path().join("big.tar.zst");
    archive::export(
        &src,
        "big",
        &archive_path,
        &ExportOptions::default(),
        &Monitor::none(),
    )
    .unwrap();

    let home = microsnap::open_home(&fs.mount.join("home")).unwrap();
    let before = indexed(&home);
    let e = archive::import(&home, &archive_path, None, &Monitor::none()).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    assert!(
        e.to_string().contains("No space left"),
        "the message says why: {e}"
    );
    assert_clean(&home, &before);
}

/// Child side: run one operation with `MICROSNAP_FAULT=<point>:1:io` set by
/// the parent; print the error code.
#[test]
fn io_fault_child() {
    let Some((op, root)) = child_request() else {
        return;
    };
    let home = microsnap::open_home(&root).unwrap();
    let m = Monitor::none();
    let r = match op.as_str() {
        "create" => snapshot::create(
            &home,
            "sb",
            &CreateOptions {
                name: Some("fresh".into()),
                record_integrity: true,
                ..Default::default()
            },
            &m,
        )
        .map(drop),
        "import" => archive::import(
            &home,
            &root.parent().unwrap().join("chain.tar.zst"),
            None,
            &m,
        )
        .map(drop),
        other => panic!("unknown op {other}"),
    };
    eprintln!(
        "RESULT {}",
        r.err()
            .map_or("ok".into(), |e| format!("{}: {e}", e.code()))
    );
    std::process::exit(0);
}

#[test]
fn injected_eio_at_every_point_fails_cleanly() {
    if child_request().is_some() {
        return;
    }
    let template = Template::build();
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(&template.archive, work.path().join("chain.tar.zst")).unwrap();
    let mut injected = 0;
    for (op, points) in [
        (
            "create",
            &[
                "sparse.copy_chunk",
                "snapshot.create.after_copy",
                "snapshot.create.after_manifest",
                "publish.before_rename",
                "publish.after_rename",
            ][..],
        ),
        (
            "import",
            &[
                "import.entry",
                "import.after_check",
                "import.before_publish",
                "publish.before_rename",
                "publish.after_rename",
                "import.before_index",
            ][..],
        ),
    ] {
        for point in points {
            let root = work.path().join(format!("{op}-{point}"));
            template.instantiate(&root);
            let before = indexed(&microsnap::open_home(&root).unwrap());
            let out = spawn_child(
                "diskfull::io_fault_child",
                op,
                &root,
                Some(&format!("{point}:1:io")),
            )
            .wait_with_output()
            .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let result = stderr
                .lines()
                .find_map(|l| l.strip_prefix("RESULT "))
                .unwrap_or_else(|| panic!("{op} {point}: no result: {stderr}"));
            assert!(
                result.starts_with("io: injected fault at"),
                "{op} {point}: {result}"
            );
            assert_clean(&microsnap::open_home(&root).unwrap(), &before);
            injected += 1;
        }
    }
    println!("io faults: {injected} injected EIO failures left nothing behind");
}

//! Sandboxes through the public engine API: created from an image (by ref and
//! by digest), from a snapshot (a private copy, integrity checked first) and
//! by adopting an upper (raw, qcow2); get, list, start, stop, remove; and the
//! lock that tells running from crashed, proved with a SIGKILLed process.
use crate::support as engine_support;

use engine_support::*;
use microsnap::error::ErrorCode;
use microsnap::home::Home;
use microsnap::manifest::DiskFormat;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource, SandboxState};
use microsnap::snapshot::{self, CreateOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn adopt(
    t: &TestHome,
    name: &str,
    upper: &Path,
    fstype: &str,
) -> microsnap::error::Result<sandbox::Sandbox> {
    sandbox::create(
        &t.home,
        name,
        &SandboxSource::Upper {
            path: upper.to_path_buf(),
            fstype: fstype.to_string(),
            image: IMAGE_REF.to_string(),
        },
        &Monitor::none(),
    )
}

fn from_image(t: &TestHome, name: &str, image: &str) -> microsnap::error::Result<sandbox::Sandbox> {
    sandbox::create(
        &t.home,
        name,
        &SandboxSource::Image {
            image: image.to_string(),
            size_bytes: Some(8 * MIB),
            fstype: None,
        },
        &Monitor::none(),
    )
}

#[test]
fn create_from_image_by_ref_and_by_digest_pins_the_image() {
    let t = TestHome::new();
    let by_ref = from_image(&t, "by-ref", IMAGE_REF).unwrap();
    assert_eq!(by_ref.image.reference, IMAGE_REF);
    assert_eq!(by_ref.image.manifest_digest, t.image_digest);
    assert_eq!(by_ref.state, SandboxState::Created);
    assert_eq!(by_ref.format, DiskFormat::Raw);
    assert_eq!(by_ref.fstype, "ext4");
    assert_eq!(by_ref.size_bytes, 8 * MIB);
    assert_eq!(by_ref.from_snapshot, None);
    assert_eq!(
        by_ref.upper_path,
        t.home.sandboxes_dir().join("by-ref").join("upper.ext4")
    );
    // A fresh upper is a hole of the asked size.
    let meta = std::fs::metadata(&by_ref.upper_path).unwrap();
    assert_eq!(meta.len(), 8 * MIB);
    assert!(microsnap::sparse::allocated_bytes(&by_ref.upper_path).unwrap() < 64 * 1024);

    let by_digest = from_image(&t, "by-digest", &t.image_digest).unwrap();
    assert_eq!(by_digest.image.manifest_digest, t.image_digest);
    // The digest resolves to the named entry of index.json.
    assert_eq!(by_digest.image.reference, IMAGE_REF);

    // Default size is 4 GiB, still sparse.
    let default = sandbox::create(
        &t.home,
        "default-size",
        &SandboxSource::Image {
            image: IMAGE_REF.into(),
            size_bytes: None,
            fstype: None,
        },
        &Monitor::none(),
    )
    .unwrap();
    assert_eq!(default.size_bytes, sandbox::DEFAULT_UPPER_SIZE);
    assert_eq!(
        std::fs::metadata(&default.upper_path).unwrap().len(),
        4 << 30
    );
    assert_eq!(staging_in(&t.home.tmp_dir()), Vec::<String>::new());
}

#[test]
fn create_from_a_missing_image_is_image_not_found_and_leaves_nothing() {
    let t = TestHome::new();
    let before = t.state(&[]);
    expect_code(from_image(&t, "x", "alpine:9.99"), ErrorCode::ImageNotFound);
    let missing = format!("sha256:{}", "0".repeat(64));
    expect_code(from_image(&t, "x", &missing), ErrorCode::ImageNotFound);
    assert_eq!(t.state(&[]), before);
    expect_code(sandbox::get(&t.home, "x"), ErrorCode::SandboxNotFound);
}

#[test]
fn create_twice_with_one_name_is_already_exists() {
    let t = TestHome::new();
    let first = t.sandbox_with("dup", 4 * MIB, &[(0, b"first")]);
    let before = t.state(&[]);
    expect_code(from_image(&t, "dup", IMAGE_REF), ErrorCode::AlreadyExists);
    assert_eq!(t.state(&[]), before);
    assert_eq!(read_at(&first.upper_path, 0, 5), b"first");
}

#[test]
fn sandbox_from_snapshot_is_a_private_copy_that_remembers_the_snapshot() {
    let t = TestHome::new();
    let data = pattern(300_000, 7);
    t.sandbox_with("origin", 16 * MIB, &[(MIB, &data)]);
    let opts = CreateOptions {
        record_integrity: true,
        ..named("base")
    };
    let art = snapshot::create(&t.home, "origin", &opts, &Monitor::none()).unwrap();

    // By name, by digest and by path: each a copy with the snapshot's image.
    let path_ref = art.path.to_string_lossy().into_owned();
    for (sb_name, reference) in [
        ("by-name", "base"),
        ("by-digest", art.digest.as_str()),
        ("by-path", &path_ref),
    ] {
        let sb = t.sandbox_from(sb_name, reference).unwrap();
        assert_eq!(
            sb.from_snapshot.as_deref(),
            Some(art.digest.as_str()),
            "{reference}"
        );
        assert_eq!(sb.image, *art.descriptor.image());
        assert_eq!(sb.size_bytes, 16 * MIB);
        assert_eq!(sb.state, SandboxState::Created);
        assert_eq!(read_at(&sb.upper_path, MIB, data.len()), data);
        assert_ne!(sb.upper_path, art.upper_path());
    }

    // Writing to the sandbox never reaches the snapshot.
    let sb = sandbox::get(&t.home, "by-name").unwrap();
    write_at(&sb.upper_path, MIB, b"changed by the sandbox");
    write_at(&sb.upper_path, 15 * MIB, b"new data in a hole");
    assert_eq!(read_at(&art.upper_path(), MIB, data.len()), data);
    assert_eq!(read_at(&art.upper_path(), 15 * MIB, 18), vec![0; 18]);
    let report = snapshot::verify(&t.home, "base", &Monitor::none()).unwrap();
    assert_eq!(report.upper.kind, "verified");
}

#[test]
fn a_tampered_snapshot_never_becomes_a_sandbox() {
    let t = TestHome::new();
    t.sandbox_with("origin", 8 * MIB, &[(4096, &pattern(8192, 3))]);
    let opts = CreateOptions {
        record_integrity: true,
        ..named("base")
    };
    let art = snapshot::create(&t.home, "origin", &opts, &Monitor::none()).unwrap();
    flip_byte(&art.upper_path(), 5000);
    let before = t.state(&[]);
    let msg = expect_code(
        t.sandbox_from("victim", "base"),
        ErrorCode::IntegrityMismatch,
    );
    assert!(
        msg.contains(&art.upper_spec().unwrap().integrity.as_ref().unwrap().digest),
        "{msg}"
    );
    assert_eq!(t.state(&[]), before);
    expect_code(sandbox::get(&t.home, "victim"), ErrorCode::SandboxNotFound);
    assert!(!t.home.sandboxes_dir().join("victim").exists());
    assert_eq!(staging_in(&t.home.tmp_dir()), Vec::<String>::new());
}

#[test]
fn adopt_a_raw_upper_copies_it() {
    let t = TestHome::new();
    let upper = t.outside("disk.img");
    let data = pattern(70_000, 11);
    sparse_file(&upper, 32 * MIB, &[(3 * MIB, &data)]);
    let sb = adopt(&t, "adopted", &upper, "ext4").unwrap();
    assert_eq!(sb.format, DiskFormat::Raw);
    assert_eq!(sb.fstype, "ext4");
    assert_eq!(sb.size_bytes, 32 * MIB);
    assert_eq!(sb.image.manifest_digest, t.image_digest);
    assert_eq!(sb.upper_path.file_name().unwrap(), "upper.ext4");
    assert_eq!(read_at(&sb.upper_path, 3 * MIB, data.len()), data);
    // A copy: changing the original changes nothing in the sandbox.
    write_at(&upper, 3 * MIB, b"XXXX");
    assert_eq!(read_at(&sb.upper_path, 3 * MIB, 4), data[..4]);

    // Another filesystem type gets its own extension.
    let xfs = adopt(&t, "xfs", &upper, "xfs").unwrap();
    assert_eq!(xfs.upper_path.file_name().unwrap(), "upper.xfs");
    assert_eq!(xfs.fstype, "xfs");
}

#[test]
fn adopt_a_hand_built_qcow2_and_refuse_one_with_a_backing_file() {
    let t = TestHome::new();
    let upper = t.outside("disk.qcow2");
    std::fs::write(&upper, qcow2_image(1 << 30, None)).unwrap();
    let sb = adopt(&t, "q", &upper, "ext4").unwrap();
    assert_eq!(sb.format, DiskFormat::Qcow2);
    assert_eq!(sb.upper_path.file_name().unwrap(), "upper.qcow2");
    assert_eq!(
        std::fs::read(&sb.upper_path).unwrap(),
        std::fs::read(&upper).unwrap()
    );

    let backed = t.outside("backed.qcow2");
    std::fs::write(&backed, qcow2_image(1 << 30, Some("/etc/passwd"))).unwrap();
    let before = t.state(&[]);
    let msg = expect_code(adopt(&t, "backed", &backed, "ext4"), ErrorCode::Unsupported);
    assert!(msg.contains("backing file"), "{msg}");
    assert_eq!(t.state(&[]), before);
}

#[test]
fn adopt_qcow2_images_made_by_qemu_img() {
    if !tool_available("qemu-img") {
        println!("SKIP adopt_qcow2_images_made_by_qemu_img: qemu-img is not installed");
        return;
    }
    let t = TestHome::new();
    let plain = t.outside("plain.qcow2");
    let run = |args: &[&str]| {
        let out = Command::new("qemu-img").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "qemu-img {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        plain.to_str().unwrap(),
        "64M",
    ]);
    let sb = adopt(&t, "plain", &plain, "ext4").unwrap();
    assert_eq!(sb.format, DiskFormat::Qcow2);
    let snap = t.snapshot("plain", "plain-snap");
    assert_eq!(snap.descriptor.disk_format().unwrap(), DiskFormat::Qcow2);
    assert_eq!(snap.upper_spec().unwrap().file, "upper.qcow2");
    snapshot::open(&t.home, "plain-snap").unwrap();

    let base = t.outside("base.raw");
    sparse_file(&base, MIB, &[]);
    let overlay = t.outside("overlay.qcow2");
    run(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        base.to_str().unwrap(),
        overlay.to_str().unwrap(),
    ]);
    let msg = expect_code(
        adopt(&t, "overlay", &overlay, "ext4"),
        ErrorCode::Unsupported,
    );
    assert!(
        msg.contains("base.raw"),
        "the message names the backing file: {msg}"
    );
    expect_code(sandbox::get(&t.home, "overlay"), ErrorCode::SandboxNotFound);
}

#[test]
fn adopt_refuses_a_missing_upper_a_directory_and_an_empty_fstype() {
    let t = TestHome::new();
    let before = t.state(&[]);
    expect_code(
        adopt(&t, "a", &t.outside("nope.img"), "ext4"),
        ErrorCode::Io,
    );
    expect_code(
        adopt(&t, "a", t.dir.path(), "ext4"),
        ErrorCode::InvalidArgument,
    );
    let upper = t.outside("ok.img");
    sparse_file(&upper, MIB, &[]);
    expect_code(adopt(&t, "a", &upper, ""), ErrorCode::InvalidArgument);
    let image_missing = sandbox::create(
        &t.home,
        "a",
        &SandboxSource::Upper {
            path: upper.clone(),
            fstype: "ext4".into(),
            image: "busybox:1".into(),
        },
        &Monitor::none(),
    );
    expect_code(image_missing, ErrorCode::ImageNotFound);
    // The upper itself must be untouched (still there, 1 MiB).
    assert_eq!(std::fs::metadata(&upper).unwrap().len(), MIB);
    assert_eq!(t.state(&[]), before);
}

#[test]
fn lifecycle_get_list_start_stop_remove() {
    let t = TestHome::new();
    t.sandbox("b", MIB);
    t.sandbox("a", MIB);
    let names: Vec<String> = sandbox::list(&t.home)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["a", "b"]);

    let running = sandbox::start(&t.home, "a").unwrap();
    assert_eq!(running.name(), "a");
    assert_eq!(
        sandbox::get(&t.home, "a").unwrap().state,
        SandboxState::Running
    );
    assert_eq!(running.info().unwrap().state, SandboxState::Running);
    let states: Vec<SandboxState> = sandbox::list(&t.home)
        .unwrap()
        .into_iter()
        .map(|s| s.state)
        .collect();
    assert_eq!(states, [SandboxState::Running, SandboxState::Created]);

    // Only one holder at a time; removing or holding a running sandbox is refused.
    expect_code(sandbox::start(&t.home, "a"), ErrorCode::SandboxRunning);
    expect_code(sandbox::hold(&t.home, "a"), ErrorCode::SandboxRunning);
    expect_code(sandbox::stop(&t.home, "a"), ErrorCode::SandboxRunning);
    let dir_a = t.home.sandboxes_dir().join("a");
    let before = t.state(&[]);
    expect_code(sandbox::remove(&t.home, "a"), ErrorCode::SandboxRunning);
    assert_eq!(t.state(&[]), before);
    assert!(dir_a.join("upper.ext4").is_file());

    running.stop().unwrap();
    assert_eq!(
        sandbox::get(&t.home, "a").unwrap().state,
        SandboxState::Stopped
    );
    // Restart after stop works.
    sandbox::start(&t.home, "a").unwrap().stop().unwrap();

    sandbox::remove(&t.home, "a").unwrap();
    expect_code(sandbox::get(&t.home, "a"), ErrorCode::SandboxNotFound);
    assert!(!dir_a.exists());
    assert_eq!(sandbox::list(&t.home).unwrap().len(), 1);
    assert_eq!(staging_in(&t.home.tmp_dir()), Vec::<String>::new());
    expect_code(sandbox::remove(&t.home, "a"), ErrorCode::SandboxNotFound);
    // The name is free again.
    t.sandbox("a", MIB);
}

#[test]
fn a_dropped_handle_reads_as_crashed_and_stop_clears_it() {
    let t = TestHome::new();
    t.sandbox("s", MIB);
    drop(sandbox::start(&t.home, "s").unwrap());
    assert_eq!(
        sandbox::get(&t.home, "s").unwrap().state,
        SandboxState::Crashed
    );
    let stopped = sandbox::stop(&t.home, "s").unwrap();
    assert_eq!(stopped.state, SandboxState::Stopped);
    // A crashed sandbox can be started again.
    drop(sandbox::start(&t.home, "s").unwrap());
    sandbox::start(&t.home, "s").unwrap().stop().unwrap();
    assert_eq!(
        sandbox::get(&t.home, "s").unwrap().state,
        SandboxState::Stopped
    );
}

const HELPER_HOME: &str = "MICROSNAP_TEST_HELPER_HOME";
const HELPER_SANDBOX: &str = "MICROSNAP_TEST_HELPER_SANDBOX";
const STARTED: &str = "HELPER-STARTED";

/// Not a test of its own: `a_sigkilled_holder_reads_as_crashed` re-executes
/// this binary to run it in a separate process that it then kills.
#[test]
#[ignore = "helper process, run by a_sigkilled_holder_reads_as_crashed"]
fn helper_start_sandbox_then_sleep() {
    let (Some(root), Some(name)) = (
        std::env::var_os(HELPER_HOME),
        std::env::var(HELPER_SANDBOX).ok(),
    ) else {
        println!("helper only: run by a_sigkilled_holder_reads_as_crashed");
        return;
    };
    let home = Home::open(Path::new(&root)).unwrap();
    let _running = sandbox::start(&home, &name).unwrap();
    println!("{STARTED}");
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

#[test]
fn a_sigkilled_holder_reads_as_crashed_and_can_be_snapshotted() {
    let t = TestHome::new();
    t.sandbox_with("victim", 4 * MIB, &[(0, b"state before the crash")]);
    let root: PathBuf = t.home.root().to_path_buf();
    let mut helper = spawn_helper(
        "sandbox::helper_start_sandbox_then_sleep",
        &[
            (HELPER_HOME, root.to_str().unwrap()),
            (HELPER_SANDBOX, "victim"),
        ],
    );
    helper.wait_for(STARTED);

    // Another process holds it: running, and everything that needs it still is refused.
    assert_eq!(
        sandbox::get(&t.home, "victim").unwrap().state,
        SandboxState::Running
    );
    expect_code(sandbox::start(&t.home, "victim"), ErrorCode::SandboxRunning);
    expect_code(
        snapshot::create(&t.home, "victim", &named("too-early"), &Monitor::none()),
        ErrorCode::SandboxRunning,
    );
    expect_code(
        sandbox::remove(&t.home, "victim"),
        ErrorCode::SandboxRunning,
    );
    assert!(!t.home.snapshots_dir().join("too-early").exists());

    helper.kill9();
    assert_eq!(
        sandbox::get(&t.home, "victim").unwrap().state,
        SandboxState::Crashed
    );
    // A fresh Home (as a new process would open it) agrees.
    let reopened = Home::open(&root).unwrap();
    assert_eq!(
        sandbox::get(&reopened, "victim").unwrap().state,
        SandboxState::Crashed
    );

    let art = t.snapshot("victim", "after-crash");
    assert_eq!(art.descriptor.source_sandbox(), Some("victim"));
    assert_eq!(read_at(&art.upper_path(), 0, 22), b"state before the crash");
    // Snapshotting does not change the recorded state.
    assert_eq!(
        sandbox::get(&t.home, "victim").unwrap().state,
        SandboxState::Crashed
    );
    sandbox::remove(&t.home, "victim").unwrap();
}

/// flock locks belong to the open file description, which a child process
/// forked by another thread shares until it execs. Closing our descriptor
/// alone would then leave the lock held for a moment after stop: a host
/// that spawns processes (Go, Python) would see a stopped sandbox still
/// running. Stop and drop must release the lock itself.
#[test]
fn stop_releases_the_lock_while_other_threads_spawn_processes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    /// Stops the spawner threads however the loop below ends.
    struct SetOnDrop<'a>(&'a AtomicBool);
    impl Drop for SetOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let t = TestHome::new();
    t.sandbox("s", MIB);
    let done = AtomicBool::new(false);
    let mut failures = Vec::new();
    std::thread::scope(|scope| {
        let _stop_spawners = SetOnDrop(&done);
        for _ in 0..2 {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let _ = Command::new("true").status();
                }
            });
        }
        for round in 0..40 {
            let step = |what: &str, r: microsnap::error::Result<()>, failures: &mut Vec<String>| {
                if let Err(e) = r {
                    failures.push(format!("round {round}: {what}: {e}"));
                }
            };
            step(
                "start",
                sandbox::start(&t.home, "s").and_then(|r| r.stop()),
                &mut failures,
            );
            step(
                "hold after stop",
                sandbox::hold(&t.home, "s").map(|_| ()),
                &mut failures,
            );
            step(
                "start again",
                sandbox::start(&t.home, "s").map(drop),
                &mut failures,
            );
            match sandbox::get(&t.home, "s") {
                Ok(sb) if sb.state == SandboxState::Crashed => {}
                other => failures.push(format!("round {round}: after drop: {other:?}")),
            }
            step(
                "stop crashed",
                sandbox::stop(&t.home, "s").map(|_| ()),
                &mut failures,
            );
        }
    });
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[test]
fn a_sandbox_is_not_recorded_from_a_snapshot_removed_while_it_was_copied() {
    let t = TestHome::new();
    t.sandbox_with("src", 4 * MIB, &[(0, b"data")]);
    t.snapshot("src", "base");
    let removed = std::sync::atomic::AtomicBool::new(false);
    // Remove the snapshot once the copy is under way, as a prune that
    // planned before this sandbox existed would.
    let monitor = Monitor::new(
        None,
        Some(Box::new(|_: &str, _, _| {
            if !removed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                snapshot::remove(&t.home, "base", false).unwrap();
            }
            true
        })),
    );
    let source = SandboxSource::Snapshot {
        name_or_path: "base".into(),
    };
    let made = sandbox::create(&t.home, "fork", &source, &monitor);
    assert!(removed.load(std::sync::atomic::Ordering::SeqCst));
    expect_code(made, ErrorCode::SnapshotNotFound);
    // Nothing recorded, nothing left behind: the name is free again.
    expect_code(sandbox::get(&t.home, "fork"), ErrorCode::SandboxNotFound);
    assert!(!t.home.sandboxes_dir().join("fork").exists());
    assert!(sandbox::list(&t.home)
        .unwrap()
        .iter()
        .all(|s| s.name != "fork"));
}

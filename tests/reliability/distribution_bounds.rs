//! Push and pull are bounded (issue 15 point 5): peak RSS of a push and of
//! a pull of a 4 GiB sparse upper holding 320 MiB of data stays under
//! 128 MiB, and a push or pull cancelled from another thread mid-transfer
//! returns `Cancelled` within a second, leaving no manifest (push) or no
//! artifact (pull) behind.
//!
//! Memory is measured in a child process (this binary re-executed) that does
//! only the one operation. The figure asserted is the child's own
//! `VmHWM` (/proc/self/status): `getrusage(RUSAGE_SELF).ru_maxrss` is
//! printed too, but Linux carries the spawning process's high-water mark
//! into it at exec (the child is spawned sharing the parent's memory, and
//! `ru_maxrss` is kept across exec), so it says more about this test
//! harness than about the push.
use crate::support::*;

use microsnap::distribution::{self, PullOptions, PushOptions};
use microsnap::error::ErrorCode;
use microsnap::fuzz_targets::{self, IMAGE_REF};
use microsnap::progress::{CancelToken, Monitor};
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_TEST: &str = "distribution_bounds::bounds_child";
const LAYOUT_ENV: &str = "RELIABILITY_CHILD_LAYOUT";
const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const UPPER: u64 = 4 * GIB;
/// 80 extents of 4 MiB spread over the 4 GiB: 320 MiB of data.
const EXTENTS: u64 = 80;
const EXTENT: u64 = 4 * MIB;
const RSS_LIMIT_KIB: u64 = 128 * 1024;
const CANCEL_LIMIT: Duration = Duration::from_secs(1);

/// Child side: push `big` to, or pull it from, the layout; print
/// `rss <VmHWM KiB> <ru_maxrss KiB>`. A no-op test in a normal run.
#[test]
fn bounds_child() {
    let Some((op, root)) = child_request() else {
        return;
    };
    let layout = PathBuf::from(std::env::var_os(LAYOUT_ENV).expect("layout env"));
    let home = microsnap::open_home(&root).unwrap();
    let reference = format!("oci:{}:big", layout.display());
    let m = Monitor::none();
    let result = match op.as_str() {
        "push" => {
            distribution::push(&home, "big", &reference, &PushOptions::default(), &m).map(drop)
        }
        "pull" => {
            distribution::pull(&home, &reference, None, &PullOptions::default(), &m).map(drop)
        }
        other => panic!("unknown op {other}"),
    };
    if let Err(e) = result {
        eprintln!("child {op} failed: {e}");
        std::process::exit(3);
    }
    println!("rss {} {}", vm_hwm_kib(), ru_maxrss_kib());
    std::process::exit(0);
}

fn vm_hwm_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

fn ru_maxrss_kib() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one rusage into the struct we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_maxrss as u64
}

/// Peak RSS of `op` in a child: (VmHWM, ru_maxrss) in KiB.
fn measure(op: &str, home: &Path, layout: &Path) -> (u64, u64, Duration) {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            CHILD_TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD_OP_ENV, op)
        .env(CHILD_HOME_ENV, home)
        .env(LAYOUT_ENV, layout)
        .env_remove(microsnap::fault::FAULT_ENV)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{op} child failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rss "))
        .unwrap_or_else(|| panic!("{op}: no rss line in {stdout}"));
    let mut it = line.split(' ').map(|v| v.parse::<u64>().unwrap());
    (it.next().unwrap(), it.next().unwrap(), took)
}

/// Fill `buf` with data that compresses to about 3/4: each 64 KiB chunk is
/// half random bytes, half random bytes of a 16-letter alphabet.
fn fill(buf: &mut [u8], rng: &mut Rng) {
    for (i, word) in buf.chunks_mut(8).enumerate() {
        let v = rng.next().to_le_bytes();
        if (i * 8) % (64 << 10) < (32 << 10) {
            word.copy_from_slice(&v[..word.len()]);
        } else {
            for (w, b) in word.iter_mut().zip(v) {
                *w = b'a' + (b & 0x0f);
            }
        }
    }
}

/// A home with snapshot `big`: a 4 GiB sparse upper with 320 MiB of data.
fn big_home(root: &Path) -> microsnap::home::Home {
    let home = microsnap::open_home(root).unwrap();
    fuzz_targets::write_test_image(&home.images_dir()).unwrap();
    sandbox::create(
        &home,
        "sb",
        &SandboxSource::Image {
            image: IMAGE_REF.into(),
            size_bytes: Some(UPPER),
            fstype: None,
        },
        &Monitor::none(),
    )
    .unwrap();
    let upper = home.sandboxes_dir().join("sb/upper.ext4");
    let f = fs::OpenOptions::new().write(true).open(&upper).unwrap();
    let mut rng = Rng(0xb16);
    let mut buf = vec![0u8; EXTENT as usize];
    for i in 0..EXTENTS {
        fill(&mut buf, &mut rng);
        // Spread over the disk, not aligned to a chunk.
        f.write_all_at(&buf, i * (UPPER / EXTENTS) + 12 * 4096)
            .unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    snap(&home, "sb", "big", None);
    // The snapshot holds the upper now: free the sandbox's copy.
    sandbox::remove(&home, "sb").unwrap();
    home
}

fn manifests_in(layout: &Path) -> usize {
    match fs::read(layout.join("index.json")) {
        Ok(bytes) => serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["manifests"]
            .as_array()
            .map_or(0, Vec::len),
        Err(_) => 0,
    }
}

/// Run `op` on another thread with a cancel token; cancel once its
/// progress passes a quarter; returns (error, time from cancel to return,
/// bytes done when cancelled, total).
fn cancel_midway(
    phase: &'static str,
    op: impl FnOnce(&Monitor) -> microsnap::error::Result<()> + Send,
) -> (microsnap::error::Error, Duration, u64, u64) {
    let token = CancelToken::new();
    let done = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        let worker = {
            let (token, done, total) = (token.clone(), done.clone(), total.clone());
            scope.spawn(move || {
                let monitor = Monitor::new(
                    Some(token),
                    Some(Box::new(move |p: &str, d: u64, t: u64| {
                        if p == phase {
                            total.store(t, Ordering::SeqCst);
                            done.store(d, Ordering::SeqCst);
                        }
                        true
                    })),
                );
                let result = op(&monitor);
                (result, Instant::now())
            })
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let t = total.load(Ordering::SeqCst);
            if t > 0 && done.load(Ordering::SeqCst) * 4 >= t {
                break;
            }
            assert!(
                !worker.is_finished(),
                "{phase} finished before a quarter was reported"
            );
            assert!(Instant::now() < deadline, "{phase} made no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        let at = done.load(Ordering::SeqCst);
        let cancelled = Instant::now();
        token.cancel();
        let (result, returned) = worker.join().unwrap();
        let err = result.expect_err("a cancelled operation succeeded");
        (
            err,
            returned.duration_since(cancelled),
            at,
            total.load(Ordering::SeqCst),
        )
    })
}

#[test]
fn push_and_pull_of_a_4_gib_upper_stay_under_128_mib_and_cancel_within_a_second() {
    if child_request().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    let home = big_home(&source);
    let layout = dir.path().join("layout");

    let (push_hwm, push_maxrss, push_took) = measure("push", &source, &layout);
    let pulled = dir.path().join("pulled");
    drop(microsnap::open_home(&pulled).unwrap());
    let (pull_hwm, pull_maxrss, pull_took) = measure("pull", &pulled, &layout);
    println!(
        "bounds: 4 GiB upper, {} MiB of data: push peak RSS {} KiB (ru_maxrss {} KiB) in {push_took:.1?}, \
         pull peak RSS {} KiB (ru_maxrss {} KiB) in {pull_took:.1?}",
        EXTENTS * EXTENT / MIB,
        push_hwm,
        push_maxrss,
        pull_hwm,
        pull_maxrss
    );
    {
        let pulled_home = microsnap::open_home(&pulled).unwrap();
        let got = snapshot::get(&pulled_home, "big").unwrap();
        assert_eq!(got.digest, snapshot::get(&home, "big").unwrap().digest);
    }
    // The pulled copy was only needed to prove the pull completed.
    fs::remove_dir_all(&pulled).unwrap();
    assert!(
        push_hwm <= RSS_LIMIT_KIB,
        "push peak RSS {push_hwm} KiB > 128 MiB"
    );
    assert!(
        pull_hwm <= RSS_LIMIT_KIB,
        "pull peak RSS {pull_hwm} KiB > 128 MiB"
    );

    // Cancel a push mid-transfer: Cancelled, promptly, no manifest, no
    // temp file left in the layout and no staging left in the home.
    let cancelled_layout = dir.path().join("cancelled-layout");
    let reference = format!("oci:{}:big", cancelled_layout.display());
    let (err, latency, at, total) = cancel_midway("push", |m| {
        distribution::push(&home, "big", &reference, &PushOptions::default(), m).map(drop)
    });
    println!(
        "bounds: push cancelled at {} of {} MiB returned in {latency:.1?}",
        at / MIB,
        total / MIB
    );
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    assert!(
        latency <= CANCEL_LIMIT,
        "push took {latency:?} to stop after the cancel"
    );
    assert_eq!(
        manifests_in(&cancelled_layout),
        0,
        "a cancelled push published a manifest"
    );
    let leftovers: Vec<String> = names(&cancelled_layout.join("blobs/sha256"))
        .into_iter()
        .filter(|n| n.len() != 64)
        .collect();
    assert!(
        leftovers.is_empty(),
        "a cancelled push left {leftovers:?} in the layout"
    );
    assert!(
        staging_left(&home.tmp_dir()).is_empty(),
        "a cancelled push left staging: {:?}",
        staging_left(&home.tmp_dir())
    );

    // Cancel a pull mid-transfer: Cancelled, promptly, nothing in the home.
    let target = dir.path().join("target");
    let target_home = microsnap::open_home(&target).unwrap();
    let reference = format!("oci:{}:big", layout.display());
    let (err, latency, at, total) = cancel_midway("pull", |m| {
        distribution::pull(&target_home, &reference, None, &PullOptions::default(), m).map(drop)
    });
    println!(
        "bounds: pull cancelled at {} of {} MiB returned in {latency:.1?}",
        at / MIB,
        total / MIB
    );
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    assert!(
        latency <= CANCEL_LIMIT,
        "pull took {latency:?} to stop after the cancel"
    );
    assert!(
        names(&target_home.snapshots_dir()).is_empty(),
        "a cancelled pull left {:?} in snapshots/",
        names(&target_home.snapshots_dir())
    );
    assert!(
        snapshot::list(&target_home).unwrap().is_empty(),
        "a cancelled pull indexed something"
    );
    assert!(
        staging_left(&target_home.tmp_dir()).is_empty(),
        "a cancelled pull left staging: {:?}",
        staging_left(&target_home.tmp_dir())
    );
}

fn staging_left(tmp: &Path) -> Vec<String> {
    names(tmp)
        .into_iter()
        .filter(|n| n.starts_with(microsnap::STAGING_PREFIX))
        .collect()
}

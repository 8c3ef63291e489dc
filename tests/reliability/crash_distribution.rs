//! Crash consistency of push and pull (issue 15 point 3): a child process
//! (this test binary, re-executed) pushes a three-snapshot chain into an
//! `oci:` layout, or pulls it from one, and is SIGKILLed part-way: by the
//! parent after a random delay within the operation's measured duration,
//! or by a fault point chosen from the operation's trace. After each kill:
//!
//! - push: every manifest `index.json` names is present with its size and
//!   names only blobs that are present with their size; every
//!   `blobs/sha256/<hex>` hashes to its name; the home passes
//!   `check_home`; a re-run completes with the same manifest, and what it
//!   reports sending is exactly the blobs that were missing before it (so no
//!   pack already in the target is sent again).
//! - pull: the home passes `check_home` after reopening (no staging left,
//!   every entry of snapshots/ opens and verifies, the index is what a
//!   reindex finds), and only the chain's snapshots are there; a re-run
//!   completes and the head verifies, with its lineage.
//!
//! 20 kills per direction in a normal run, 200 with `MICROSNAP_STRESS=1`.
//! The registry transport is not covered here yet (it is not on this
//! branch); the checks are written against what `index.json` names so that
//! the registry variant only needs a different lister.
use crate::support::*;

use microsnap::distribution::chunk_index::ChunkIndex;
use microsnap::distribution::{self, PullOptions, PushOptions};
use microsnap::fuzz_targets;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
use microsnap::sandbox;
use microsnap::snapshot;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_TEST: &str = "crash_distribution::distribution_child";
/// Env var naming the layout the child pushes into or pulls from.
const LAYOUT_ENV: &str = "RELIABILITY_CHILD_LAYOUT";
const HEAD_TAG: &str = "head";

/// The root's upper: 64 MiB sparse, 8 MiB of data in 16 extents.
const ROOT_SHAPE: UpperShape = UpperShape {
    size: UPPER_SIZE,
    extents: 16,
    extent_len: 512 << 10,
};
/// Each child rewrites 8 extents of 256 KiB (2 MiB of new chunks).
const CHILD_SHAPE: UpperShape = UpperShape {
    size: UPPER_SIZE,
    extents: 8,
    extent_len: 256 << 10,
};

/// The child side: performs one push or pull and exits. Prints `ready`
/// once the home is open (the parent's timer starts there), and at the end
/// `done <µs> <report json>`. A no-op test in a normal run.
#[test]
fn distribution_child() {
    let Some((op, root)) = child_request() else {
        return;
    };
    let layout = PathBuf::from(std::env::var_os(LAYOUT_ENV).expect("layout env"));
    let home = microsnap::open_home(&root).unwrap();
    println!("ready");
    let m = Monitor::none();
    let started = Instant::now();
    let reference = format!("oci:{}:{HEAD_TAG}", layout.display());
    let report = match op.as_str() {
        "push" => distribution::push(
            &home,
            "head",
            &reference,
            &PushOptions {
                with_parents: true,
                ..Default::default()
            },
            &m,
        )
        .map(|r| serde_json::to_string(&r).unwrap()),
        "pull" => distribution::pull(
            &home,
            &reference,
            None,
            &PullOptions {
                with_parents: true,
                ..Default::default()
            },
            &m,
        )
        .map(|(_, r)| serde_json::to_string(&r).unwrap()),
        other => panic!("unknown op {other}"),
    };
    match report {
        Ok(json) => {
            println!("done {} {json}", started.elapsed().as_micros());
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("child {op} failed: {e}");
            std::process::exit(3);
        }
    }
}

/// What every iteration starts from.
struct Fixture {
    _dir: tempfile::TempDir,
    /// A home with snapshots `root` <- `mid` <- `head` (merkle integrity).
    source_home: PathBuf,
    /// An empty home (with the test image) that pulls go into.
    empty_home: PathBuf,
    /// `head` pushed with its parents; pulls read it, never write it.
    full_layout: PathBuf,
    /// root, mid, head.
    digests: Vec<String>,
    head_manifest: String,
}

impl Fixture {
    fn build() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let source_home = dir.path().join("source");
        let home = microsnap::open_home(&source_home).unwrap();
        fuzz_targets::write_test_image(&home.images_dir()).unwrap();
        new_sandbox_shaped(&home, "sb-root", 11, ROOT_SHAPE);
        let root = snap(&home, "sb-root", "root", Some(Algorithm::MerkleSha256V1));
        fork(&home, "root", "sb-mid");
        scribble_shaped(
            &home.sandboxes_dir().join("sb-mid/upper.ext4"),
            12,
            CHILD_SHAPE,
        );
        let mid = snap(&home, "sb-mid", "mid", Some(Algorithm::MerkleSha256V1));
        fork(&home, "mid", "sb-head");
        scribble_shaped(
            &home.sandboxes_dir().join("sb-head/upper.ext4"),
            13,
            CHILD_SHAPE,
        );
        let head = snap(&home, "sb-head", "head", Some(Algorithm::MerkleSha256V1));
        // The uppers are the snapshots' now: keep the copies per iteration small.
        for sb in ["sb-root", "sb-mid", "sb-head"] {
            sandbox::remove(&home, sb).unwrap();
        }
        let full_layout = dir.path().join("full-layout");
        let report = distribution::push(
            &home,
            "head",
            &format!("oci:{}:{HEAD_TAG}", full_layout.display()),
            &PushOptions {
                with_parents: true,
                ..Default::default()
            },
            &Monitor::none(),
        )
        .unwrap();
        assert_eq!(report.snapshots.len(), 3, "{report:?}");
        drop(home);
        let empty_home = dir.path().join("empty");
        let home = microsnap::open_home(&empty_home).unwrap();
        fuzz_targets::write_test_image(&home.images_dir()).unwrap();
        drop(home);
        Fixture {
            source_home,
            empty_home,
            full_layout,
            digests: vec![root, mid, head],
            head_manifest: report.manifest_digest,
            _dir: dir,
        }
    }
}

/// A fresh copy of the home at `from` at `dest`, indexed for its own paths
/// (as `Template::instantiate` does).
fn instantiate(from: &Path, dest: &Path) {
    copy_tree(from, dest);
    rusqlite::Connection::open(dest.join(microsnap::home::DB_FILE))
        .and_then(|c| c.execute("DELETE FROM snapshot_index", []))
        .unwrap();
    let home = microsnap::open_home(dest).unwrap();
    snapshot::reindex(&home, None).unwrap();
}

fn spawn(op: &str, home: &Path, layout: &Path, fault: Option<&str>) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_OP_ENV, op)
        .env(CHILD_HOME_ENV, home)
        .env(LAYOUT_ENV, layout)
        .env_remove(microsnap::fault::FAULT_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(f) = fault {
        cmd.env(microsnap::fault::FAULT_ENV, f);
    }
    cmd.spawn().unwrap()
}

/// How a child ended.
enum Outcome {
    /// Killed (by the timer or a fault point); where.
    Killed(String),
    /// Finished: the operation's duration and its report.
    Done(Duration, Value),
}

/// Wait for `child`, reading its output; `ready` already consumed or not.
fn finish(mut child: Child, out: &mut BufReader<std::process::ChildStdout>) -> (std::process::ExitStatus, String, String) {
    let mut stdout = String::new();
    out.read_to_string(&mut stdout).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (child.wait().unwrap(), stdout, stderr)
}

fn parse_done(op: &str, stdout: &str, stderr: &str) -> (Duration, Value) {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("done "))
        .unwrap_or_else(|| panic!("{op}: no report from the child: {stdout} {stderr}"));
    let (micros, json) = line.split_once(' ').unwrap();
    (
        Duration::from_micros(micros.parse().unwrap()),
        serde_json::from_str(json).unwrap(),
    )
}

/// Run `op` in a child; with `timer`, SIGKILL it that long after it is ready.
fn run(op: &str, home: &Path, layout: &Path, fault: Option<&str>, timer: Option<Duration>) -> Outcome {
    let mut child = spawn(op, home, layout, fault);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // The test harness prints its own lines first.
    let mut ready = false;
    let mut line = String::new();
    while !ready && out.read_line(&mut line).unwrap() > 0 {
        ready = line.trim() == "ready";
        line.clear();
    }
    if let (Some(delay), true) = (timer, ready) {
        std::thread::sleep(delay);
        // The child may have finished already: then this is a completion.
        let _ = child.kill();
    }
    let (status, stdout, stderr) = finish(child, &mut out);
    if std::os::unix::process::ExitStatusExt::signal(&status) == Some(9) {
        let at = match timer {
            Some(delay) => format!("timer@{}us", delay.as_micros()),
            None => stderr
                .lines()
                .find_map(|l| l.strip_prefix("microsnap fault: killed at "))
                .unwrap_or("unknown point")
                .to_string(),
        };
        return Outcome::Killed(at);
    }
    assert!(status.success(), "{op} failed without a kill: {stderr}");
    let (took, report) = parse_done(op, &stdout, &stderr);
    Outcome::Done(took, report)
}

/// One full traced run: the fault points reached in order, and how long
/// the operation itself takes.
fn trace(op: &str, home: &Path, layout: &Path, work: &Path) -> (Vec<String>, Duration, Value) {
    let file = work.join(format!("{op}.trace"));
    let outcome = run(op, home, layout, Some(&format!("trace:{}", file.display())), None);
    let Outcome::Done(took, report) = outcome else {
        panic!("{op}: the traced run was killed");
    };
    let points: Vec<String> = fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    (points, took, report)
}

// ---------------------------------------------------------------------------
// what a layout holds

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap_or(digest))
}

/// Blobs under their digest: `sha256:<hex>` -> size. Each must hash to its
/// name; temp files (any other name) are counted, not listed.
fn layout_blobs(layout: &Path) -> Result<(BTreeMap<String, u64>, usize), String> {
    let mut blobs = BTreeMap::new();
    let mut temps = 0;
    for name in names(&layout.join("blobs/sha256")) {
        let is_digest = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_digest {
            temps += 1;
            continue;
        }
        let bytes = fs::read(layout.join("blobs/sha256").join(&name)).map_err(|e| e.to_string())?;
        if sha256_hex(&bytes) != name {
            return Err(format!(
                "blob {name} ({} bytes) does not hash to its name: a half-written blob is visible",
                bytes.len()
            ));
        }
        blobs.insert(format!("sha256:{name}"), bytes.len() as u64);
    }
    Ok((blobs, temps))
}

/// The image manifests `index.json` names: (tag, digest, size).
fn layout_tags(layout: &Path) -> Result<Vec<(String, String, u64)>, String> {
    let path = layout.join("index.json");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("read index.json: {e}")),
    };
    let index: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("index.json does not parse ({e}): {}", String::from_utf8_lossy(&bytes)))?;
    let entries = index["manifests"]
        .as_array()
        .ok_or_else(|| format!("index.json has no manifests array: {index}"))?;
    entries
        .iter()
        .map(|m| {
            let tag = m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let digest = m["digest"].as_str().ok_or("an entry without digest")?.to_string();
            let size = m["size"].as_u64().ok_or("an entry without size")?;
            Ok((tag, digest, size))
        })
        .collect()
}

fn read_manifest(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&fs::read(blob_path(layout, digest)).unwrap()).unwrap()
}

/// No manifest names a missing or short blob; nothing under a digest is
/// half written. Returns the blobs present.
fn check_layout(layout: &Path) -> Result<BTreeMap<String, u64>, String> {
    if !layout.exists() {
        return Ok(BTreeMap::new());
    }
    let (blobs, _temps) = layout_blobs(layout)?;
    for (tag, digest, size) in layout_tags(layout)? {
        if blobs.get(&digest) != Some(&size) {
            return Err(format!(
                "tag {tag} names manifest {digest} ({size} bytes) but the layout has {:?}",
                blobs.get(&digest)
            ));
        }
        let manifest = read_manifest(layout, &digest);
        let mut named = vec![&manifest["config"]];
        named.extend(manifest["layers"].as_array().into_iter().flatten());
        for d in named {
            let (bd, bs) = (d["digest"].as_str().unwrap_or(""), d["size"].as_u64());
            if bs.is_none() || blobs.get(bd) != bs.as_ref() {
                return Err(format!(
                    "manifest {digest} (tag {tag}) names blob {bd} of {bs:?} bytes; the layout has {:?}",
                    blobs.get(bd)
                ));
            }
        }
    }
    Ok(blobs)
}

/// Pushed by the re-run: every blob it needed that was missing before, and
/// nothing else. `before` is what the layout held before the re-run.
fn check_rerun_sent_only_missing(
    layout: &Path,
    before: &BTreeMap<String, u64>,
    report: &Value,
) -> Result<(), String> {
    let tags = layout_tags(layout)?;
    let mut manifest_bytes = 0u64;
    let mut needed: BTreeMap<String, u64> = BTreeMap::new();
    let mut frames: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for pushed in report["snapshots"].as_array().unwrap() {
        let digest = pushed["manifest_digest"].as_str().unwrap();
        let ntags = pushed["tags"].as_array().unwrap().len() as u64;
        let (_, _, size) = tags
            .iter()
            .find(|(_, d, _)| d == digest)
            .ok_or_else(|| format!("pushed manifest {digest} is not in index.json"))?;
        manifest_bytes += size * ntags;
        let manifest = read_manifest(layout, digest);
        let mut named = vec![&manifest["config"]];
        named.extend(manifest["layers"].as_array().unwrap());
        for d in named {
            needed.insert(d["digest"].as_str().unwrap().to_string(), d["size"].as_u64().unwrap());
        }
        let index_digest = manifest["layers"][0]["digest"].as_str().unwrap();
        let index = ChunkIndex::decode(&fs::read(blob_path(layout, index_digest)).unwrap())
            .map_err(|e| format!("index {index_digest}: {e}"))?;
        for c in &index.chunks {
            frames
                .entry(index.packs[c.pack as usize].digest())
                .or_default()
                .insert(c.offset);
        }
    }
    let missing: BTreeMap<&String, &u64> = needed.iter().filter(|(d, _)| !before.contains_key(*d)).collect();
    let want_bytes = manifest_bytes + missing.values().copied().sum::<u64>();
    let want_chunks: u64 = missing
        .keys()
        .filter_map(|d| frames.get(*d))
        .map(|f| f.len() as u64)
        .sum();
    let resent: Vec<&String> = needed
        .keys()
        .filter(|d| before.contains_key(*d) && frames.contains_key(*d))
        .collect();
    let (bytes, chunks) = (
        report["bytes_uploaded"].as_u64().unwrap(),
        report["chunks_uploaded"].as_u64().unwrap(),
    );
    if bytes != want_bytes || chunks != want_chunks {
        return Err(format!(
            "the re-run sent {bytes} bytes / {chunks} chunks; the blobs missing before it are \
             {want_bytes} bytes (manifests included) / {want_chunks} chunks. Packs already \
             there before the re-run: {resent:?}; missing: {missing:?}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// the harness

#[derive(Clone, Copy, Debug)]
enum KillMode {
    /// SIGKILL from the parent, a random time after the child is ready.
    Timer,
    /// `MICROSNAP_FAULT=<point>:<n>` at a hit chosen from the trace.
    Point,
}

struct Stats {
    kills: u32,
    attempts: u32,
    completed: u32,
    places: BTreeMap<String, u32>,
}

fn kills_wanted() -> u32 {
    if stress() {
        200
    } else {
        20
    }
}

fn seed() -> u64 {
    std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xd157)
}

/// Kill `op` at random points until `kills_wanted` kills; `check` runs
/// after each attempt (killed or not) on the iteration's directory.
fn kill_loop(
    op: &str,
    trace: &[String],
    full_run: Duration,
    rng: &mut Rng,
    mut iteration: impl FnMut(u32, &mut dyn FnMut(&Path, &Path) -> Option<String>),
) -> Stats {
    let wanted = kills_wanted();
    let mut stats = Stats {
        kills: 0,
        attempts: 0,
        completed: 0,
        places: BTreeMap::new(),
    };
    while stats.kills < wanted {
        stats.attempts += 1;
        assert!(
            stats.attempts < wanted * 4,
            "{op}: only {} kills in {} attempts",
            stats.kills,
            stats.attempts
        );
        // Two timer kills for one fault-point kill: the timer reaches inside
        // the long stretches (compressing, copying) between points.
        let mode = if stats.attempts % 3 == 0 {
            KillMode::Point
        } else {
            KillMode::Timer
        };
        let (fault, timer) = match mode {
            KillMode::Point => {
                // A point first, then one of its hits: rare points (publish,
                // manifest) get as many kills as the per-chunk ones.
                let distinct: BTreeSet<&String> = trace.iter().collect();
                let name = *distinct.iter().nth(rng.below(distinct.len() as u64) as usize).unwrap();
                let hits = trace.iter().filter(|p| *p == name).count() as u64;
                let n = 1 + rng.below(hits);
                (Some(format!("{name}:{n}")), None)
            }
            KillMode::Timer => {
                let max = full_run.as_micros().max(1) as u64;
                (None, Some(Duration::from_micros(rng.below(max))))
            }
        };
        let mut killed_at = None;
        iteration(stats.attempts, &mut |home, layout| {
            killed_at = match run(op, home, layout, fault.as_deref(), timer) {
                Outcome::Killed(at) => Some(at),
                Outcome::Done(..) => None,
            };
            killed_at.clone()
        });
        match killed_at {
            Some(at) => {
                stats.kills += 1;
                let key = if at.starts_with("timer@") {
                    "timer".to_string()
                } else {
                    at
                };
                *stats.places.entry(key).or_default() += 1;
            }
            None => stats.completed += 1,
        }
    }
    stats
}

fn rerun(op: &str, home: &Path, layout: &Path) -> Value {
    match run(op, home, layout, None, None) {
        Outcome::Done(_, report) => report,
        Outcome::Killed(at) => panic!("{op}: the re-run died at {at}"),
    }
}

#[test]
fn push_survives_sigkill_and_resumes_without_resending_packs() {
    if child_request().is_some() {
        return;
    }
    let seed = seed();
    let fixture = Fixture::build();
    let work = tempfile::tempdir().unwrap();
    let (trace_home, trace_layout) = (work.path().join("trace-home"), work.path().join("trace-layout"));
    instantiate(&fixture.source_home, &trace_home);
    let (points, full_run, report) = trace("push", &trace_home, &trace_layout, work.path());
    assert_eq!(report["manifest_digest"], fixture.head_manifest.as_str());
    assert!(!points.is_empty(), "push reached no fault point");
    println!(
        "push crash harness: seed {seed}, {} kills wanted, a push takes {full_run:.1?}, {} fault point hits",
        kills_wanted(),
        points.len()
    );
    let mut rng = Rng(seed);
    let mut leftover_temps = 0usize;
    let started = Instant::now();
    let stats = kill_loop("push", &points, full_run, &mut rng, |attempt, run_once| {
        let dir = work.path().join(format!("push-{attempt}"));
        let (root, layout) = (dir.join("home"), dir.join("layout"));
        instantiate(&fixture.source_home, &root);
        let killed_at = run_once(&root, &layout);
        let at = killed_at.as_deref().unwrap_or("no kill");
        let fail = |why: String| -> ! {
            panic!("push: invariant broken after {at} (attempt {attempt}, seed {seed}): {why}")
        };
        let before = check_layout(&layout).unwrap_or_else(|why| fail(why));
        leftover_temps += layout_blobs(&layout).map(|(_, t)| t).unwrap_or(0);
        {
            let home = microsnap::open_home(&root).unwrap();
            let set = check_home(&home).unwrap_or_else(|why| fail(why));
            let digests: Vec<&String> = set.iter().map(|(_, d)| d).collect();
            for d in &fixture.digests {
                if !digests.contains(&d) {
                    fail(format!("snapshot {d} is no longer indexed: {set:?}"));
                }
            }
        }
        let report = rerun("push", &root, &layout);
        if report["manifest_digest"] != fixture.head_manifest.as_str() {
            fail(format!("the re-run pushed another manifest: {report}"));
        }
        check_layout(&layout).unwrap_or_else(|why| fail(format!("after the re-run: {why}")));
        let tags = layout_tags(&layout).unwrap();
        if !tags.iter().any(|(t, d, _)| t == HEAD_TAG && *d == fixture.head_manifest) {
            fail(format!("after the re-run the head tag is not the head's manifest: {tags:?}"));
        }
        check_rerun_sent_only_missing(&layout, &before, &report).unwrap_or_else(|why| fail(why));
        fs::remove_dir_all(&dir).unwrap();
    });
    println!(
        "push crash harness: {} kills survived in {} attempts ({} finished first) in {:.1?}; \
         kills by place: {:?}; temp files left in blobs/ by killed pushes: {leftover_temps}",
        stats.kills,
        stats.attempts,
        stats.completed,
        started.elapsed(),
        stats.places
    );
}

#[test]
fn pull_survives_sigkill_and_resumes_to_a_verified_chain() {
    if child_request().is_some() {
        return;
    }
    let seed = seed() ^ 0x9011;
    let fixture = Fixture::build();
    let work = tempfile::tempdir().unwrap();
    let trace_home = work.path().join("trace-home");
    instantiate(&fixture.empty_home, &trace_home);
    let (points, full_run, report) = trace("pull", &trace_home, &fixture.full_layout, work.path());
    assert_eq!(report["manifest_digest"], fixture.head_manifest.as_str());
    assert!(!points.is_empty(), "pull reached no fault point");
    println!(
        "pull crash harness: seed {seed}, {} kills wanted, a pull takes {full_run:.1?}, {} fault point hits",
        kills_wanted(),
        points.len()
    );
    let layout_before = check_layout(&fixture.full_layout).unwrap();
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut partial_chains = 0u32;
    let stats = kill_loop("pull", &points, full_run, &mut rng, |attempt, run_once| {
        let root = work.path().join(format!("pull-{attempt}"));
        instantiate(&fixture.empty_home, &root);
        let killed_at = run_once(&root, &fixture.full_layout);
        let at = killed_at.as_deref().unwrap_or("no kill");
        let fail = |why: String| -> ! {
            panic!("pull: invariant broken after {at} (attempt {attempt}, seed {seed}): {why}")
        };
        {
            let home = microsnap::open_home(&root).unwrap();
            let set = check_home(&home).unwrap_or_else(|why| fail(why));
            for (path, digest) in &set {
                if !fixture.digests.contains(digest) {
                    fail(format!("{} holds {digest}, which is not of the chain", path.display()));
                }
            }
            // Every directory in snapshots/ is indexed (check_home verified each).
            let on_disk = names(&home.snapshots_dir()).len();
            if on_disk != set.len() {
                fail(format!("{on_disk} entries in snapshots/ but {} indexed: {set:?}", set.len()));
            }
            if !set.is_empty() && set.len() < 3 {
                partial_chains += 1;
            }
        }
        let report = rerun("pull", &root, &fixture.full_layout);
        if report["snapshot_digest"] != fixture.digests[2].as_str() {
            fail(format!("the re-run pulled another snapshot: {report}"));
        }
        let home = microsnap::open_home(&root).unwrap();
        snapshot::verify(&home, HEAD_TAG, &Monitor::none())
            .unwrap_or_else(|e| fail(format!("the re-pulled head does not verify: {e}")));
        let head = snapshot::get(&home, HEAD_TAG).unwrap();
        if head.digest != fixture.digests[2] || head.parent_digest.as_ref() != Some(&fixture.digests[1]) {
            fail(format!("the re-pulled head is {head:?}"));
        }
        check_home(&home).unwrap_or_else(|why| fail(format!("after the re-run: {why}")));
        drop(home);
        fs::remove_dir_all(&root).unwrap();
    });
    // Pull never writes to its source.
    assert_eq!(check_layout(&fixture.full_layout).unwrap(), layout_before);
    println!(
        "pull crash harness: {} kills survived in {} attempts ({} finished first, {partial_chains} \
         left part of the chain) in {:.1?}; kills by place: {:?}",
        stats.kills,
        stats.attempts,
        stats.completed,
        started.elapsed(),
        stats.places
    );
}

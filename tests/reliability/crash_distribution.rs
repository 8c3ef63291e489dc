//! Crash consistency of push and pull (issue 15 point 3): a child process
//! (this test binary, re-executed) pushes a three-snapshot chain into an
//! `oci:` layout or a real registry (docker-registry on 127.0.0.1, plain
//! HTTP), or pulls it from one, and is SIGKILLed part-way: by the
//! parent after a random delay within the operation's measured duration,
//! or by a fault point chosen from the operation's trace. After each kill:
//!
//! - push: every manifest the target names (`index.json`; the registry's
//!   tags, over HTTP) is present with its size and names only blobs that are
//!   present with their size; every stored blob (`blobs/sha256/<hex>`; the
//!   registry's storage) hashes to its name; the home passes
//!   `check_home`; a re-run completes with the same manifest, and what it
//!   reports sending is exactly the blobs that were missing before it (so no
//!   pack already in the target is sent again).
//! - pull: the home passes `check_home` after reopening (no staging left,
//!   every entry of snapshots/ opens and verifies, the index is what a
//!   reindex finds), and only the chain's snapshots are there; a re-run
//!   completes and the head verifies, with its lineage.
//!
//! 20 kills per direction and transport in a normal run, 200 with
//! `MICROSNAP_STRESS=1`. The pushed blobs are deterministic, so what a
//! re-run had to send is worked out from the fixture's own layout.
use crate::registry_support::registry::{Config, TestRegistry, MANIFEST_ACCEPT};
use crate::support::*;

use microsnap::distribution::chunk_index::ChunkIndex;
use microsnap::distribution::{self, PullOptions, PushOptions, RemoteOptions};
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
/// Env vars naming the reference the child pushes to or pulls from, and
/// whether it is a plain-HTTP registry.
const REFERENCE_ENV: &str = "RELIABILITY_CHILD_REFERENCE";
const PLAIN_HTTP_ENV: &str = "RELIABILITY_CHILD_PLAIN_HTTP";
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
    let reference = std::env::var(REFERENCE_ENV).expect("reference env");
    let remote = RemoteOptions {
        plain_http: std::env::var_os(PLAIN_HTTP_ENV).is_some(),
        ..Default::default()
    };
    let home = microsnap::open_home(&root).unwrap();
    println!("ready");
    let m = Monitor::none();
    let started = Instant::now();
    let report = match op.as_str() {
        "push" => distribution::push(
            &home,
            "head",
            &reference,
            &PushOptions {
                with_parents: true,
                remote: remote.clone(),
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
                remote,
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

/// Where a push goes or a pull comes from.
enum Target<'r> {
    Layout(PathBuf),
    Registry {
        registry: &'r TestRegistry,
        repo: String,
    },
}

impl Target<'_> {
    fn reference(&self) -> String {
        match self {
            Target::Layout(dir) => format!("oci:{}:{HEAD_TAG}", dir.display()),
            Target::Registry { registry, repo } => {
                registry.reference(&format!("{repo}:{HEAD_TAG}"))
            }
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Target::Layout(_) => "oci",
            Target::Registry { .. } => "registry",
        }
    }

    /// The manifests the target names: (tag, digest, manifest bytes).
    fn tagged(&self) -> Result<Vec<(String, String, Vec<u8>)>, String> {
        match self {
            Target::Layout(dir) => layout_tags(dir)?
                .into_iter()
                .map(|(tag, digest, size)| {
                    let bytes = fs::read(blob_path(dir, &digest)).map_err(|e| {
                        format!(
                            "tag {tag} names manifest {digest}, which is not in the layout: {e}"
                        )
                    })?;
                    if bytes.len() as u64 != size {
                        return Err(format!(
                            "tag {tag}: manifest {digest} is {} bytes, index.json says {size}",
                            bytes.len()
                        ));
                    }
                    Ok((tag, digest, bytes))
                })
                .collect(),
            Target::Registry { .. } => Ok(self
                .registry_tags()?
                .into_iter()
                .filter_map(|(tag, bytes)| {
                    let bytes = bytes?;
                    Some((tag, format!("sha256:{}", sha256_hex(&bytes)), bytes))
                })
                .collect()),
        }
    }

    /// The registry's tags and the manifest each serves; `None` for a tag
    /// the tag list names but whose manifest is unknown (a tag directory
    /// whose link a killed PUT never got to write: it names nothing, and a
    /// pull of it is `snapshot_not_found`).
    fn registry_tags(&self) -> Result<Vec<(String, Option<Vec<u8>>)>, String> {
        let Target::Registry { registry, repo } = self else {
            return Ok(Vec::new());
        };
        registry
            .tags(repo)
            .into_iter()
            .map(|tag| {
                let r = registry.get_with(
                    &format!("/v2/{repo}/manifests/{tag}"),
                    &[("Accept", MANIFEST_ACCEPT)],
                );
                match r.status {
                    200 => Ok((tag, Some(r.body))),
                    404 => Ok((tag, None)),
                    s => Err(format!("GET manifest {repo}:{tag}: {s} {}", r.text())),
                }
            })
            .collect()
    }

    /// Tags that name no manifest (see [`Self::registry_tags`]).
    fn dangling_tags(&self) -> Result<usize, String> {
        Ok(self
            .registry_tags()?
            .iter()
            .filter(|(_, b)| b.is_none())
            .count())
    }

    /// The size of blob `digest` if the target holds it (for the registry:
    /// linked into the repository, as the engine's HEAD sees it).
    fn blob_size(&self, digest: &str) -> Result<Option<u64>, String> {
        match self {
            Target::Layout(dir) => Ok(fs::metadata(blob_path(dir, digest)).ok().map(|m| m.len())),
            Target::Registry { registry, repo } => {
                let r =
                    registry.request("HEAD", &format!("/v2/{repo}/blobs/{digest}"), &[], true)?;
                match r.status {
                    200 => Ok(r.header("content-length").and_then(|v| v.parse().ok())),
                    404 => Ok(None),
                    s => Err(format!("HEAD blob {digest}: {s}")),
                }
            }
        }
    }

    /// Every stored blob hashes to its name; returns how many temp files
    /// (layout) there are besides.
    fn check_stored_blobs(&self) -> Result<usize, String> {
        match self {
            Target::Layout(dir) => layout_blobs(dir).map(|(_, temps)| temps),
            Target::Registry { registry, .. } => {
                let root = registry
                    .storage_dir()
                    .join("docker/registry/v2/blobs/sha256");
                for digest in registry.stored_blobs() {
                    let hex = &digest["sha256:".len()..];
                    let bytes = fs::read(root.join(&hex[..2]).join(hex).join("data"))
                        .map_err(|e| format!("read stored blob {digest}: {e}"))?;
                    if sha256_hex(&bytes) != hex {
                        return Err(format!("stored blob {digest} does not hash to its name"));
                    }
                }
                Ok(0)
            }
        }
    }

    /// No manifest names a missing or short blob; nothing under a digest is
    /// half written. Returns the temp files seen.
    fn check(&self) -> Result<usize, String> {
        let temps = self.check_stored_blobs()?;
        for (tag, digest, bytes) in self.tagged()? {
            let manifest: Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("tag {tag}: manifest {digest} does not parse: {e}"))?;
            let mut named = vec![&manifest["config"]];
            named.extend(manifest["layers"].as_array().into_iter().flatten());
            for d in named {
                let (bd, bs) = (d["digest"].as_str().unwrap_or(""), d["size"].as_u64());
                let have = self.blob_size(bd)?;
                if bs.is_none() || have != bs {
                    return Err(format!(
                        "manifest {digest} (tag {tag}) names blob {bd} of {bs:?} bytes; the {} has {have:?}",
                        self.describe()
                    ));
                }
            }
        }
        Ok(temps)
    }

    /// Which of `known` (digest -> size) the target holds with their size.
    fn present(&self, known: &BTreeMap<String, u64>) -> Result<BTreeMap<String, u64>, String> {
        let mut out = BTreeMap::new();
        for (digest, size) in known {
            if self.blob_size(digest)? == Some(*size) {
                out.insert(digest.clone(), *size);
            }
        }
        Ok(out)
    }

    /// [`Self::present`] once the target stops changing: a registry may
    /// still be committing an upload or a manifest whose last request
    /// arrived before the kill.
    fn settled(&self, known: &BTreeMap<String, u64>) -> Result<BTreeMap<String, u64>, String> {
        let state = || -> Result<_, String> { Ok((self.present(known)?, self.registry_tags()?)) };
        let mut last = state()?;
        if let Target::Layout(_) = self {
            return Ok(last.0);
        }
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(100));
            let now = state()?;
            if now == last {
                return Ok(now.0);
            }
            last = now;
        }
        Err(format!(
            "the registry's blobs kept changing after the kill: {last:?}"
        ))
    }

    fn head_manifest(&self) -> Result<Option<String>, String> {
        Ok(self
            .tagged()?
            .into_iter()
            .find(|(t, _, _)| t == HEAD_TAG)
            .map(|(_, d, _)| d))
    }
}

fn spawn(op: &str, home: &Path, target: &Target, fault: Option<&str>) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        CHILD_TEST,
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(CHILD_OP_ENV, op)
    .env(CHILD_HOME_ENV, home)
    .env(REFERENCE_ENV, target.reference())
    .env_remove(PLAIN_HTTP_ENV)
    .env_remove(microsnap::fault::FAULT_ENV)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Target::Registry { .. } = target {
        cmd.env(PLAIN_HTTP_ENV, "1");
    }
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

/// Wait for `child`, reading the rest of its output.
fn finish(
    mut child: Child,
    out: &mut BufReader<std::process::ChildStdout>,
) -> (std::process::ExitStatus, String, String) {
    let mut stdout = String::new();
    out.read_to_string(&mut stdout).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
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
fn run(
    op: &str,
    home: &Path,
    target: &Target,
    fault: Option<&str>,
    timer: Option<Duration>,
) -> Outcome {
    let mut child = spawn(op, home, target, fault);
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
fn trace(op: &str, home: &Path, target: &Target, work: &Path) -> (Vec<String>, Duration, Value) {
    let file = work.join(format!("{op}-{}.trace", target.describe()));
    let outcome = run(
        op,
        home,
        target,
        Some(&format!("trace:{}", file.display())),
        None,
    );
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
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
    let index: Value = serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "index.json does not parse ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
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
            let digest = m["digest"]
                .as_str()
                .ok_or("an entry without digest")?
                .to_string();
            let size = m["size"].as_u64().ok_or("an entry without size")?;
            Ok((tag, digest, size))
        })
        .collect()
}

fn read_manifest(layout: &Path, digest: &str) -> Value {
    serde_json::from_slice(&fs::read(blob_path(layout, digest)).unwrap()).unwrap()
}

/// Every blob a full push of the chain writes (manifests included):
/// digest -> size, from the fixture's layout.
fn pushed_blobs(full_layout: &Path) -> BTreeMap<String, u64> {
    layout_blobs(full_layout).unwrap().0
}

/// Pushed by the re-run: every blob it needed that was missing before, and
/// nothing else. `before` is what the target held before the re-run;
/// manifests and indexes are read from the fixture's layout (a push of the
/// same chain writes the same blobs everywhere).
fn check_rerun_sent_only_missing(
    full_layout: &Path,
    before: &BTreeMap<String, u64>,
    report: &Value,
) -> Result<(), String> {
    let tags = layout_tags(full_layout)?;
    let mut manifest_bytes = 0u64;
    let mut needed: BTreeMap<String, u64> = BTreeMap::new();
    let mut frames: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for pushed in report["snapshots"].as_array().unwrap() {
        let digest = pushed["manifest_digest"].as_str().unwrap();
        let ntags = pushed["tags"].as_array().unwrap().len() as u64;
        let (_, _, size) = tags
            .iter()
            .find(|(_, d, _)| d == digest)
            .ok_or_else(|| format!("pushed manifest {digest} is not the fixture's"))?;
        manifest_bytes += size * ntags;
        let manifest = read_manifest(full_layout, digest);
        let mut named = vec![&manifest["config"]];
        named.extend(manifest["layers"].as_array().unwrap());
        for d in named {
            needed.insert(
                d["digest"].as_str().unwrap().to_string(),
                d["size"].as_u64().unwrap(),
            );
        }
        let index_digest = manifest["layers"][0]["digest"].as_str().unwrap();
        let index = ChunkIndex::decode(&fs::read(blob_path(full_layout, index_digest)).unwrap())
            .map_err(|e| format!("index {index_digest}: {e}"))?;
        for c in &index.chunks {
            frames
                .entry(index.packs[c.pack as usize].digest())
                .or_default()
                .insert(c.offset);
        }
    }
    let missing: BTreeMap<&String, &u64> = needed
        .iter()
        .filter(|(d, _)| !before.contains_key(*d))
        .collect();
    let want_bytes = manifest_bytes + missing.values().copied().sum::<u64>();
    let want_chunks: u64 = missing
        .keys()
        .filter_map(|d| frames.get(*d))
        .map(|f| f.len() as u64)
        .sum();
    let there: Vec<&String> = needed
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
             there before the re-run: {there:?}; missing: {missing:?}"
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

/// Kill `op` at random points until `kills_wanted` kills. `iteration`
/// prepares an attempt, calls the runner it is given (which runs and
/// kills the child) and checks what the kill left.
fn kill_loop(
    op: &str,
    trace: &[String],
    full_run: Duration,
    rng: &mut Rng,
    mut iteration: impl FnMut(u32, &mut dyn FnMut(&Path, &Target) -> Option<String>),
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
                let name = *distinct
                    .iter()
                    .nth(rng.below(distinct.len() as u64) as usize)
                    .unwrap();
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
        iteration(stats.attempts, &mut |home, target| {
            killed_at = match run(op, home, target, fault.as_deref(), timer) {
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

fn rerun(op: &str, home: &Path, target: &Target) -> Value {
    match run(op, home, target, None, None) {
        Outcome::Done(_, report) => report,
        Outcome::Killed(at) => panic!("{op}: the re-run died at {at}"),
    }
}

/// Attempts per registry instance: a fresh one (fresh storage) after
/// that many, so a stress run's storage stays small.
const ATTEMPTS_PER_REGISTRY: u32 = 25;

/// The push crash loop against `oci:` layouts or a registry (a fresh
/// repository per attempt).
fn push_crash_loop(with_registry: bool) {
    let seed = seed() ^ u64::from(with_registry);
    let fixture = Fixture::build();
    let known = pushed_blobs(&fixture.full_layout);
    let work = tempfile::tempdir().unwrap();
    let mut registry = with_registry.then(|| TestRegistry::start(Config::plain()));
    let trace_home = work.path().join("trace-home");
    instantiate(&fixture.source_home, &trace_home);
    let trace_target = match &registry {
        Some(r) => Target::Registry {
            registry: r,
            repo: "crash/trace".into(),
        },
        None => Target::Layout(work.path().join("trace-layout")),
    };
    let (points, full_run, report) = trace("push", &trace_home, &trace_target, work.path());
    let kind = trace_target.describe();
    assert_eq!(report["manifest_digest"], fixture.head_manifest.as_str());
    assert!(!points.is_empty(), "push reached no fault point");
    println!(
        "push crash harness ({kind}): seed {seed}, {} kills wanted, a push takes {full_run:.1?}, {} fault point hits",
        kills_wanted(),
        points.len()
    );
    let mut rng = Rng(seed);
    let mut leftover_temps = 0usize;
    let mut dangling_tags = 0usize;
    let started = Instant::now();
    let stats = kill_loop("push", &points, full_run, &mut rng, |attempt, run_once| {
        if with_registry && attempt % ATTEMPTS_PER_REGISTRY == 0 {
            registry = Some(TestRegistry::start(Config::plain()));
        }
        let dir = work.path().join(format!("push-{attempt}"));
        let root = dir.join("home");
        let target = match &registry {
            Some(r) => Target::Registry {
                registry: r,
                repo: format!("crash/push-{attempt}"),
            },
            None => Target::Layout(dir.join("layout")),
        };
        instantiate(&fixture.source_home, &root);
        let killed_at = run_once(&root, &target);
        let at = killed_at.as_deref().unwrap_or("no kill");
        let fail = |why: String| -> ! {
            panic!("push ({kind}): invariant broken after {at} (attempt {attempt}, seed {seed}): {why}")
        };
        let before = target.settled(&known).unwrap_or_else(|why| fail(why));
        leftover_temps += target.check().unwrap_or_else(|why| fail(why));
        dangling_tags += target.dangling_tags().unwrap_or_else(|why| fail(why));
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
        let report = rerun("push", &root, &target);
        if report["manifest_digest"] != fixture.head_manifest.as_str() {
            fail(format!("the re-run pushed another manifest: {report}"));
        }
        target
            .check()
            .unwrap_or_else(|why| fail(format!("after the re-run: {why}")));
        match target.dangling_tags() {
            Ok(0) => {}
            Ok(n) => fail(format!("after the re-run {n} tags name no manifest")),
            Err(why) => fail(why),
        }
        let head = target.head_manifest().unwrap_or_else(|why| fail(why));
        if head.as_deref() != Some(fixture.head_manifest.as_str()) {
            fail(format!("after the re-run the head tag names {head:?}"));
        }
        check_rerun_sent_only_missing(&fixture.full_layout, &before, &report)
            .unwrap_or_else(|why| fail(why));
        fs::remove_dir_all(&dir).unwrap();
    });
    println!(
        "push crash harness ({kind}): {} kills survived in {} attempts ({} finished first) in {:.1?}; \
         kills by place: {:?}; temp files left in blobs/ by killed pushes: {leftover_temps}; \
         tags naming no manifest after a kill: {dangling_tags}",
        stats.kills,
        stats.attempts,
        stats.completed,
        started.elapsed(),
        stats.places
    );
}

/// The pull crash loop from the fixture's layout or from a registry the
/// fixture's chain was pushed to.
fn pull_crash_loop(with_registry: bool) {
    let seed = seed() ^ 0x9011 ^ u64::from(with_registry);
    let fixture = Fixture::build();
    let work = tempfile::tempdir().unwrap();
    let registry = with_registry.then(|| TestRegistry::start(Config::plain()));
    let source = match &registry {
        Some(r) => {
            let target = Target::Registry {
                registry: r,
                repo: "crash/full".into(),
            };
            let home = microsnap::open_home(&fixture.source_home).unwrap();
            distribution::push(
                &home,
                "head",
                &target.reference(),
                &PushOptions {
                    with_parents: true,
                    remote: RemoteOptions {
                        plain_http: true,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                &Monitor::none(),
            )
            .unwrap();
            target
        }
        None => Target::Layout(fixture.full_layout.clone()),
    };
    let kind = source.describe();
    let trace_home = work.path().join("trace-home");
    instantiate(&fixture.empty_home, &trace_home);
    let (points, full_run, report) = trace("pull", &trace_home, &source, work.path());
    assert_eq!(report["manifest_digest"], fixture.head_manifest.as_str());
    assert!(!points.is_empty(), "pull reached no fault point");
    println!(
        "pull crash harness ({kind}): seed {seed}, {} kills wanted, a pull takes {full_run:.1?}, {} fault point hits",
        kills_wanted(),
        points.len()
    );
    let source_before = source.tagged().unwrap();
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut partial_chains = 0u32;
    let stats = kill_loop("pull", &points, full_run, &mut rng, |attempt, run_once| {
        let root = work.path().join(format!("pull-{attempt}"));
        instantiate(&fixture.empty_home, &root);
        let killed_at = run_once(&root, &source);
        let at = killed_at.as_deref().unwrap_or("no kill");
        let fail = |why: String| -> ! {
            panic!("pull ({kind}): invariant broken after {at} (attempt {attempt}, seed {seed}): {why}")
        };
        {
            let home = microsnap::open_home(&root).unwrap();
            let set = check_home(&home).unwrap_or_else(|why| fail(why));
            for (path, digest) in &set {
                if !fixture.digests.contains(digest) {
                    fail(format!(
                        "{} holds {digest}, which is not of the chain",
                        path.display()
                    ));
                }
            }
            // Every directory in snapshots/ is indexed (check_home verified each).
            let on_disk = names(&home.snapshots_dir()).len();
            if on_disk != set.len() {
                fail(format!(
                    "{on_disk} entries in snapshots/ but {} indexed: {set:?}",
                    set.len()
                ));
            }
            if !set.is_empty() && set.len() < 3 {
                partial_chains += 1;
            }
        }
        let report = rerun("pull", &root, &source);
        if report["snapshot_digest"] != fixture.digests[2].as_str() {
            fail(format!("the re-run pulled another snapshot: {report}"));
        }
        let home = microsnap::open_home(&root).unwrap();
        snapshot::verify(&home, HEAD_TAG, &Monitor::none())
            .unwrap_or_else(|e| fail(format!("the re-pulled head does not verify: {e}")));
        let head = snapshot::get(&home, HEAD_TAG).unwrap();
        if head.digest != fixture.digests[2]
            || head.parent_digest.as_ref() != Some(&fixture.digests[1])
        {
            fail(format!("the re-pulled head is {head:?}"));
        }
        check_home(&home).unwrap_or_else(|why| fail(format!("after the re-run: {why}")));
        drop(home);
        fs::remove_dir_all(&root).unwrap();
    });
    // Pull never writes to its source.
    assert_eq!(source.tagged().unwrap(), source_before);
    source.check().unwrap();
    println!(
        "pull crash harness ({kind}): {} kills survived in {} attempts ({} finished first, \
         {partial_chains} left part of the chain) in {:.1?}; kills by place: {:?}",
        stats.kills,
        stats.attempts,
        stats.completed,
        started.elapsed(),
        stats.places
    );
}

#[test]
fn push_to_a_layout_survives_sigkill_and_resumes_without_resending_packs() {
    if child_request().is_some() {
        return;
    }
    push_crash_loop(false);
}

#[test]
fn pull_from_a_layout_survives_sigkill_and_resumes_to_a_verified_chain() {
    if child_request().is_some() {
        return;
    }
    pull_crash_loop(false);
}

#[test]
fn push_to_a_registry_survives_sigkill_and_resumes_without_resending_packs() {
    if child_request().is_some() {
        return;
    }
    push_crash_loop(true);
}

#[test]
fn pull_from_a_registry_survives_sigkill_and_resumes_to_a_verified_chain() {
    if child_request().is_some() {
        return;
    }
    pull_crash_loop(true);
}

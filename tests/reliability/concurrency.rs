//! Concurrency: 16 threads (half through the engine API, half through the C
//! ABI) and, separately, 4 processes on one home run a random mix of create,
//! remove, list, get, verify, export and import for a bounded time.
//!
//! Promised: no error but the expected conflicts (`already_exists`,
//! `snapshot_not_found`, `has_children`), never `database is locked`; no lost
//! or duplicated artifact (for every name, successful creates minus
//! successful removes is whether it exists at the end); and at the end the
//! index equals a fresh Reindex and every artifact opens and verifies.
//!
//! A third mix races force-replace and remove of `s0..s2` against verify,
//! export, open, get, list and fork of the same names: a reader may only get
//! `snapshot_not_found` or `cancelled`, and no index row may name a digest
//! other than that of the artifact its directory held throughout the call.
//!
//! A few seconds each here; `MICROSNAP_STRESS=1` runs a minute each.
use crate::support as reliability_support;

use microsnap::archive::{self, ExportOptions};
use microsnap::error::{Error, ErrorCode};
use microsnap::ffi;
use microsnap::fuzz_targets;
use microsnap::home::Home;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, CreateOptions};
use reliability_support::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NAMES: usize = 6;
const ARCHIVES: usize = 3;
const EXPECTED: [&str; 3] = ["already_exists", "snapshot_not_found", "has_children"];

fn run_time() -> Duration {
    Duration::from_secs(if stress() { 60 } else { 5 })
}

/// What one worker did.
#[derive(Default, Debug, serde::Serialize, serde::Deserialize)]
struct Tally {
    ops: BTreeMap<String, u64>,
    conflicts: BTreeMap<String, u64>,
    creates: BTreeMap<String, i64>,
    removes: BTreeMap<String, i64>,
    unexpected: Vec<String>,
    /// Index rows compared with the artifact their directory held (race mix).
    #[serde(default)]
    rows_checked: u64,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (k, v) in other.ops {
            *self.ops.entry(k).or_default() += v;
        }
        for (k, v) in other.conflicts {
            *self.conflicts.entry(k).or_default() += v;
        }
        for (k, v) in other.creates {
            *self.creates.entry(k).or_default() += v;
        }
        for (k, v) in other.removes {
            *self.removes.entry(k).or_default() += v;
        }
        self.unexpected.extend(other.unexpected);
        self.rows_checked += other.rows_checked;
    }

    fn total(&self) -> u64 {
        self.ops.values().sum()
    }

    /// How many unexpected errors of each operation and code (the text up to
    /// the second colon, without the snapshot name).
    fn unexpected_kinds(&self) -> BTreeMap<String, u64> {
        let mut kinds = BTreeMap::new();
        for u in &self.unexpected {
            let (op_name, rest) = u.split_once(": ").unwrap_or((u, ""));
            let op = op_name.split(' ').next().unwrap_or(op_name);
            let code = rest.split(':').next().unwrap_or(rest);
            *kinds.entry(format!("{op}: {code}")).or_default() += 1;
        }
        kinds
    }

    /// Count `op` on `name` and file its error: one of `expected` is a
    /// conflict (never `database is locked`), anything else is unexpected.
    /// Returns whether the operation succeeded.
    fn record(&mut self, op: &str, name: &str, outcome: Outcome, expected: &[&str]) -> bool {
        *self.ops.entry(op.to_string()).or_default() += 1;
        match outcome {
            Ok(()) => true,
            Err((code, message)) => {
                if expected.contains(&code.as_str()) && !message.contains("database is locked") {
                    *self.conflicts.entry(code).or_default() += 1;
                } else {
                    self.unexpected
                        .push(format!("{op} {name}: {code}: {message}"));
                }
                false
            }
        }
    }
}

/// The shared home: image, four sandboxes (shared by the workers), and archives of
/// snapshots that are not in the home (to import).
fn prepare(root: &Path, workers: usize) -> Vec<PathBuf> {
    let home = microsnap::open_home(root).unwrap();
    fuzz_targets::write_test_image(&home.images_dir()).unwrap();
    for w in 0..workers.min(4) {
        new_sandbox(&home, &format!("w{w}"), w as u64 + 10);
    }
    let archives_dir = root.parent().unwrap().join("archives");
    std::fs::create_dir_all(&archives_dir).unwrap();
    (0..ARCHIVES)
        .map(|i| {
            let name = format!("exported{i}");
            snap(
                &home,
                &format!("w{i}"),
                &name,
                Some(Algorithm::MerkleSha256V1),
            );
            let out = archives_dir.join(format!("a{i}.tar.zst"));
            archive::export(
                &home,
                &name,
                &out,
                &ExportOptions::default(),
                &Monitor::none(),
            )
            .unwrap();
            snapshot::remove(&home, &name, false).unwrap();
            out
        })
        .collect()
}

/// One operation's outcome, engine- or ABI-side: Ok, or an error code name
/// and message.
type Outcome = Result<(), (String, String)>;

fn from_engine<T>(r: Result<T, Error>) -> Outcome {
    r.map(drop)
        .map_err(|e| (e.code().name().to_string(), e.to_string()))
}

/// The C ABI as the mix uses it.
struct Abi {
    ctx: *mut ffi::msnap_context,
}

// SAFETY: the ABI is documented thread-safe; the context token is a plain
// value the library checks on every call.
unsafe impl Send for Abi {}
unsafe impl Sync for Abi {}

impl Abi {
    fn open(root: &Path) -> Abi {
        let args = CString::new(json!({ "home": root }).to_string()).unwrap();
        let mut ctx = std::ptr::null_mut();
        let mut out = std::ptr::null_mut();
        let st = ffi::msnap_context_open(&mut ctx, &mut out, args.as_ptr());
        let text = take(out);
        assert_eq!(st, 0, "{text}");
        Abi { ctx }
    }

    fn call(
        &self,
        f: impl FnOnce(*mut *mut c_char, *const ffi::msnap_context, *const c_char) -> i32,
        args: Value,
    ) -> Outcome {
        let args = CString::new(args.to_string()).unwrap();
        let mut out = std::ptr::null_mut();
        let status = f(&mut out, self.ctx, args.as_ptr());
        let text = take(out);
        let v: Value = serde_json::from_str(&text).expect("out-string is JSON");
        if status == 0 {
            Ok(())
        } else {
            Err((
                v["code"].as_str().unwrap_or("?").to_string(),
                v["message"].as_str().unwrap_or("?").to_string(),
            ))
        }
    }
}

impl Drop for Abi {
    fn drop(&mut self) {
        assert_eq!(ffi::msnap_context_free(self.ctx), 0);
    }
}

fn take(out: *mut c_char) -> String {
    assert!(!out.is_null());
    // SAFETY: a live library string, copied and then freed exactly once.
    let s = unsafe { CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: as above.
    unsafe { ffi::msnap_string_free(out) };
    s
}

/// Run the random mix until `deadline`.
fn run_mix(
    home: &Home,
    abi: Option<&Abi>,
    worker: usize,
    archives: &[PathBuf],
    scratch: &Path,
    deadline: Instant,
    seed: u64,
) -> Tally {
    let mut rng = Rng(seed ^ (worker as u64) << 32);
    let mut t = Tally::default();
    // Four workers share each sandbox: snapshots of one stopped sandbox may
    // run at once (they share its lock).
    let sandbox = format!("w{}", worker % 4);
    let null = std::ptr::null();
    while Instant::now() < deadline {
        let name = format!("s{}", rng.below(NAMES as u64));
        let op = match rng.below(10) {
            0 | 1 => "create",
            2 | 3 => "remove",
            4 => "list",
            5 => "get",
            6 => "verify",
            7 => "export",
            _ => "import",
        };
        let out_file = scratch.join(format!("export-{worker}.tar.zst"));
        let archive = &archives[rng.below(archives.len() as u64) as usize];
        let outcome = match (op, abi) {
            ("create", None) => from_engine(snapshot::create(
                home,
                &sandbox,
                &CreateOptions {
                    name: Some(name.clone()),
                    record_integrity: true,
                    ..Default::default()
                },
                &Monitor::none(),
            )),
            ("create", Some(a)) => a.call(
                |o, c, x| ffi::msnap_snapshot_create(o, c, x, null, None, std::ptr::null_mut()),
                json!({"source_sandbox": sandbox, "name": name, "record_integrity": true}),
            ),
            ("remove", None) => from_engine(snapshot::remove(home, &name, false)),
            ("remove", Some(a)) => a.call(
                |o, c, x| ffi::msnap_snapshot_remove(o, c, x),
                json!({"ref": name}),
            ),
            ("list", None) => from_engine(snapshot::list(home)),
            ("list", Some(a)) => a.call(|o, c, x| ffi::msnap_snapshot_list(o, c, x), json!({})),
            ("get", None) => from_engine(snapshot::get(home, &name)),
            ("get", Some(a)) => a.call(
                |o, c, x| ffi::msnap_snapshot_get(o, c, x),
                json!({"ref": name}),
            ),
            ("verify", None) => from_engine(snapshot::verify(home, &name, &Monitor::none())),
            ("verify", Some(a)) => a.call(
                |o, c, x| ffi::msnap_snapshot_verify(o, c, x, null, None, std::ptr::null_mut()),
                json!({"ref": name}),
            ),
            ("export", None) => from_engine(archive::export(
                home,
                &name,
                &out_file,
                &ExportOptions {
                    threads: Some(1),
                    ..Default::default()
                },
                &Monitor::none(),
            )),
            ("export", Some(a)) => a.call(
                |o, c, x| ffi::msnap_snapshot_export(o, c, x, null, None, std::ptr::null_mut()),
                json!({"ref": name, "out": out_file, "threads": 1}),
            ),
            ("import", None) => from_engine(archive::import(home, archive, None, &Monitor::none())),
            ("import", Some(a)) => a.call(
                |o, c, x| ffi::msnap_snapshot_import(o, c, x, null, None, std::ptr::null_mut()),
                json!({"archive": archive}),
            ),
            _ => unreachable!(),
        };
        let _ = std::fs::remove_file(&out_file);
        if t.record(op, &name, outcome, &EXPECTED) {
            match op {
                "create" => *t.creates.entry(name).or_default() += 1,
                "remove" => *t.removes.entry(name).or_default() += 1,
                _ => {}
            }
        }
    }
    t
}

fn assert_no_unexpected(tally: &Tally) {
    assert!(
        tally.unexpected.is_empty(),
        "unexpected errors ({}): {:#?}",
        tally.unexpected.len(),
        &tally.unexpected[..tally.unexpected.len().min(20)]
    );
}

/// The end state: invariants, and per name, creates − removes = present.
fn check_end(root: &Path, tally: &Tally) {
    let home = microsnap::open_home(root).unwrap();
    assert_no_unexpected(tally);
    let set = check_home(&home).unwrap_or_else(|why| panic!("after the mix: {why}"));
    for i in 0..NAMES {
        let name = format!("s{i}");
        let net = tally.creates.get(&name).copied().unwrap_or(0)
            - tally.removes.get(&name).copied().unwrap_or(0);
        let present = set.iter().any(|(p, _)| p.ends_with(&name));
        assert_eq!(
            net,
            i64::from(present),
            "{name}: {} creates, {} removes, present at the end: {present}",
            tally.creates.get(&name).copied().unwrap_or(0),
            tally.removes.get(&name).copied().unwrap_or(0)
        );
    }
}

#[test]
fn sixteen_threads_on_one_home() {
    if child_request().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    let archives = prepare(&root, 16);
    let home = microsnap::open_home(&root).unwrap();
    let abi = Abi::open(&root);
    let deadline = Instant::now() + run_time();
    let t0 = Instant::now();
    let tally = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|w| {
                let (home, abi, archives, scratch) = (&home, &abi, &archives, dir.path());
                s.spawn(move || {
                    let abi = (w % 2 == 1).then_some(abi);
                    run_mix(home, abi, w, archives, scratch, deadline, 0xc0c0)
                })
            })
            .collect();
        let mut all = Tally::default();
        for h in handles {
            all.merge(h.join().unwrap());
        }
        all
    });
    drop(abi);
    drop(home);
    println!(
        "concurrency: 16 threads, {} operations in {:.1?}: {:?}; expected conflicts {:?}",
        tally.total(),
        t0.elapsed(),
        tally.ops,
        tally.conflicts
    );
    check_end(&root, &tally);
}

/// Child side of the process test: run the mix, print the tally as JSON.
#[test]
fn concurrency_child() {
    let Some((op, root)) = child_request() else {
        return;
    };
    let worker: usize = op.strip_prefix("mix-").unwrap().parse().unwrap();
    let home = microsnap::open_home(&root).unwrap();
    let archives: Vec<PathBuf> = (0..ARCHIVES)
        .map(|i| {
            root.parent()
                .unwrap()
                .join(format!("archives/a{i}.tar.zst"))
        })
        .collect();
    let scratch = root.parent().unwrap().to_path_buf();
    let abi = (worker % 2 == 1).then(|| Abi::open(&root));
    let deadline = Instant::now() + run_time();
    let tally = run_mix(
        &home,
        abi.as_ref(),
        worker,
        &archives,
        &scratch,
        deadline,
        0xbeef,
    );
    eprintln!("TALLY {}", serde_json::to_string(&tally).unwrap());
    std::process::exit(0);
}

#[test]
fn four_processes_on_one_home() {
    if child_request().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    prepare(&root, 4);
    let t0 = Instant::now();
    let children: Vec<_> = (0..4)
        .map(|w| {
            spawn_child(
                "concurrency::concurrency_child",
                &format!("mix-{w}"),
                &root,
                None,
            )
        })
        .collect();
    let mut tally = Tally::default();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child failed: {stderr}");
        let line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("TALLY "))
            .unwrap_or_else(|| panic!("no tally from child: {stderr}"));
        tally.merge(serde_json::from_str(line).unwrap());
    }
    println!(
        "concurrency: 4 processes, {} operations in {:.1?}: {:?}; expected conflicts {:?}",
        tally.total(),
        t0.elapsed(),
        tally.ops,
        tally.conflicts
    );
    check_end(&root, &tally);
}

#[test]
fn expected_codes_are_real_codes() {
    for name in EXPECTED
        .iter()
        .chain(&READER_EXPECTED)
        .chain(&WRITER_EXPECTED)
    {
        assert!(ErrorCode::ALL.iter().any(|c| c.name() == *name), "{name}");
    }
}

// ---------------------------------------------------------------------------
// Replace and remove against readers (issue 14): every read sees one whole
// artifact.

/// Names the race mix replaces, removes and reads: few, so each is replaced
/// often.
const RACED: usize = 3;
const RACE_WRITERS: usize = 3;
const RACE_READERS: usize = 6;
/// All a reader may get while its name is replaced or removed: the name
/// resolved to nothing, or the caller cancelled. Anything else (a false
/// `integrity_mismatch`, a torn manifest, an `io` error on a file that moved
/// away) means the read mixed two artifacts.
const READER_EXPECTED: [&str; 2] = ["snapshot_not_found", "cancelled"];
/// Conflicts a writer may get (removing a name that is gone or a parent).
const WRITER_EXPECTED: [&str; 4] = [
    "already_exists",
    "has_children",
    "snapshot_not_found",
    "sandbox_running",
];

/// The race mix's uppers: small, so that replaces (and reads) are quick and
/// names change often while being read.
const RACE_SHAPE: UpperShape = UpperShape {
    size: 4 << 20,
    extents: 4,
    extent_len: 16 << 10,
};

/// The race mix's home: snapshot `p0`; sandboxes `c0..c2` forked from it,
/// each with different data, so every `sN` made from them has `p0` as its
/// parent and the uppers of two versions of `sN` usually differ; and `s0..s2`.
fn prepare_race(root: &Path) {
    let home = microsnap::open_home(root).unwrap();
    fuzz_targets::write_test_image(&home.images_dir()).unwrap();
    new_sandbox_shaped(&home, "base", 1, RACE_SHAPE);
    snap(&home, "base", "p0", Some(Algorithm::MerkleSha256V1));
    for i in 0..RACED {
        let source = format!("c{i}");
        fork(&home, "p0", &source);
        scribble_shaped(
            &home.sandboxes_dir().join(&source).join("upper.ext4"),
            20 + i as u64,
            RACE_SHAPE,
        );
        snap(
            &home,
            &source,
            &format!("s{i}"),
            Some(Algorithm::MerkleSha256V1),
        );
    }
}

/// Force-replace `sN` with a snapshot of a random `cK`, or remove it.
fn race_writer(home: &Home, worker: usize, deadline: Instant) -> Tally {
    let mut rng = Rng(0x7ace ^ (worker as u64) << 32);
    let mut t = Tally::default();
    while Instant::now() < deadline {
        let name = format!("s{}", rng.below(RACED as u64));
        // Rarely: a removed name fails its readers fast until replaced again.
        if rng.below(8) == 0 {
            let outcome = from_engine(snapshot::remove(home, &name, false));
            t.record("remove", &name, outcome, &WRITER_EXPECTED);
        } else {
            let source = format!("c{}", rng.below(RACED as u64));
            let outcome = from_engine(snapshot::create(
                home,
                &source,
                &CreateOptions {
                    name: Some(name.clone()),
                    force: true,
                    record_integrity: true,
                    integrity_algorithm: Some(Algorithm::MerkleSha256V1),
                    ..Default::default()
                },
                &Monitor::none(),
            ));
            t.record("replace", &name, outcome, &WRITER_EXPECTED);
        }
    }
    t
}

/// What `snapshots/<name>` held when a call began: the directory, kept open
/// so its inode cannot be reused, and the digest of the manifest read
/// through it.
struct Held {
    dir: std::fs::File,
    digest: String,
}

impl Held {
    fn take(path: &Path) -> Option<Held> {
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(path).ok()?;
        let through = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        let (_, digest) = microsnap::manifest::Manifest::read_dir(&through).ok()?;
        Some(Held { dir, digest })
    }

    /// The held digest if `path` is still the held directory. Artifacts are
    /// never changed in place (publish, replace and remove are renames), so
    /// then `path` held exactly this artifact for the whole call, and an
    /// index row for `path` read during the call must carry this digest.
    fn unchanged(&self, path: &Path) -> Option<&str> {
        use std::os::unix::fs::MetadataExt;
        let (then, now) = (self.dir.metadata().ok()?, std::fs::metadata(path).ok()?);
        (then.ino() == now.ino() && then.dev() == now.dev()).then_some(&self.digest)
    }
}

/// Run `read` (a get or a list) and check each row it returns for one of
/// `names` against the artifact the name held throughout, when it held one
/// artifact throughout (issue 14 point 5: the index never returns a row
/// whose artifact is a different snapshot than the row says). When the name
/// changed during the call nothing can be concluded, and nothing is checked.
fn checked_rows(
    t: &mut Tally,
    home: &Home,
    op: &str,
    names: &[String],
    read: impl FnOnce() -> Result<Vec<snapshot::SnapshotHandle>, Error>,
) -> Outcome {
    let paths: Vec<PathBuf> = names.iter().map(|n| home.snapshots_dir().join(n)).collect();
    let held: Vec<Option<Held>> = paths.iter().map(|p| Held::take(p)).collect();
    let rows = read().map_err(|e| (e.code().name().to_string(), e.to_string()))?;
    for ((name, path), held) in names.iter().zip(&paths).zip(&held) {
        let Some(digest) = held.as_ref().and_then(|h| h.unchanged(path)) else {
            continue;
        };
        for row in rows.iter().filter(|r| &r.path == path) {
            t.rows_checked += 1;
            if row.digest != digest {
                t.unexpected.push(format!(
                    "{op} {name}: stale row: the index says {} but {} held {digest} for the whole call",
                    row.digest,
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Read `sN` every way a user can: verify, export (alone and with its
/// parent), open, get, list, and fork a sandbox from it. Odd readers verify,
/// export and open through the C ABI.
fn race_reader(
    home: &Home,
    abi: Option<&Abi>,
    worker: usize,
    scratch: &Path,
    deadline: Instant,
) -> Tally {
    let mut rng = Rng(0x4ead ^ (worker as u64) << 32);
    let mut t = Tally::default();
    let out_file = scratch.join(format!("race-export-{worker}.tar"));
    let sandbox = format!("r{worker}");
    let null = std::ptr::null();
    let all: Vec<String> = (0..RACED).map(|i| format!("s{i}")).collect();
    while Instant::now() < deadline {
        let name = format!("s{}", rng.below(RACED as u64));
        let op = match rng.below(8) {
            0 => "verify",
            1 => "export",
            2 => "export-with-parents",
            3 => "open",
            4 => "get",
            5 => "list",
            _ => "fork",
        };
        let with_parents = op == "export-with-parents";
        let outcome = match (op, abi) {
            ("verify", None) => from_engine(snapshot::verify(home, &name, &Monitor::none())),
            ("verify", Some(a)) => a.call(
                |o, c, x| ffi::msnap_snapshot_verify(o, c, x, null, None, std::ptr::null_mut()),
                json!({"ref": name}),
            ),
            ("export" | "export-with-parents", None) => from_engine(archive::export(
                home,
                &name,
                &out_file,
                &ExportOptions {
                    with_parents,
                    plain_tar: true,
                    threads: Some(1),
                    ..Default::default()
                },
                &Monitor::none(),
            )),
            ("export" | "export-with-parents", Some(a)) => a.call(
                |o, c, x| ffi::msnap_snapshot_export(o, c, x, null, None, std::ptr::null_mut()),
                json!({"ref": name, "out": out_file, "with_parents": with_parents,
                       "plain_tar": true, "threads": 1}),
            ),
            ("open", None) => from_engine(snapshot::open(home, &name)),
            ("open", Some(a)) => a.call(
                |o, c, x| ffi::msnap_snapshot_open(o, c, x),
                json!({"ref": name}),
            ),
            ("get", _) => checked_rows(&mut t, home, op, std::slice::from_ref(&name), || {
                snapshot::get(home, &name).map(|h| vec![h])
            }),
            ("list", _) => checked_rows(&mut t, home, op, &all, || snapshot::list(home)),
            ("fork", _) => {
                let forked = from_engine(sandbox::create(
                    home,
                    &sandbox,
                    &SandboxSource::Snapshot {
                        name_or_path: name.clone(),
                    },
                    &Monitor::none(),
                ));
                if forked.is_ok() {
                    let removed = from_engine(sandbox::remove(home, &sandbox));
                    t.record("remove-forked", &sandbox, removed, &[]);
                }
                forked
            }
            _ => unreachable!(),
        };
        let _ = std::fs::remove_file(&out_file);
        t.record(op, &name, outcome, &READER_EXPECTED);
    }
    t
}

#[test]
fn readers_see_one_artifact_while_names_are_replaced() {
    if child_request().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    prepare_race(&root);
    let home = microsnap::open_home(&root).unwrap();
    let abi = Abi::open(&root);
    let deadline = Instant::now() + run_time();
    let t0 = Instant::now();
    let (writers, readers) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..RACE_WRITERS)
            .map(|w| {
                let home = &home;
                s.spawn(move || race_writer(home, w, deadline))
            })
            .collect();
        let readers: Vec<_> = (0..RACE_READERS)
            .map(|r| {
                let (home, abi, scratch) = (&home, &abi, dir.path());
                s.spawn(move || {
                    let abi = (r % 2 == 1).then_some(abi);
                    race_reader(home, abi, r, scratch, deadline)
                })
            })
            .collect();
        let join = |hs: Vec<std::thread::ScopedJoinHandle<'_, Tally>>| {
            let mut all = Tally::default();
            for h in hs {
                all.merge(h.join().unwrap());
            }
            all
        };
        (join(writers), join(readers))
    });
    drop(abi);
    drop(home);
    println!(
        "race: {RACE_WRITERS} writers, {RACE_READERS} readers on {RACED} names in {:.1?}: \
         writers {:?}, conflicts {:?}; readers {:?}, not found {:?}; {} rows checked; \
         {} unexpected",
        t0.elapsed(),
        writers.ops,
        writers.conflicts,
        readers.ops,
        readers.conflicts,
        readers.rows_checked,
        writers.unexpected.len() + readers.unexpected.len(),
    );
    let mut all = writers;
    all.merge(readers);
    println!("race: unexpected by kind: {:?}", all.unexpected_kinds());
    assert_no_unexpected(&all);
    // The mix must have raced: names were replaced while being read.
    assert!(
        all.ops.get("replace").copied().unwrap_or(0) >= 10,
        "{:?}",
        all.ops
    );
    assert!(all.rows_checked > 0, "no index row was checked");
    // At rest, the index equals a fresh Reindex, every row's digest is its
    // artifact's and every artifact verifies.
    let home = microsnap::open_home(&root).unwrap();
    check_home(&home).unwrap_or_else(|why| panic!("after the race: {why}"));
}

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
//! A few seconds each here; `MICROSNAP_STRESS=1` runs a minute each.
mod reliability_support;

use microsnap::archive::{self, ExportOptions};
use microsnap::error::{Error, ErrorCode};
use microsnap::ffi;
use microsnap::fuzz_targets;
use microsnap::home::Home;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
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
    }

    fn total(&self) -> u64 {
        self.ops.values().sum()
    }
}

/// The shared home: image, four sandboxes (shared by the workers), and archives of
/// snapshots that are not in the home (to import).
fn prepare(root: &Path, workers: usize) -> Vec<PathBuf> {
    let home = Home::open(root).unwrap();
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
        *t.ops.entry(op.to_string()).or_default() += 1;
        match outcome {
            Ok(()) => match op {
                "create" => *t.creates.entry(name).or_default() += 1,
                "remove" => *t.removes.entry(name).or_default() += 1,
                _ => {}
            },
            Err((code, message)) => {
                if EXPECTED.contains(&code.as_str()) && !message.contains("database is locked") {
                    *t.conflicts.entry(code).or_default() += 1;
                } else {
                    t.unexpected.push(format!("{op} {name}: {code}: {message}"));
                }
            }
        }
    }
    t
}

/// The end state: invariants, and per name, creates − removes = present.
fn check_end(root: &Path, tally: &Tally) {
    let home = Home::open(root).unwrap();
    assert!(
        tally.unexpected.is_empty(),
        "unexpected errors ({}): {:#?}",
        tally.unexpected.len(),
        &tally.unexpected[..tally.unexpected.len().min(20)]
    );
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
    let home = Home::open(&root).unwrap();
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
    let home = Home::open(&root).unwrap();
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
        .map(|w| spawn_child("concurrency_child", &format!("mix-{w}"), &root, None))
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
    for name in EXPECTED {
        assert!(ErrorCode::ALL.iter().any(|c| c.name() == name), "{name}");
    }
}

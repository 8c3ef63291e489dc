//! Crash consistency: a child process (this test binary, re-executed) runs
//! one operation on a copy of a seeded home and is SIGKILLed part-way, by
//! the fault hook (`MICROSNAP_FAULT`) at a chosen point or at random points,
//! or by the parent after a random delay. After each kill the parent reopens
//! the home and checks the invariants (`reliability_support::check_home`)
//! plus what the operation promises about the artifacts it touched.
//!
//! 20 kills per operation here; 200 with `MICROSNAP_STRESS=1` (`make stress`).
use crate::support as reliability_support;

use microsnap::archive;
use microsnap::home::Home;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, CreateOptions};
use reliability_support::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const OPS: [&str; 6] = [
    "create",
    "create_force",
    "import",
    "remove",
    "reindex",
    "sandbox_from_snapshot",
];

/// The child side: performs one operation and exits. A no-op test in a
/// normal run.
#[test]
fn crash_child() {
    let Some((op, root)) = child_request() else {
        return;
    };
    let home = microsnap::open_home(&root).unwrap();
    let m = Monitor::none();
    let result = match op.as_str() {
        "create" => snapshot::create(&home, "sb", &create_opts("fresh", false), &m).map(drop),
        "create_force" => snapshot::create(&home, "sb", &create_opts("base", true), &m).map(drop),
        "import" => {
            let archive = root.parent().unwrap().join("chain.tar.zst");
            archive::import(&home, &archive, None, &m).map(drop)
        }
        "remove" => snapshot::remove(&home, "victim", false),
        "reindex" => snapshot::reindex(&home, None).map(drop),
        "sandbox_from_snapshot" => sandbox::create(
            &home,
            "restored",
            &SandboxSource::Snapshot {
                name_or_path: "base".into(),
            },
            &m,
        )
        .map(drop),
        other => panic!("unknown op {other}"),
    };
    if let Err(e) = result {
        eprintln!("child {op} failed: {e}");
        std::process::exit(3);
    }
    std::process::exit(0);
}

fn create_opts(name: &str, force: bool) -> CreateOptions {
    CreateOptions {
        name: Some(name.into()),
        force,
        record_integrity: true,
        labels: BTreeMap::from([("run".to_string(), "crash".to_string())]),
        ..Default::default()
    }
}

/// How a kill is delivered.
#[derive(Clone, Copy, Debug)]
enum KillMode {
    /// `MICROSNAP_FAULT=<point>:<n>` at a hit chosen from the op's trace.
    Point,
    /// `MICROSNAP_FAULT=random:<seed>:<permille>`.
    Random,
    /// SIGKILL from the parent after a random delay.
    Timer,
}

struct OpStats {
    kills: u32,
    attempts: u32,
    completed: u32,
    points: BTreeMap<String, u32>,
}

#[test]
fn crash_consistency_under_sigkill() {
    if child_request().is_some() {
        return;
    }
    let kills_wanted: u32 = if stress() { 200 } else { 20 };
    let seed: u64 = std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    println!("crash harness: seed {seed}, {kills_wanted} kills per operation");
    let template = Template::build();
    let work = tempfile::tempdir().unwrap();
    // The archive sits beside every instance's home (the child finds it there).
    std::fs::copy(&template.archive, work.path().join("chain.tar.zst")).unwrap();
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut total_kills = 0;
    for op in OPS {
        let (trace, full_run) = trace_op(&template, work.path(), op);
        assert!(!trace.is_empty(), "{op}: no fault points reached");
        let mut stats = OpStats {
            kills: 0,
            attempts: 0,
            completed: 0,
            points: BTreeMap::new(),
        };
        while stats.kills < kills_wanted {
            stats.attempts += 1;
            assert!(
                stats.attempts < kills_wanted * 10,
                "{op}: only {} kills in {} attempts",
                stats.kills,
                stats.attempts
            );
            let mode = match stats.attempts % 3 {
                0 => KillMode::Timer,
                1 => KillMode::Point,
                _ => KillMode::Random,
            };
            let root = work.path().join(format!("{op}-{}", stats.attempts));
            template.instantiate(&root);
            let killed_at = run_and_kill(op, &root, mode, &trace, full_run, &mut rng);
            match &killed_at {
                Some(point) => {
                    stats.kills += 1;
                    let key = if point.starts_with("timer@") {
                        "timer"
                    } else {
                        point
                    };
                    *stats.points.entry(key.to_string()).or_default() += 1;
                }
                None => stats.completed += 1,
            }
            let home = microsnap::open_home(&root).unwrap();
            if let Err(why) = check_home(&home).and_then(|set| check_op(op, &template, &home, &set))
            {
                panic!(
                    "{op}: invariant broken after {} (attempt {}, mode {mode:?}, seed {seed}): {why}",
                    killed_at.as_deref().unwrap_or("no kill"),
                    stats.attempts
                );
            }
            // The home stays usable: the operation can run to the end now.
            rerun_succeeds(op, &root);
            drop(home);
            std::fs::remove_dir_all(&root).unwrap();
        }
        total_kills += stats.kills;
        println!(
            "crash harness: {op}: {} kills survived, {} invariant checks ({} runs finished \
             before the kill); kills by place: {:?}",
            stats.kills, stats.attempts, stats.completed, stats.points
        );
    }
    println!(
        "crash harness: {total_kills} kills survived over {} operations in {:.1?}",
        OPS.len(),
        started.elapsed()
    );
}

/// Run `op` once to completion with tracing on: the fault points it reaches,
/// in order, and how long it takes.
fn trace_op(template: &Template, work: &Path, op: &str) -> (Vec<String>, Duration) {
    let root = work.join(format!("{op}-trace"));
    template.instantiate(&root);
    let trace_file = work.join(format!("{op}.trace"));
    let t = Instant::now();
    let out = spawn_child(
        "crash::crash_child",
        op,
        &root,
        Some(&format!("trace:{}", trace_file.display())),
    )
    .wait_with_output()
    .unwrap();
    let elapsed = t.elapsed();
    assert!(
        out.status.success(),
        "{op} trace run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace: Vec<String> = std::fs::read_to_string(&trace_file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    std::fs::remove_dir_all(&root).unwrap();
    (trace, elapsed)
}

/// Run `op` in a child and kill it. Returns where it died (a point name, or
/// `timer@<µs>`), or `None` if it finished first.
fn run_and_kill(
    op: &str,
    root: &Path,
    mode: KillMode,
    trace: &[String],
    full_run: Duration,
    rng: &mut Rng,
) -> Option<String> {
    let fault = match mode {
        KillMode::Point => {
            let i = rng.below(trace.len() as u64) as usize;
            let name = &trace[i];
            let n = trace[..=i].iter().filter(|p| *p == name).count();
            Some(format!("{name}:{n}"))
        }
        KillMode::Random => {
            // About one death per run on average.
            let permille = (1000 / trace.len().max(1)).max(1);
            Some(format!("random:{}:{permille}", rng.next()))
        }
        KillMode::Timer => None,
    };
    let mut child = spawn_child("crash::crash_child", op, root, fault.as_deref());
    if let KillMode::Timer = mode {
        let max = full_run.as_micros().max(1) as u64;
        let delay = Duration::from_micros(rng.below(max));
        std::thread::sleep(delay);
        // The child may already be gone: then kill fails and we count a completion.
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        return match std::os::unix::process::ExitStatusExt::signal(&out.status) {
            Some(9) => Some(format!("timer@{}us", delay.as_micros())),
            _ => {
                assert!(
                    out.status.success(),
                    "{op} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
        };
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match std::os::unix::process::ExitStatusExt::signal(&out.status) {
        Some(9) => Some(
            stderr
                .lines()
                .find_map(|l| l.strip_prefix("microsnap fault: killed at "))
                .unwrap_or("unknown point")
                .to_string(),
        ),
        _ => {
            assert!(out.status.success(), "{op} failed without a kill: {stderr}");
            None
        }
    }
}

/// What each operation promises about the artifacts it touched.
fn check_op(op: &str, t: &Template, home: &Home, set: &Set) -> Result<(), String> {
    let snaps = home.snapshots_dir();
    let digest_at = |name: &str| {
        set.iter()
            .find(|(p, _)| p == &snaps.join(name))
            .map(|(_, d)| d.clone())
    };
    // `base` is untouched by everything except a force-replace of it.
    if op != "create_force" && digest_at("base") != Some(t.base_digest.clone()) {
        return Err(format!("base changed or vanished: {:?}", digest_at("base")));
    }
    match op {
        "create_force" => {
            // Old or new, never neither: the old one intact, or a complete new one.
            let art = snapshot::open_dir(&snaps.join("base"))
                .map_err(|e| format!("base gone after a failed force-replace: {e}"))?;
            let is_new = art.descriptor.labels().get("run").map(String::as_str) == Some("crash");
            if art.digest != t.base_digest && !is_new {
                return Err(format!("base is neither old nor new: {}", art.digest));
            }
        }
        "remove" => {
            // Present and intact (checked by check_home), or gone everywhere.
            let listed = digest_at("victim");
            let on_disk = snaps.join("victim").exists();
            if listed.is_some() != on_disk {
                return Err(format!("victim: indexed {listed:?} but on disk {on_disk}"));
            }
            if let Some(d) = listed {
                if d != t.victim_digest {
                    return Err(format!("victim changed: {d}"));
                }
            }
        }
        "import" => {
            for d in &t.archive_digests {
                let n = set.iter().filter(|(_, x)| x == d).count();
                if n > 1 {
                    return Err(format!("{d} imported {n} times"));
                }
            }
        }
        "sandbox_from_snapshot" => {
            if let Ok(sb) = sandbox::get(home, "restored") {
                let got = file_digest(&sb.upper_path);
                let want = file_digest(&snaps.join("base/upper.ext4"));
                if got != want {
                    return Err("restored sandbox upper differs from base".into());
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// After recovery the operation can be run again to its end (or reports the
/// expected conflict when the killed run had already finished its work).
fn rerun_succeeds(op: &str, root: &Path) {
    let out = spawn_child("crash::crash_child", op, root, None)
        .wait_with_output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ok = out.status.success()
        || (matches!(op, "create" | "sandbox_from_snapshot") && stderr.contains("already exists"))
        || (op == "remove" && stderr.contains("not found"));
    assert!(ok, "{op}: rerun after recovery failed: {stderr}");
}

//! `make bench`: every long operation of the engine against its peer (the
//! standard tool doing the same job), measured alternately in the same run.
//!
//!     cargo run --release --example bench            # full run
//!     MICROSNAP_BENCH_REPS=3 cargo run --release --example bench
//!
//! Fixtures are built once into `$MICROSNAP_BENCH_CACHE` (default
//! `target/bench-cache`) and reused; the output says whether they were.
//! - F1: a 4 GiB sparse raw ext4 made with `mkfs.ext4 -d` from a copy of the
//!   Python standard library (site-packages excluded) and /usr/share/doc;
//! - F2: a 4 GiB sparse file holding 64 MiB of random data in 16 extents;
//! - F3: a 1 GiB dense random file.
//!
//! Each row runs ours, then the peer, then ours... `reps` times and reports
//! medians and ours/peer. `sync` runs (untimed) before every sample so one
//! sample's writeback does not land in the next one's time. Page cache is
//! warm for both contenders (nothing is dropped: the machine is shared).
//! The table is printed and written into docs/BENCHMARKS.md between the
//! `bench:begin`/`bench:end` markers; the prose around them is kept.
//!
//! The parts: `fixtures` (the inputs, built once), `measure` (timing ours
//! against the peer), `rows` (one method per table row), `report` (the
//! table and docs/BENCHMARKS.md) and `shell` (commands and file helpers);
//! the groups with their own peers and setup have a file each: `blake3`
//! (BLAKE3 integrity) and `registry` (push and pull through a loopback
//! docker-registry against `tar | zstd` + oras or skopeo).
mod blake3;
mod fixtures;
mod measure;
mod registry;
mod report;
mod rows;
mod shell;

use fixtures::{build_f1, build_f2, build_f3, build_go_list, cached, home_with_snapshots, Fixture};
use measure::{alternate, child, child_peak, median, timed};
use microsnap::home::Home;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot;
use report::{fmt_d, machine, table, write_doc};
use rows::{fixture_label, Bench, CloneHandle};
use shell::{allocated, cp_durable, q, rm, sh};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const IMAGE: &str = "alpine:3.20";
const REPO: &str = env!("CARGO_MANIFEST_DIR");

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2..]);
        return;
    }
    if let Err(e) = run() {
        eprintln!("bench failed: {e}");
        std::process::exit(1);
    }
}

/// `MICROSNAP_BENCH_ONLY=create,verify,blake3,archive,rss,sandbox,index,registry` runs only
/// those groups (for re-measuring one change); unset runs everything.
fn wanted(group: &str) -> bool {
    match std::env::var("MICROSNAP_BENCH_ONLY") {
        Ok(list) if !list.is_empty() => list.split(',').any(|g| g.trim() == group),
        _ => true,
    }
}

fn run() -> Res<()> {
    let started = Instant::now();
    let reps: usize = std::env::var("MICROSNAP_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let cache = std::env::var_os("MICROSNAP_BENCH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(REPO).join("target/bench-cache"));
    fs::create_dir_all(&cache)?;
    let cache = fs::canonicalize(&cache)?;
    let load_before = fs::read_to_string("/proc/loadavg")?.trim().to_string();
    eprintln!("bench: cache {} (load {load_before})", cache.display());

    let fixtures = [
        Fixture {
            id: "f1",
            path: cache.join("f1-ext4-4g.img"),
        },
        Fixture {
            id: "f2",
            path: cache.join("f2-sparse-4g.img"),
        },
        Fixture {
            id: "f3",
            path: cache.join("f3-dense-1g.img"),
        },
    ];
    let fixture_start = Instant::now();
    let warm = [
        cached(&fixtures[0].path, |p| build_f1(p, &cache))?,
        cached(&fixtures[1].path, build_f2)?,
        cached(&fixtures[2].path, build_f3)?,
    ];
    let all_warm = warm.iter().all(|w| *w);
    let fixture_time = fixture_start.elapsed();
    let mut fixture_lines = Vec::new();
    for (f, w) in fixtures.iter().zip(warm) {
        let meta = fs::metadata(&f.path)?;
        fixture_lines.push(format!(
            "{}: {} MiB logical, {} MiB allocated ({})",
            f.id.to_uppercase(),
            meta.len() / MIB,
            allocated(&f.path) / MIB,
            if w { "cached" } else { "built now" }
        ));
    }

    let work = cache.join("run");
    rm(&work);
    fs::create_dir_all(&work)?;
    let home = Home::open(&work.join("home"))?;
    sh(&format!(
        "python3 {}/tests/fixtures/make_oci_image.py {} {IMAGE} >/dev/null",
        REPO,
        q(&home.images_dir())
    ))?;
    for f in &fixtures {
        let source = SandboxSource::Upper {
            path: f.path.clone(),
            fstype: "ext4".into(),
            image: IMAGE.into(),
        };
        sandbox::create(&home, f.id, &source, &Monitor::none())?;
    }
    let mut b = Bench {
        reps,
        home,
        work: work.clone(),
        rows: Vec::new(),
        extra: Vec::new(),
        counter: 0,
    };

    eprintln!("snapshot create");
    if wanted("create") {
        for s in ["f1", "f2", "f3"] {
            b.create_row(s, None)?;
        }
    }
    let mut merkle = BTreeMap::new();
    for s in ["f1", "f2"] {
        let art = if wanted("create") {
            b.create_row(s, Some(Algorithm::MerkleSha256V1))?
                .ok_or("no snapshot kept")?
        } else {
            b.snapshot(s, Some(Algorithm::MerkleSha256V1))?
        };
        merkle.insert(s, art);
    }
    merkle.insert("f3", b.snapshot("f3", Some(Algorithm::MerkleSha256V1))?);

    eprintln!("verify");
    let targets = [
        ("f1", "F1", 0.02, "≤ 0.02×"),
        ("f2", "F2", 0.007, "≤ 0.007×"),
        ("f3", "F3", 0.6, "≤ 0.6×"),
    ];
    for (s, label, limit, target) in targets.into_iter().filter(|_| wanted("verify")) {
        let art = merkle[s].clone();
        b.verify_row(&art, label, Algorithm::MerkleSha256V1, Some(limit), target)?;
    }
    let msb_reps = reps.min(3);
    for s in ["f1", "f2"].into_iter().filter(|_| wanted("verify")) {
        let art = b.snapshot(s, Some(Algorithm::MsbSparseSha256V1))?;
        let saved = b.reps;
        b.reps = msb_reps;
        b.verify_row(
            &art,
            fixture_label(s),
            Algorithm::MsbSparseSha256V1,
            None,
            "about 1× (record)",
        )?;
        b.reps = saved;
        snapshot::remove(&b.home, &art.path.display().to_string(), true)?;
    }

    eprintln!("blake3");
    if wanted("blake3") {
        b.blake3_rows(&merkle)?;
    }

    eprintln!("export / import");
    for s in ["f1", "f2"].into_iter().filter(|_| wanted("archive")) {
        let art = merkle[s].clone();
        let label = fixture_label(s);
        let (ours, peer) = b.export_row(&art, label, false)?;
        b.import_row(label, &ours, &peer, &art.upper_path(), false)?;
        rm(&ours);
        rm(&peer);
    }
    if wanted("archive") {
        let art = merkle["f1"].clone();
        let saved = b.reps;
        b.reps = reps.min(3);
        let (ours, peer) = b.export_row(&art, "F1", true)?;
        b.import_row("F1", &ours, &peer, &art.upper_path(), true)?;
        b.reps = saved;
        rm(&ours);
        rm(&peer);
    }

    eprintln!("peak RSS");
    if wanted("rss") {
        let art = &merkle["f1"];
        let out = work.join("rss.tar.zst");
        let root = b.home.root().display().to_string();
        let export = child_peak(&[
            "export",
            &root,
            &art.path.display().to_string(),
            &out.display().to_string(),
        ])?;
        let dest = work.join("rss-import");
        let imp_home = work.join("rss-home").display().to_string();
        let import = child_peak(&[
            "import",
            &imp_home,
            &out.display().to_string(),
            &dest.display().to_string(),
        ])?;
        let verdict = |v: u64| if v <= 64 * MIB { "met" } else { "**missed**" };
        b.extra.push(format!(
            "peak RSS on F1 (target ≤ 64 MiB): export {} MiB ({}), import {} MiB ({})",
            export / MIB,
            verdict(export),
            import / MIB,
            verdict(import)
        ));
        rm(&out);
        rm(&dest);
    }

    eprintln!("sandbox from snapshot");
    if wanted("sandbox") {
        let art = merkle["f1"].clone();
        let upper = art.upper_path();
        let peer_dst = work.join("cp-dst");
        let home = b.home.clone_handle()?;
        let mut made = Vec::new();
        let samples = alternate(
            reps,
            |i| {
                let name = format!("sb-{i}");
                let src = SandboxSource::Snapshot {
                    name_or_path: art.path.display().to_string(),
                };
                let d = timed(|| Ok(sandbox::create(&home, &name, &src, &Monitor::none())?))?.0;
                made.push(name);
                Ok(d)
            },
            |_| cp_durable(&upper, &peer_dst),
        )?;
        for n in made {
            sandbox::remove(&b.home, &n)?;
        }
        b.push(
            "sandbox from snapshot (merkle integrity checked), durable",
            "F1",
            "`cp --sparse=always --reflink=auto && sync DST`",
            samples,
            "≤ 1.1",
            Some(1.1),
            String::new(),
        );
    }

    eprintln!("index: get and list");
    if wanted("index") {
        let template = merkle["f2"].clone();
        let big = home_with_snapshots(&work.join("home-10k"), &template, 10_000)?;
        let small = home_with_snapshots(&work.join("home-10"), &template, 10)?;
        const CALLS: u32 = 200;
        let get = |h: &Home, name: &str| -> Res<Duration> {
            let start = Instant::now();
            for _ in 0..CALLS {
                snapshot::get(h, name)?;
            }
            Ok(start.elapsed() / CALLS)
        };
        let samples = alternate(reps, |_| get(&big, "s-05000"), |_| get(&small, "s-00005"))?;
        b.push(
            "Get by name, 10,000 indexed",
            "index",
            "Get with 10 indexed",
            samples,
            "≤ 1.5",
            Some(1.5),
            format!("per call, mean of {CALLS}"),
        );

        // Each sample of either side is the median of LIST_CALLS calls on a
        // warm home (one call is mostly noise on the Go side: it lands
        // wherever the young process's garbage collector is).
        const LIST_CALLS: usize = 5;
        let rust_list = |_| -> Res<Duration> {
            let mut times = Vec::with_capacity(LIST_CALLS);
            for _ in 0..LIST_CALLS {
                let (d, v) = timed(|| Ok(snapshot::list(&big)?))?;
                if v.len() != 10_000 {
                    return Err(format!("list returned {}", v.len()).into());
                }
                times.push(d);
            }
            Ok(median(&times))
        };
        let binding = std::env::var_os("MICROSNAP_BENCH_GO_BINDING")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(REPO).join("bindings/go"));
        let go_list = if binding.is_dir() {
            build_go_list(&binding, &work).map_err(|e| e.to_string())
        } else {
            Err("Go binding not built: no bindings/go".to_string())
        };
        if let Ok(exe) = go_list {
            let root = big.root().display().to_string();
            let go = |_| -> Res<Duration> {
                let out = Command::new(&exe)
                    .args([&root, "10000", &LIST_CALLS.to_string()])
                    .output()?;
                let text = String::from_utf8_lossy(&out.stdout);
                let ns: u64 = text
                    .lines()
                    .find_map(|l| l.strip_prefix("LIST_NS=")?.trim().parse().ok())
                    .ok_or_else(|| {
                        format!(
                            "bench-go-list printed no LIST_NS: {text} {}",
                            String::from_utf8_lossy(&out.stderr)
                        )
                    })?;
                Ok(Duration::from_nanos(ns))
            };
            let samples = alternate(reps, go, rust_list)?;
            b.push(
                "List of 10,000 through the Go binding",
                "index",
                "List through the Rust API",
                samples,
                "≤ 3",
                Some(3.0),
                format!("median of {LIST_CALLS} calls per sample"),
            );
        } else if let Err(why) = go_list {
            let (d, _) = alternate(reps, rust_list, |_| Ok(Duration::ZERO))?;
            b.extra.push(format!(
                "List of 10,000 through the Go binding: not measured ({}); List through the Rust API: {}",
                why.lines().next().unwrap_or(""),
                fmt_d(median(&d))
            ));
        }
    }

    eprintln!("registry push / pull");
    if wanted("registry") {
        let art = merkle["f1"].clone();
        b.registry_rows(&art)?;
    }

    let load_after = fs::read_to_string("/proc/loadavg")?.trim().to_string();
    let total = started.elapsed();
    let mut out = String::new();
    out.push_str(&format!(
        "Run: {} fixtures ({}), {} reps per row (msb-sparse and dense rows: {}), alternating ours/peer, medians; \
         fixtures {}; whole run {:.0} s.\n\n",
        if all_warm { "warm" } else { "cold" },
        if all_warm { "reused from the cache".to_string() } else { format!("built in {:.0} s", fixture_time.as_secs_f64()) },
        reps,
        reps.min(3),
        fixture_lines.join("; "),
        total.as_secs_f64()
    ));
    out.push_str(&format!("Machine: {}.\n", machine().join("; ")));
    out.push_str(&format!(
        "Load (/proc/loadavg) before: `{load_before}`, after: `{load_after}`.\n\n"
    ));
    out.push_str(&table(&b.rows, &b.extra));
    println!("{out}");
    if std::env::var("MICROSNAP_BENCH_ONLY").map_or(true, |v| v.is_empty()) {
        write_doc(&out)?;
    } else {
        eprintln!("partial run (MICROSNAP_BENCH_ONLY): docs/BENCHMARKS.md left as it was");
    }
    rm(&work);
    Ok(())
}

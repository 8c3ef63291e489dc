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
use microsnap::archive::{self, ExportOptions};
use microsnap::home::Home;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, Artifact, CreateOptions};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const IMAGE: &str = "alpine:3.20";
const TREE_CAP: u64 = 400 * MIB;
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

// ---------------------------------------------------------------------------
// measurement

/// One row of the table.
struct Row {
    operation: String,
    fixture: &'static str,
    peer: String,
    ours: Vec<Duration>,
    theirs: Vec<Duration>,
    target: String,
    /// ours/peer must be at most this (None: for the record only).
    limit: Option<f64>,
    note: String,
}

impl Row {
    fn ratio(&self) -> f64 {
        median(&self.ours).as_secs_f64() / median(&self.theirs).as_secs_f64().max(1e-9)
    }
    fn verdict(&self) -> &'static str {
        match self.limit {
            Some(l) if self.ratio() <= l => "met",
            Some(_) => "**missed**",
            None => "record",
        }
    }
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        Duration::ZERO
    } else {
        s[s.len() / 2]
    }
}

fn fmt_d(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 0.001 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.1} µs", s * 1e6)
    }
}

/// Flush everything dirty so the next sample starts from a clean slate.
fn settle() {
    let _ = Command::new("sync").status();
}

/// Run ours and the peer alternately; each closure returns its own timing
/// (setup and cleanup stay outside it).
fn alternate(
    reps: usize,
    mut ours: impl FnMut(usize) -> Res<Duration>,
    mut peer: impl FnMut(usize) -> Res<Duration>,
) -> Res<(Vec<Duration>, Vec<Duration>)> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..reps {
        settle();
        a.push(ours(i)?);
        settle();
        b.push(peer(i)?);
    }
    Ok((a, b))
}

fn timed<T>(f: impl FnOnce() -> Res<T>) -> Res<(Duration, T)> {
    let start = Instant::now();
    let v = f()?;
    Ok((start.elapsed(), v))
}

/// CPU time (user + system) used so far by this process's threads
/// (`libc::RUSAGE_SELF`) or by its finished children (`RUSAGE_CHILDREN`).
/// The archive rows print it: when both sides keep both cores busy, CPU
/// time is what the ratio is made of, and it is less noisy than wall time
/// on a shared machine.
fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: getrusage fills the one struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Mean CPU seconds per run of ours and the peer, as a note.
fn cpu_note(ours: Duration, peer: Duration, reps: usize) -> String {
    let per = |d: Duration| d.as_secs_f64() / reps.max(1) as f64;
    format!("CPU per run {:.2} s vs {:.2} s", per(ours), per(peer))
}

/// Run a shell pipeline, timed; fails loudly if it fails.
fn sh(cmd: &str) -> Res<Duration> {
    let start = Instant::now();
    let out = Command::new("sh").arg("-c").arg(cmd).output()?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "`{cmd}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(elapsed)
}

fn sh_out(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

fn allocated(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}

fn rm(p: &Path) {
    if p.is_dir() {
        let _ = fs::remove_dir_all(p);
    } else {
        let _ = fs::remove_file(p);
    }
}

// ---------------------------------------------------------------------------
// fixtures

struct Fixture {
    id: &'static str,
    path: PathBuf,
}

fn xorshift_fill(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_exact_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
}

fn write_random(file: &File, offset: u64, len: u64, seed: &mut u64) -> Res<()> {
    let mut buf = vec![0u8; (8 * MIB) as usize];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        xorshift_fill(&mut buf[..n], seed);
        file.write_all_at(&buf[..n], offset + at)?;
        at += n as u64;
    }
    Ok(())
}

/// Build `path` with `make` under a temporary name unless it exists.
/// Returns true if it was already there (warm).
fn cached(path: &Path, make: impl FnOnce(&Path) -> Res<()>) -> Res<bool> {
    if path.exists() {
        return Ok(true);
    }
    let tmp = path.with_extension("partial");
    rm(&tmp);
    make(&tmp)?;
    fs::rename(&tmp, path)?;
    Ok(false)
}

fn build_f1(out: &Path, cache: &Path) -> Res<()> {
    let tree = cache.join("f1-tree");
    rm(&tree);
    fs::create_dir_all(&tree)?;
    let stdlib = sh_out("python3 -c 'import sysconfig;print(sysconfig.get_paths()[\"stdlib\"])'");
    if stdlib.is_empty() {
        return Err("python3 is needed to locate the standard library for F1".into());
    }
    let (python, doc) = (tree.join("python"), tree.join("doc"));
    fs::create_dir_all(&python)?;
    fs::create_dir_all(&doc)?;
    sh(&format!(
        "tar -C {} --exclude=site-packages -cf - . | tar -C {} -xf -",
        q(Path::new(&stdlib)),
        q(&python)
    ))?;
    sh(&format!(
        "tar -C /usr/share/doc -cf - . | tar -C {} -xf -",
        q(&doc)
    ))?;
    // Cap the tree: drop the largest files until it fits.
    let size: u64 = sh_out(&format!("du -sb {} | cut -f1", q(&tree)))
        .parse()
        .unwrap_or(0);
    if size > TREE_CAP {
        let mut excess = size - TREE_CAP;
        let list = sh_out(&format!(
            "find {} -type f -printf '%s %p\\n' | sort -rn",
            q(&tree)
        ));
        for line in list.lines() {
            if excess == 0 {
                break;
            }
            if let Some((n, p)) = line.split_once(' ') {
                let n: u64 = n.parse().unwrap_or(0);
                let _ = fs::remove_file(p);
                excess = excess.saturating_sub(n);
            }
        }
    }
    File::create(out)?.set_len(4 * GIB)?;
    sh(&format!("mkfs.ext4 -q -F -d {} {}", q(&tree), q(out)))?;
    rm(&tree);
    Ok(())
}

fn build_f2(out: &Path) -> Res<()> {
    let f = File::create(out)?;
    f.set_len(4 * GIB)?;
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for i in 0..16u64 {
        // 4 MiB extents spread over the disk, not aligned to anything special.
        write_random(&f, i * (250 * MIB) + 12345 * 4096, 4 * MIB, &mut seed)?;
    }
    f.sync_all()?;
    Ok(())
}

fn build_f3(out: &Path) -> Res<()> {
    let f = File::create(out)?;
    let mut seed = 0x2545_f491_4f6c_dd1d;
    write_random(&f, 0, GIB, &mut seed)?;
    f.sync_all()?;
    Ok(())
}

// ---------------------------------------------------------------------------
// the child process used for peak RSS

fn peak_rss() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn child(args: &[String]) {
    let result: Res<()> = (|| {
        let home = Home::open(Path::new(&args[1]))?;
        match args[0].as_str() {
            "export" => {
                archive::export(
                    &home,
                    &args[2],
                    Path::new(&args[3]),
                    &ExportOptions::default(),
                    &Monitor::none(),
                )?;
            }
            "import" => {
                archive::import(
                    &home,
                    Path::new(&args[2]),
                    Some(Path::new(&args[3])),
                    &Monitor::none(),
                )?;
            }
            other => return Err(format!("unknown child op {other}").into()),
        }
        Ok(())
    })();
    match result {
        Ok(()) => println!("PEAK_RSS={}", peak_rss()),
        Err(e) => {
            eprintln!("child failed: {e}");
            std::process::exit(1)
        }
    }
}

fn child_peak(args: &[&str]) -> Res<u64> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--child")
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("PEAK_RSS=")?.trim().parse().ok())
        .ok_or_else(|| format!("no PEAK_RSS in {text}").into())
}

// ---------------------------------------------------------------------------
// the run

struct Bench {
    reps: usize,
    home: Home,
    work: PathBuf,
    rows: Vec<Row>,
    extra: Vec<String>,
    counter: usize,
}

impl Bench {
    fn unique(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    fn upper_of_sandbox(&self, name: &str) -> Res<PathBuf> {
        Ok(sandbox::get(&self.home, name)?.upper_path)
    }

    fn snapshot(&mut self, sandbox: &str, algorithm: Option<Algorithm>) -> Res<Artifact> {
        let name = self.unique(&format!("keep-{sandbox}"));
        let opts = CreateOptions {
            name: Some(name),
            record_integrity: algorithm.is_some(),
            integrity_algorithm: algorithm,
            ..CreateOptions::default()
        };
        Ok(snapshot::create(
            &self.home,
            sandbox,
            &opts,
            &Monitor::none(),
        )?)
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        operation: &str,
        fixture: &'static str,
        peer: &str,
        (ours, theirs): (Vec<Duration>, Vec<Duration>),
        target: &str,
        limit: Option<f64>,
        note: String,
    ) {
        let row = Row {
            operation: operation.into(),
            fixture,
            peer: peer.into(),
            ours,
            theirs,
            target: target.into(),
            limit,
            note,
        };
        eprintln!(
            "  {} {}: ours {} peer {} ratio {:.3} ({})",
            row.operation,
            row.fixture,
            fmt_d(median(&row.ours)),
            fmt_d(median(&row.theirs)),
            row.ratio(),
            row.verdict()
        );
        self.rows.push(row);
    }

    fn create_row(&mut self, sandbox: &'static str, integrity: bool) -> Res<Option<Artifact>> {
        let upper = self.upper_of_sandbox(sandbox)?;
        let peer_dst = self.work.join("cp-dst");
        let mut kept = None;
        let mut names = Vec::new();
        let reps = self.reps;
        let home = self.home.clone_handle()?;
        let samples = alternate(
            reps,
            |i| {
                let name = format!("create-{sandbox}-{integrity}-{i}");
                let opts = CreateOptions {
                    name: Some(name.clone()),
                    record_integrity: integrity,
                    ..CreateOptions::default()
                };
                let (d, art) =
                    timed(|| Ok(snapshot::create(&home, sandbox, &opts, &Monitor::none())?))?;
                names.push(name);
                kept = Some(art);
                Ok(d)
            },
            |_| {
                rm(&peer_dst);
                let d = sh(&format!(
                    "cp --sparse=always --reflink=auto {} {} && sync {}",
                    q(&upper),
                    q(&peer_dst),
                    q(&peer_dst)
                ))?;
                rm(&peer_dst);
                Ok(d)
            },
        )?;
        // Keep the last one (for later rows), drop the rest.
        for n in names.iter().take(names.len().saturating_sub(1)) {
            snapshot::remove(&self.home, n, true)?;
        }
        let (op, target, limit) = if integrity {
            (
                "snapshot create with integrity (merkle), durable",
                "≤ 1.5",
                1.5,
            )
        } else {
            ("snapshot create without integrity, durable", "≤ 1.1", 1.1)
        };
        self.push(
            op,
            fixture_label(sandbox),
            "`cp --sparse=always --reflink=auto && sync DST`",
            samples,
            target,
            Some(limit),
            String::new(),
        );
        Ok(kept)
    }

    fn verify_row(
        &mut self,
        art: &Artifact,
        fixture: &'static str,
        algorithm: Algorithm,
        limit: Option<f64>,
        target: &str,
    ) -> Res<()> {
        let upper = art.upper_path();
        let samples = alternate(
            self.reps,
            |_| Ok(timed(|| Ok(snapshot::verify_artifact(art, &Monitor::none())?))?.0),
            |_| sh(&format!("openssl dgst -sha256 {} >/dev/null", q(&upper))),
        )?;
        if fixture == "F3" && algorithm == Algorithm::MerkleSha256V1 {
            let t = median(&samples.0).as_secs_f64();
            self.extra.push(format!(
                "merkle hashing throughput on dense data (F3, 1 GiB, page cache warm, verify included): {:.2} GiB/s; openssl dgst -sha256: {:.2} GiB/s",
                1.0 / t,
                1.0 / median(&samples.1).as_secs_f64()
            ));
        }
        self.push(
            &format!("verify, {}", algorithm.name()),
            fixture,
            "`openssl dgst -sha256 FILE`",
            samples,
            target,
            limit,
            String::new(),
        );
        Ok(())
    }

    fn export_row(
        &mut self,
        art: &Artifact,
        fixture: &'static str,
        dense: bool,
    ) -> Res<(PathBuf, PathBuf)> {
        let ours_out = self.work.join(format!("ours-{fixture}-{dense}.tar.zst"));
        let peer_out = self.work.join(format!("gnu-{fixture}-{dense}.tar.zst"));
        let upper = art.upper_path();
        let dir = upper.parent().ok_or("upper has no parent")?.to_path_buf();
        let file = upper
            .file_name()
            .ok_or("no file name")?
            .to_string_lossy()
            .into_owned();
        let opts = ExportOptions {
            dense,
            ..ExportOptions::default()
        };
        let path_ref = art.path.display().to_string();
        let peer_cmd = if dense {
            format!(
                "tar -C {} -cf - {} | zstd -q -3 -T1 > {}",
                q(&dir),
                q(Path::new(&file)),
                q(&peer_out)
            )
        } else {
            format!(
                "tar --sparse -C {} -cf - {} | zstd -q -3 -T0 > {}",
                q(&dir),
                q(Path::new(&file)),
                q(&peer_out)
            )
        };
        let home = &self.home;
        let (mut ours_cpu, mut peer_cpu) = (Duration::ZERO, Duration::ZERO);
        let samples = alternate(
            self.reps,
            |_| {
                rm(&ours_out);
                let cpu = cpu_time(libc::RUSAGE_SELF);
                let d = timed(|| {
                    Ok(archive::export(
                        home,
                        &path_ref,
                        &ours_out,
                        &opts,
                        &Monitor::none(),
                    )?)
                })?
                .0;
                ours_cpu += cpu_time(libc::RUSAGE_SELF) - cpu;
                Ok(d)
            },
            |_| {
                rm(&peer_out);
                let cpu = cpu_time(libc::RUSAGE_CHILDREN);
                let d = sh(&peer_cmd)?;
                peer_cpu += cpu_time(libc::RUSAGE_CHILDREN) - cpu;
                Ok(d)
            },
        )?;
        let (a, b) = (
            fs::metadata(&ours_out)?.len(),
            fs::metadata(&peer_out)?.len(),
        );
        let note = format!(
            "archive {} vs {} bytes = {:.4}×; {}",
            a,
            b,
            a as f64 / b as f64,
            cpu_note(ours_cpu, peer_cpu, self.reps)
        );
        if dense {
            self.push(
                "export .tar.zst, dense option",
                fixture,
                "`tar -cf - FILE | zstd -3 -T1` (v0.6.3)",
                samples,
                "≤ 1.0",
                Some(1.0),
                note,
            );
        } else {
            let ok = a <= b;
            let note = format!(
                "{note} ({})",
                if ok { "size met" } else { "**size missed**" }
            );
            self.push(
                "export .tar.zst",
                fixture,
                "`tar --sparse -cf - FILE | zstd -3 -T0`",
                samples,
                "≤ 0.7, size ≤ 1.0×",
                Some(0.7),
                note,
            );
        }
        Ok((ours_out, peer_out))
    }

    fn import_row(
        &mut self,
        fixture: &'static str,
        ours_archive: &Path,
        peer_archive: &Path,
        source: &Path,
        dense: bool,
    ) -> Res<()> {
        let imp_home = Home::open(&self.work.join("import-home"))?;
        let ours_dir = self.work.join("import-ours");
        let peer_dir = self.work.join("import-peer");
        let mut ours_alloc = 0;
        let mut peer_alloc = 0;
        let (mut ours_cpu, mut peer_cpu) = (Duration::ZERO, Duration::ZERO);
        let samples = alternate(
            self.reps,
            |_| {
                rm(&ours_dir);
                let cpu = cpu_time(libc::RUSAGE_SELF);
                let (d, report) = timed(|| {
                    Ok(archive::import(
                        &imp_home,
                        ours_archive,
                        Some(&ours_dir),
                        &Monitor::none(),
                    )?)
                })?;
                ours_cpu += cpu_time(libc::RUSAGE_SELF) - cpu;
                ours_alloc = allocated(&report.head.upper_path());
                rm(&ours_dir);
                Ok(d)
            },
            |_| {
                rm(&peer_dir);
                fs::create_dir_all(&peer_dir)?;
                let cpu = cpu_time(libc::RUSAGE_CHILDREN);
                let d = sh(&format!(
                    "zstd -dc {} | tar --sparse -xf - -C {}",
                    q(peer_archive),
                    q(&peer_dir)
                ))?;
                peer_cpu += cpu_time(libc::RUSAGE_CHILDREN) - cpu;
                peer_alloc = fs::read_dir(&peer_dir)?
                    .filter_map(|e| e.ok())
                    .map(|e| allocated(&e.path()))
                    .sum();
                rm(&peer_dir);
                Ok(d)
            },
        )?;
        let src_alloc = allocated(source);
        let ratio = ours_alloc as f64 / src_alloc as f64;
        let note = format!(
            "allocated {} MiB = {:.3}× source ({}); GNU tar's {} MiB; {}",
            ours_alloc / MIB,
            ratio,
            if ratio <= 1.05 { "met" } else { "**missed**" },
            peer_alloc / MIB,
            cpu_note(ours_cpu, peer_cpu, self.reps)
        );
        if dense {
            self.push(
                "import of a dense archive",
                fixture,
                "same GNU pipeline, dense archive",
                samples,
                "< 1.0, alloc ≤ 1.05×",
                Some(1.0),
                note,
            );
        } else {
            self.push(
                "import",
                fixture,
                "`zstd -dc A | tar --sparse -xf -` (GNU archive)",
                samples,
                "≤ 0.8, alloc ≤ 1.05×",
                Some(0.8),
                note,
            );
        }
        Ok(())
    }
}

fn fixture_label(sandbox: &str) -> &'static str {
    match sandbox {
        "f1" => "F1",
        "f2" => "F2",
        _ => "F3",
    }
}

trait CloneHandle {
    fn clone_handle(&self) -> Res<Home>;
}
impl CloneHandle for Home {
    fn clone_handle(&self) -> Res<Home> {
        Ok(Home::open(self.root())?)
    }
}

/// A home holding `count` real artifacts (tiny sparse uppers, distinct
/// manifests), indexed with reindex.
fn home_with_snapshots(root: &Path, template: &Artifact, count: usize) -> Res<Home> {
    rm(root);
    let home = Home::open(root)?;
    let snaps = home.snapshots_dir();
    for i in 0..count {
        let dir = snaps.join(format!("s-{i:05}"));
        fs::create_dir_all(&dir)?;
        let mut m = template.manifest.clone();
        m.labels = BTreeMap::from([("seq".to_string(), i.to_string())]);
        m.upper.size_bytes = MIB;
        m.upper.integrity = None;
        m.parent = None;
        fs::write(dir.join("manifest.json"), m.canonical_bytes())?;
        File::create(dir.join(&m.upper.file))?.set_len(MIB)?;
    }
    let n = snapshot::reindex(&home, None)?;
    if n as usize != count {
        return Err(format!("reindex found {n} of {count} artifacts").into());
    }
    Ok(home)
}

fn machine() -> Vec<String> {
    let cpu = sh_out("lscpu | sed -n 's/^Model name: *//p' | head -1");
    let flags: Vec<&str> = ["sha_ni", "avx2", "avx512f"]
        .into_iter()
        .filter(|f| {
            fs::read_to_string("/proc/cpuinfo")
                .unwrap_or_default()
                .contains(f)
        })
        .collect();
    vec![
        format!(
            "CPU: {cpu}, {} cores ({})",
            sh_out("nproc"),
            flags.join(", ")
        ),
        format!(
            "memory: {}",
            sh_out("free -h | awk '/Mem:/{print $2\" total, \"$7\" available\"}'")
        ),
        format!("kernel: {}", sh_out("uname -sr")),
        format!(
            "tools: {}; {}; {}; {}",
            sh_out("tar --version | head -1"),
            sh_out("zstd --version"),
            sh_out("openssl version"),
            sh_out("cp --version | head -1")
        ),
    ]
}

/// `MICROSNAP_BENCH_ONLY=create,verify,archive,rss,sandbox,index` runs only
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
            b.create_row(s, false)?;
        }
    }
    let mut merkle = BTreeMap::new();
    for s in ["f1", "f2"] {
        let art = if wanted("create") {
            b.create_row(s, true)?.ok_or("no snapshot kept")?
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
            |_| {
                rm(&peer_dst);
                let d = sh(&format!(
                    "cp --sparse=always --reflink=auto {} {} && sync {}",
                    q(&upper),
                    q(&peer_dst),
                    q(&peer_dst)
                ))?;
                rm(&peer_dst);
                Ok(d)
            },
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
    out.push_str("| operation | fixture | ours (median) | peer (same run) | peer (median) | ours/peer | target | result | notes |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for r in &b.rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.3} | {} | {} | {} |\n",
            r.operation,
            r.fixture,
            fmt_d(median(&r.ours)),
            r.peer,
            fmt_d(median(&r.theirs)),
            r.ratio(),
            r.target,
            r.verdict(),
            r.note
        ));
    }
    out.push('\n');
    for e in &b.extra {
        out.push_str(&format!("- {e}\n"));
    }
    println!("{out}");
    if std::env::var("MICROSNAP_BENCH_ONLY").map_or(true, |v| v.is_empty()) {
        write_doc(&out)?;
    } else {
        eprintln!("partial run (MICROSNAP_BENCH_ONLY): docs/BENCHMARKS.md left as it was");
    }
    rm(&work);
    Ok(())
}

/// Build tools/bench-go-list against the binding at `binding`, linked to
/// this release build's library through a generated pkg-config file.
fn build_go_list(binding: &Path, work: &Path) -> Res<PathBuf> {
    let release = Path::new(REPO).join("target/release");
    let lib = release.join("libmicrosnap.so");
    if !lib.exists() {
        return Err(format!(
            "{} is missing: run `cargo build --release --lib`",
            lib.display()
        )
        .into());
    }
    let soname = release.join("libmicrosnap.so.0");
    if !soname.exists() {
        std::os::unix::fs::symlink("libmicrosnap.so", &soname)?;
    }
    let include = binding.join("../../include");
    let dir = work.join("go-list");
    fs::create_dir_all(&dir)?;
    fs::copy(
        Path::new(REPO).join("tools/bench-go-list/main.go"),
        dir.join("main.go"),
    )?;
    fs::write(
        dir.join("go.mod"),
        format!(
            "module benchgolist\n\ngo 1.24\n\nrequire github.com/microsnap/microsnap/bindings/go v0.0.0\n\n\
             replace github.com/microsnap/microsnap/bindings/go => {}\n",
            fs::canonicalize(binding)?.display()
        ),
    )?;
    fs::write(
        dir.join("microsnap.pc"),
        format!(
            "Name: microsnap\nDescription: bench build\nVersion: 0\nCflags: -I{}\n\
             Libs: -L{} -lmicrosnap -Wl,-rpath,{}\n",
            fs::canonicalize(include)?.display(),
            release.display(),
            release.display()
        ),
    )?;
    // The binding's own dependencies: their checksums from its go.sum, and
    // -mod=mod lets go add their requirements (and the go version they
    // need) to this generated go.mod.
    fs::copy(binding.join("go.sum"), dir.join("go.sum"))?;
    let out = Command::new("go")
        .args([
            "build",
            "-mod=mod",
            "-tags",
            "microsnap_pkgconfig",
            "-o",
            "bench-go-list",
            ".",
        ])
        .current_dir(&dir)
        .env("PKG_CONFIG_PATH", &dir)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "go build of bench-go-list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(dir.join("bench-go-list"))
}

const BEGIN: &str = "<!-- bench:begin (written by `make bench`) -->";
const END: &str = "<!-- bench:end -->";

/// Replace the generated section of docs/BENCHMARKS.md, keeping the prose.
fn write_doc(table: &str) -> Res<()> {
    let path = Path::new(REPO).join("docs/BENCHMARKS.md");
    let old = fs::read_to_string(&path).unwrap_or_default();
    let generated = format!("{BEGIN}\n{table}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(z)) if a < z => format!("{}{generated}{}", &old[..a], &old[z + END.len()..]),
        _ => format!("# Benchmarks\n\n{generated}\n"),
    };
    let mut f = File::create(&path)?;
    f.write_all(new.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

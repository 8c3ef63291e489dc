//! Measuring one row: ours and the peer alternately, wall and CPU time, and
//! the peak RSS of an export, import, push or pull run in a child process.
use crate::Res;
use microsnap::archive::{self, ExportOptions};
use microsnap::distribution::{self, PullOptions, PushOptions, RemoteOptions};
use microsnap::home::Home;
use microsnap::progress::Monitor;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One row of the table.
pub struct Row {
    pub operation: String,
    pub fixture: &'static str,
    pub peer: String,
    pub ours: Vec<Duration>,
    pub theirs: Vec<Duration>,
    pub target: String,
    /// ours/peer must be at most this (None: for the record only).
    pub limit: Option<f64>,
    pub note: String,
}

impl Row {
    pub fn ratio(&self) -> f64 {
        median(&self.ours).as_secs_f64() / median(&self.theirs).as_secs_f64().max(1e-9)
    }
    pub fn verdict(&self) -> &'static str {
        match self.limit {
            Some(l) if self.ratio() <= l => "met",
            Some(_) => "**missed**",
            None => "record",
        }
    }
}

pub fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        Duration::ZERO
    } else {
        s[s.len() / 2]
    }
}

/// Flush everything dirty so the next sample starts from a clean slate.
pub fn settle() {
    let _ = Command::new("sync").status();
}

/// Run ours and the peer alternately; each closure returns its own timing
/// (setup and cleanup stay outside it).
pub fn alternate(
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

pub fn timed<T>(f: impl FnOnce() -> Res<T>) -> Res<(Duration, T)> {
    let start = Instant::now();
    let v = f()?;
    Ok((start.elapsed(), v))
}

/// CPU time (user + system) used so far by this process's threads
/// (`libc::RUSAGE_SELF`) or by its finished children (`RUSAGE_CHILDREN`).
/// The archive rows print it: when both sides keep both cores busy, CPU
/// time is what the ratio is made of, and it is less noisy than wall time
/// on a shared machine.
pub fn cpu_time(who: libc::c_int) -> Duration {
    // SAFETY: getrusage fills the one struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Mean CPU seconds per run of ours and the peer, as a note.
pub fn cpu_note(ours: Duration, peer: Duration, reps: usize) -> String {
    let per = |d: Duration| d.as_secs_f64() / reps.max(1) as f64;
    format!("CPU per run {:.2} s vs {:.2} s", per(ours), per(peer))
}

// ---------------------------------------------------------------------------
// the child process used for peak RSS

pub fn peak_rss() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

pub fn child(args: &[String]) {
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
            // The registry group's peak RSS: push HOME NAME_OR_PATH REF,
            // pull HOME REF (into HOME's snapshots directory).
            "push" => {
                let options = PushOptions {
                    remote: RemoteOptions {
                        plain_http: true,
                        ..RemoteOptions::default()
                    },
                    ..PushOptions::default()
                };
                distribution::push(&home, &args[2], &args[3], &options, &Monitor::none())?;
            }
            "pull" => {
                let options = PullOptions {
                    remote: RemoteOptions {
                        plain_http: true,
                        ..RemoteOptions::default()
                    },
                    ..PullOptions::default()
                };
                distribution::pull(&home, &args[2], None, &options, &Monitor::none())?;
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

pub fn child_peak(args: &[&str]) -> Res<u64> {
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

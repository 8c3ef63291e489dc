//! The armed fault points (built only with the `testing` feature): a point
//! can make the process die (SIGKILL to itself, exactly like an OOM kill or
//! a power cut as far as the files are concerned) or fail with an I/O error.
//!
//! When `MICROSNAP_FAULT` is unset a point costs one relaxed atomic load. The
//! variable is read once per process:
//!
//! | value | effect |
//! |---|---|
//! | `<point>:<n>` | die the n-th time `<point>` is reached (n ≥ 1) |
//! | `<point>:<n>:io` | return an `io` error (EIO) the n-th time instead |
//! | `random:<seed>:<permille>` | at every point, die with probability permille/1000 (deterministic per seed) |
//! | `trace:<file>` | append every point's name to `<file>`, one per line, and go on |
//!
//! Points are named `<module>.<where>`; `docs/RELIABILITY.md` lists them.
use crate::error::{Error, Result};
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

/// The environment variable that arms the points.
pub const FAULT_ENV: &str = "MICROSNAP_FAULT";

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
/// Hits of the targeted point (`Nth`), or of any point (`Random`).
static HITS: AtomicU64 = AtomicU64::new(0);

/// What `MICROSNAP_FAULT` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Act the `n`-th time `point` is reached.
    Nth {
        point: String,
        n: u64,
        action: Action,
    },
    /// Die at each point with probability `permille`/1000.
    Random { seed: u64, permille: u64 },
    /// Record every point reached in `file`.
    Trace { file: String },
}

/// What an armed point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL this process.
    Die,
    /// Return an `io` error.
    IoError,
}

/// Serializes trace writes between threads.
static TRACE_MUTEX: Mutex<()> = Mutex::new(());

impl Plan {
    /// Parse a `MICROSNAP_FAULT` value; `None` for anything malformed, so a
    /// typo disarms rather than kills at random.
    pub fn parse(value: &str) -> Option<Plan> {
        if let Some(file) = value.strip_prefix("trace:") {
            return (!file.is_empty()).then(|| Plan::Trace {
                file: file.to_string(),
            });
        }
        if let Some(rest) = value.strip_prefix("random:") {
            let (seed, permille) = rest.split_once(':')?;
            let permille: u64 = permille.parse().ok()?;
            return (permille <= 1000).then_some(Plan::Random {
                seed: seed.parse().ok()?,
                permille,
            });
        }
        let mut parts = value.split(':');
        let point = parts.next().filter(|p| !p.is_empty())?.to_string();
        let n: u64 = parts.next()?.parse().ok().filter(|n| *n >= 1)?;
        let action = match parts.next() {
            None | Some("die") => Action::Die,
            Some("io") => Action::IoError,
            Some(_) => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Plan::Nth { point, n, action })
    }
}

fn plan() -> Option<&'static Plan> {
    PLAN.get_or_init(|| std::env::var(FAULT_ENV).ok().and_then(|v| Plan::parse(&v)))
        .as_ref()
}

/// A fault point. A no-op unless `MICROSNAP_FAULT` arms it.
#[inline]
pub fn point(name: &str) -> Result<()> {
    if STATE.load(Ordering::Relaxed) == OFF {
        return Ok(());
    }
    armed_point(name)
}

#[cold]
fn armed_point(name: &str) -> Result<()> {
    let Some(plan) = plan() else {
        STATE.store(OFF, Ordering::Relaxed);
        return Ok(());
    };
    STATE.store(ON, Ordering::Relaxed);
    match plan {
        Plan::Nth { point, n, action } => {
            if point != name || HITS.fetch_add(1, Ordering::Relaxed) + 1 != *n {
                return Ok(());
            }
            match action {
                Action::Die => die(name),
                Action::IoError => Err(Error::Io {
                    context: format!("injected fault at {name}"),
                    source: std::io::Error::from(rustix::io::Errno::IO),
                }),
            }
        }
        Plan::Random { seed, permille } => {
            let hit = HITS.fetch_add(1, Ordering::Relaxed);
            if splitmix64(seed ^ hit.wrapping_mul(0x9e37_79b9_7f4a_7c15)) % 1000 < *permille {
                die(name);
            }
            Ok(())
        }
        Plan::Trace { file } => {
            let _guard = TRACE_MUTEX.lock().unwrap_or_else(|p| p.into_inner());
            // Tracing is a test aid: a write failure must not change what the
            // engine does.
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(file)
            {
                let _ = writeln!(f, "{name}");
            }
            Ok(())
        }
    }
}

/// One step of SplitMix64: a good 64-bit mix, so nearby hit numbers give
/// unrelated decisions.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Die the way a crash does: no destructors, no unwinding, no flushing of
/// anything but what already reached the kernel.
fn die(name: &str) -> ! {
    eprintln!("microsnap fault: killed at {name}");
    kill_self();
    // SIGKILL cannot be caught; should it somehow not arrive, abort.
    std::process::abort()
}

fn kill_self() {
    use rustix::process::{getpid, kill_process, Signal};
    let _ = kill_process(getpid(), Signal::KILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form_and_rejects_typos() {
        assert_eq!(
            Plan::parse("publish.before_rename:3"),
            Some(Plan::Nth {
                point: "publish.before_rename".into(),
                n: 3,
                action: Action::Die
            })
        );
        assert_eq!(
            Plan::parse("x.y:1:io"),
            Some(Plan::Nth {
                point: "x.y".into(),
                n: 1,
                action: Action::IoError
            })
        );
        assert_eq!(
            Plan::parse("random:42:250"),
            Some(Plan::Random {
                seed: 42,
                permille: 250
            })
        );
        assert!(matches!(
            Plan::parse("trace:/tmp/t"),
            Some(Plan::Trace { .. })
        ));
        for bad in [
            "",
            "x",
            "x:0",
            "x:-1",
            ":3",
            "x:1:boom",
            "x:1:io:2",
            "random:1",
            "random:a:1",
            "random:1:1001",
            "trace:",
        ] {
            assert_eq!(Plan::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unarmed_points_are_no_ops() {
        // The test binary runs without MICROSNAP_FAULT (the crash harness
        // only sets it for its children).
        if std::env::var_os(FAULT_ENV).is_none() {
            for _ in 0..3 {
                point("publish.before_rename").unwrap();
            }
            assert_eq!(STATE.load(Ordering::Relaxed), OFF);
        }
    }
}

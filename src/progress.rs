//! Cancellation and progress reporting for long operations.
//!
//! A [`Monitor`] is handed to every long operation. It carries an optional
//! [`CancelToken`] (triggered from any thread) and an optional progress
//! callback whose `false` return asks to cancel. Operations call
//! [`Monitor::phase`] when a [`Phase`] begins, [`Monitor::advance`] as bytes
//! are processed and [`Monitor::check`] at safe points; all three return
//! `Err(Error::Cancelled)` once cancellation is requested.
//!
//! What the callback sees is guaranteed here, and only here (the C ABI and
//! both bindings pass it on unchanged; docs/abi.md states it):
//! - each phase begins with one report of `done == 0`;
//! - within a phase, `total` stays the same, `done` never decreases and
//!   never exceeds `total`;
//! - reports never overlap (one callback call at a time).
//!
//! Parallel workers count their bytes without a lock and may report in any
//! order, and an operation's total can be an estimate that the bytes
//! actually processed overrun (a file that grew while it was read); the
//! monitor clamps rather than letting either show.
use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A cancellation flag shared between the caller and a running operation.
#[derive(Clone, Debug, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The phases long operations report. Their names are part of the ABI
/// (docs/abi.md lists them; tests/ffi/abi_doc.rs keeps the list in step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Copying an upper file (snapshot create, sandbox create from a snapshot).
    Copy,
    /// Computing an upper's integrity digest (create with integrity, verify,
    /// and import checking what it unpacked).
    Hash,
    /// Writing an archive; bytes are the upper and image data written.
    Export,
    /// Reading an archive; bytes are the archive file's bytes read.
    Import,
    /// Removing the snapshots a prune selected; bytes are the allocated
    /// bytes of the artifacts removed.
    Prune,
    /// Sending a snapshot to a registry or OCI layout; bytes are the upper's
    /// data bytes read, chunked and (where new) compressed and uploaded.
    Push,
    /// Receiving a snapshot; bytes are the upper's non-zero chunk bytes
    /// written (downloaded or copied from a local artifact).
    Pull,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Copy,
        Phase::Hash,
        Phase::Export,
        Phase::Import,
        Phase::Prune,
        Phase::Push,
        Phase::Pull,
    ];

    /// The name the progress callback receives.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Copy => "copy",
            Phase::Hash => "hash",
            Phase::Export => "export",
            Phase::Import => "import",
            Phase::Prune => "prune",
            Phase::Push => "push",
            Phase::Pull => "pull",
        }
    }
}

/// Called with (phase, bytes_done, bytes_total); return `false` to cancel.
/// It may be called from a worker thread, but never from two at once.
pub type ProgressFn<'a> = dyn FnMut(&str, u64, u64) -> bool + Send + 'a;

/// Cancellation plus progress for one operation. Cheap to share across the
/// operation's worker threads (`&Monitor` is `Sync`).
pub struct Monitor<'a> {
    cancel: Option<CancelToken>,
    progress: Option<Mutex<Reporter<'a>>>,
    cancelled: AtomicBool,
    /// Bytes counted in the current phase. Workers add to it without
    /// taking the reporter's lock; only reports are serialized.
    done: AtomicU64,
}

/// The callback and what it was last told, under one lock so that a phase
/// change and a report can never interleave.
struct Reporter<'a> {
    callback: Box<ProgressFn<'a>>,
    /// `None` until the first phase begins: nothing is reported before.
    phase: Option<Phase>,
    total: u64,
    /// The last `done` passed on in this phase.
    reported: u64,
}

impl Default for Monitor<'_> {
    fn default() -> Self {
        Monitor::none()
    }
}

impl<'a> Monitor<'a> {
    /// No cancellation and no progress.
    pub fn none() -> Self {
        Monitor {
            cancel: None,
            progress: None,
            cancelled: AtomicBool::new(false),
            done: AtomicU64::new(0),
        }
    }

    pub fn new(cancel: Option<CancelToken>, progress: Option<Box<ProgressFn<'a>>>) -> Self {
        Monitor {
            cancel,
            progress: progress.map(|callback| {
                Mutex::new(Reporter {
                    callback,
                    phase: None,
                    total: 0,
                    reported: 0,
                })
            }),
            ..Monitor::none()
        }
    }

    pub fn with_cancel(cancel: CancelToken) -> Self {
        Monitor::new(Some(cancel), None)
    }

    /// True once the token fired or the callback asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
            || self.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }

    /// `Err(Cancelled)` if cancellation was requested.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Start a phase of `total` bytes; progress restarts at 0.
    pub fn phase(&self, phase: Phase, total: u64) -> Result<()> {
        match &self.progress {
            None => self.done.store(0, Ordering::Relaxed),
            Some(reporter) => {
                let mut r = lock(reporter);
                self.done.store(0, Ordering::Relaxed);
                r.phase = Some(phase);
                r.total = total;
                r.reported = 0;
                self.tell(&mut r, phase, 0);
            }
        }
        self.check()
    }

    /// Count `bytes` more as done in the current phase and report.
    pub fn advance(&self, bytes: u64) -> Result<()> {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        if let Some(reporter) = &self.progress {
            let mut r = lock(reporter);
            if let Some(phase) = r.phase {
                // Read the count under the lock, then hold it to the
                // phase's bounds: a worker that added earlier may report
                // after one that added later, and the count may overrun
                // the total.
                let done = self
                    .done
                    .load(Ordering::Relaxed)
                    .min(r.total)
                    .max(r.reported);
                r.reported = done;
                self.tell(&mut r, phase, done);
            }
        }
        self.check()
    }

    fn tell(&self, r: &mut Reporter<'_>, phase: Phase, done: u64) {
        let total = r.total;
        if !(r.callback)(phase.name(), done, total) {
            self.cancelled.store(true, Ordering::Relaxed);
        }
    }
}

fn lock<'m, 'a>(reporter: &'m Mutex<Reporter<'a>>) -> std::sync::MutexGuard<'m, Reporter<'a>> {
    // A callback that panicked leaves the reporter's fields consistent
    // (each is a plain assignment), so poison is benign.
    reporter.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_cancels_checks() {
        let t = CancelToken::new();
        let m = Monitor::with_cancel(t.clone());
        assert!(m.check().is_ok());
        t.cancel();
        assert!(matches!(m.check(), Err(Error::Cancelled)));
    }

    #[test]
    fn callback_false_cancels_and_sees_phases() {
        let mut seen = Vec::new();
        {
            let m = Monitor::new(
                None,
                Some(Box::new(|p: &str, d, t| {
                    seen.push((p.to_string(), d, t));
                    d < 10
                })),
            );
            m.phase(Phase::Copy, 20).unwrap();
            m.advance(5).unwrap();
            assert!(matches!(m.advance(5), Err(Error::Cancelled)));
            assert!(m.is_cancelled());
        }
        assert_eq!(seen[0], ("copy".to_string(), 0, 20));
        assert_eq!(seen[2], ("copy".to_string(), 10, 20));
    }

    #[test]
    fn reports_never_go_backwards_under_parallel_workers() {
        let seen = Mutex::new(Vec::new());
        let m = Monitor::new(
            None,
            Some(Box::new(|_: &str, d, _| {
                seen.lock().unwrap().push(d);
                true
            })),
        );
        m.phase(Phase::Hash, 8 * 1000).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        m.advance(1).unwrap();
                    }
                });
            }
        });
        drop(m);
        let seen = seen.into_inner().unwrap();
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "went backwards");
        assert_eq!(*seen.last().unwrap(), 8000);
    }

    type Report = (String, u64, u64);

    fn recording(seen: &Mutex<Vec<Report>>) -> Monitor<'_> {
        Monitor::new(
            None,
            Some(Box::new(|p: &str, d, t| {
                seen.lock().unwrap().push((p.to_string(), d, t));
                true
            })),
        )
    }

    /// The rule docs/abi.md states, checked over a whole sequence of reports.
    fn assert_the_rule(reports: &[Report]) {
        let mut current: Option<&Report> = None;
        for r in reports {
            let (phase, done, total) = r;
            assert!(done <= total, "{r:?}: done > total");
            match current {
                Some((p, d, t)) if *done > 0 => {
                    assert_eq!(
                        (p, t),
                        (phase, total),
                        "{r:?}: a phase that did not begin at 0"
                    );
                    assert!(done >= d, "{r:?}: went backwards from {d}");
                }
                None if *done > 0 => panic!("{r:?}: a phase that did not begin at 0"),
                _ => {}
            }
            current = Some(r);
        }
    }

    #[test]
    fn done_never_exceeds_total() {
        let seen = Mutex::new(Vec::new());
        let m = recording(&seen);
        m.phase(Phase::Copy, 10).unwrap();
        m.advance(7).unwrap();
        m.advance(7).unwrap();
        m.phase(Phase::Hash, 0).unwrap();
        m.advance(3).unwrap();
        drop(m);
        let seen = seen.into_inner().unwrap();
        let want: Vec<Report> = [
            ("copy", 0, 10),
            ("copy", 7, 10),
            ("copy", 10, 10),
            ("hash", 0, 0),
            ("hash", 0, 0),
        ]
        .iter()
        .map(|(p, d, t)| (p.to_string(), *d, *t))
        .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn nothing_is_reported_before_the_first_phase() {
        let seen = Mutex::new(Vec::new());
        let m = recording(&seen);
        m.advance(5).unwrap();
        m.phase(Phase::Import, 9).unwrap();
        m.advance(1).unwrap();
        drop(m);
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen, vec![("import".into(), 0, 9), ("import".into(), 1, 9)]);
    }

    // Workers that keep counting while the operation moves on to the next
    // phase (and overrun each phase's total) must not make a report go
    // backwards, overrun, or carry one phase's total into another.
    #[test]
    fn phase_changes_under_parallel_workers_keep_the_rule() {
        let seen = Mutex::new(Vec::new());
        let m = recording(&seen);
        let stop = AtomicBool::new(false);
        m.phase(Phase::Copy, 50).unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        m.advance(3).unwrap();
                    }
                });
            }
            for round in 0..200u64 {
                let phase = Phase::ALL[(round % 4) as usize];
                m.phase(phase, 1 + round % 50).unwrap();
                std::thread::yield_now();
            }
            stop.store(true, Ordering::Relaxed);
        });
        drop(m);
        let seen = seen.into_inner().unwrap();
        assert!(
            seen.len() > 200,
            "workers reported too little to test: {}",
            seen.len()
        );
        assert_the_rule(&seen);
    }

    #[test]
    fn phase_names_are_distinct() {
        let mut names: Vec<_> = Phase::ALL.iter().map(|p| p.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Phase::ALL.len());
    }
}

//! Cancellation and progress reporting for long operations.
//!
//! A [`Monitor`] is handed to every long operation. It carries an optional
//! [`CancelToken`] (triggered from any thread) and an optional progress
//! callback whose `false` return asks to cancel. Operations call
//! [`Monitor::advance`] as bytes are processed and [`Monitor::check`] at safe
//! points; both return `Err(Error::Cancelled)` once cancellation is requested.
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

/// Called with (phase, bytes_done, bytes_total); return `false` to cancel.
/// It may be called from a worker thread, but never from two at once.
pub type ProgressFn<'a> = dyn FnMut(&str, u64, u64) -> bool + Send + 'a;

/// Cancellation plus progress for one operation. Cheap to share across the
/// operation's worker threads (`&Monitor` is `Sync`).
pub struct Monitor<'a> {
    cancel: Option<CancelToken>,
    progress: Option<Mutex<Box<ProgressFn<'a>>>>,
    cancelled: AtomicBool,
    phase: Mutex<(String, u64)>,
    done: AtomicU64,
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
            phase: Mutex::new((String::new(), 0)),
            done: AtomicU64::new(0),
        }
    }

    pub fn new(cancel: Option<CancelToken>, progress: Option<Box<ProgressFn<'a>>>) -> Self {
        Monitor {
            cancel,
            progress: progress.map(Mutex::new),
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
    pub fn phase(&self, name: &str, total: u64) -> Result<()> {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = (name.to_string(), total);
        self.done.store(0, Ordering::Relaxed);
        self.report()
    }

    /// Count `bytes` more as done in the current phase and report.
    pub fn advance(&self, bytes: u64) -> Result<()> {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        self.report()
    }

    fn report(&self) -> Result<()> {
        if let Some(cb) = &self.progress {
            let (name, total) = self.phase.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let mut cb = cb.lock().unwrap_or_else(|p| p.into_inner());
            // Read the count under the callback's lock: parallel workers add
            // in any order, but the values reported never go backwards.
            let done = self.done.load(Ordering::Relaxed);
            if !(cb)(&name, done, total) {
                self.cancelled.store(true, Ordering::Relaxed);
            }
        }
        self.check()
    }
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
            m.phase("copy", 20).unwrap();
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
        m.phase("hash", 8 * 1000).unwrap();
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
}

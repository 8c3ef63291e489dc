//! Turns the C cancel token and progress callback into an engine `Monitor`.
use super::{msnap_cancel, msnap_progress_fn, token, CANCELS};
use crate::error::Result;
use crate::progress::{Monitor, ProgressFn};
use std::ffi::{c_void, CString};

/// The C callback and its payload. The caller promises the payload may be
/// used from the worker thread the callback runs on (docs/abi.md).
struct Callback {
    f: unsafe extern "C" fn(*const std::ffi::c_char, u64, u64, *mut c_void) -> i32,
    payload: *mut c_void,
}

// SAFETY: the ABI documents that the callback may run on a worker thread
// (never two at once; Monitor serializes calls), so sending it is the
// caller's stated contract.
unsafe impl Send for Callback {}

impl Callback {
    fn call(&self, phase: &str, done: u64, total: u64) -> bool {
        let phase = CString::new(phase).unwrap_or_default();
        // SAFETY: a valid function pointer supplied by the caller, with a
        // NUL-terminated phase that lives across the call.
        unsafe { (self.f)(phase.as_ptr(), done, total, self.payload) == 0 }
    }
}

pub fn monitor(
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> Result<Monitor<'static>> {
    let cancel = if cancel.is_null() {
        None
    } else {
        Some((*CANCELS.get(token(cancel))?).clone())
    };
    let progress: Option<Box<ProgressFn<'static>>> = progress.map(|f| {
        let cb = Callback { f, payload };
        Box::new(move |phase: &str, done, total| cb.call(phase, done, total)) as Box<ProgressFn>
    });
    Ok(Monitor::new(cancel, progress))
}

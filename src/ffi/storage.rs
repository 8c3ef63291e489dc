//! Storage upkeep exports: image prune and the home's usage report.
use super::boundary::{call_text, encode, json_arg};
use super::json::*;
use super::ops::monitor;
use super::{context, msnap_cancel, msnap_context, msnap_progress_fn};
use crate::image::{self, ImagePruneOptions};
use crate::usage;
use std::ffi::{c_char, c_void};

/// Remove the blobs of the home's OCI layout that no tagged image, sandbox
/// or snapshot needs, and the unnamed `index.json` entries nothing pins.
/// `args`: NULL or `{"dry_run"?}`. `*out`: the prune report. Cancellable;
/// reports no progress phase (each step is an unlink).
#[no_mangle]
pub extern "C" fn msnap_image_prune(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> i32 {
    call_text(out, || {
        let home = context(ctx)?;
        let a: ImagePruneArgs = json_arg(args)?;
        let m = monitor(cancel, progress, payload)?;
        let report = image::prune(&home, &ImagePruneOptions { dry_run: a.dry_run }, &m)?;
        encode(&ImagePruneJson::from(&report))
    })
}

/// What the home's snapshots, sandboxes and images occupy: logical,
/// allocated and shared bytes of each, plus totals. `args`: NULL or `{}`.
/// `*out`: the usage report.
#[no_mangle]
pub extern "C" fn msnap_home_usage(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call_text(out, || {
        let home = context(ctx)?;
        let _: EmptyArgs = json_arg(args)?;
        let u = usage::usage(&home)?;
        encode(&UsageJson::from(&u))
    })
}

//! The C ABI. This module is the only place with `extern "C"`, raw pointers
//! and boundary `unsafe`; everything it does is: check arguments, call the
//! engine, encode the result as JSON (see docs/abi.md).
//!
//! Handle types are opaque to C. Their pointer values are checked tokens
//! (see `handles.rs`), never addresses.
#![allow(non_camel_case_types)]
// Exports take raw pointers from C and check them (NULL, handle tokens)
// before use; marking them `unsafe fn` would only move that burden onto Rust
// callers (the tests), not onto C, which cannot see the marker.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod archive;
mod boundary;
mod distribution;
mod handles;
pub mod json;
mod ops;
mod sandbox;
mod snapshot;
mod storage;

#[cfg(test)]
mod scale_tests;

pub use archive::*;
pub use boundary::{all_codes, all_phases};
pub use distribution::*;
pub use sandbox::*;
pub use snapshot::*;
pub use storage::*;

use crate::error::Error;
use crate::home::Home;
use crate::progress::CancelToken;
use boundary::{call, call_status, json_arg};
use handles::Registry;
use std::ffi::c_char;

/// ABI version: bumped on any incompatible change. Bindings refuse a
/// library whose version they do not know.
pub const MSNAP_ABI_VERSION: u32 = 1;

/// Success.
pub const MSNAP_OK: i32 = 0;
pub const MSNAP_ERR_SNAPSHOT_NOT_FOUND: i32 = 1;
pub const MSNAP_ERR_SANDBOX_NOT_FOUND: i32 = 2;
pub const MSNAP_ERR_IMAGE_NOT_FOUND: i32 = 3;
pub const MSNAP_ERR_ALREADY_EXISTS: i32 = 4;
pub const MSNAP_ERR_SANDBOX_RUNNING: i32 = 5;
pub const MSNAP_ERR_HAS_CHILDREN: i32 = 6;
pub const MSNAP_ERR_INTEGRITY_MISMATCH: i32 = 7;
pub const MSNAP_ERR_INVALID_ARGUMENT: i32 = 8;
pub const MSNAP_ERR_INVALID_MANIFEST: i32 = 9;
pub const MSNAP_ERR_INVALID_ARCHIVE: i32 = 10;
pub const MSNAP_ERR_UNSUPPORTED: i32 = 11;
pub const MSNAP_ERR_IO: i32 = 12;
pub const MSNAP_ERR_CANCELLED: i32 = 13;
pub const MSNAP_ERR_INTERNAL: i32 = 14;
pub const MSNAP_ERR_UNAUTHORIZED: i32 = 15;
pub const MSNAP_ERR_REGISTRY_ERROR: i32 = 16;

/// A context bound to one home directory. Thread-safe.
pub struct msnap_context {
    _opaque: [u8; 0],
}

/// A cancellation token: create, pass to long operations, trigger from any
/// thread, free.
pub struct msnap_cancel {
    _opaque: [u8; 0],
}

/// A running sandbox: holds the sandbox's lock until stopped or freed.
pub struct msnap_sandbox {
    _opaque: [u8; 0],
}

/// Progress callback: `(phase, bytes_done, bytes_total, payload)`. Return
/// non-zero to cancel the operation. May be called from a worker thread,
/// never from two threads at once.
pub type msnap_progress_fn = Option<
    unsafe extern "C" fn(
        phase: *const c_char,
        bytes_done: u64,
        bytes_total: u64,
        payload: *mut std::ffi::c_void,
    ) -> i32,
>;

pub(crate) static CONTEXTS: Registry<Home> = Registry::new(0x4d, "context");
pub(crate) static CANCELS: Registry<CancelToken> = Registry::new(0x43, "cancel");

fn token<T>(p: *const T) -> u64 {
    p as usize as u64
}

fn context(p: *const msnap_context) -> Result<std::sync::Arc<Home>, Error> {
    CONTEXTS.get(token(p))
}

/// The `format` member of create and export: absent = the default.
fn artifact_format(name: Option<&str>) -> Result<crate::artifact::ArtifactFormat, Error> {
    name.map_or(Ok(Default::default()), str::parse)
}

/// The ABI version this library implements (`MSNAP_ABI_VERSION`).
#[no_mangle]
pub extern "C" fn msnap_abi_version() -> u32 {
    MSNAP_ABI_VERSION
}

/// The library's version string, e.g. "0.1.0". Static: do not free.
#[no_mangle]
pub extern "C" fn msnap_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Free a string returned by the library. NULL is a no-op. Each string must
/// be freed exactly once, and only with this function.
///
/// # Safety
/// `s` is NULL or a string this library returned and has not freed yet.
#[no_mangle]
pub unsafe extern "C" fn msnap_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: per the contract, `s` came from CString::into_raw here.
        drop(unsafe { std::ffi::CString::from_raw(s) });
    }
}

/// Open a context on a home. `args`: `{"home": "/path"}` or NULL/`{}` for
/// the default (`$MICROSNAP_HOME`, else `~/.microsnap`). On success
/// `*out_ctx` receives the context (release it with `msnap_context_free`) and
/// `*out` `{"home": "/abs/path"}`.
#[no_mangle]
pub extern "C" fn msnap_context_open(
    out_ctx: *mut *mut msnap_context,
    out: *mut *mut c_char,
    args: *const c_char,
) -> i32 {
    call(out, || {
        if out_ctx.is_null() {
            return Err(Error::InvalidArgument("out_ctx is NULL".into()));
        }
        let a: json::ContextOpenArgs = json_arg(args)?;
        let root = match a.home {
            Some(p) => p,
            None => crate::home::default_root()?,
        };
        let home = crate::recovery::open_home(&root)?;
        let root = home.root().to_path_buf();
        let t = CONTEXTS.insert(home);
        // SAFETY: checked non-NULL above; the caller owns the slot.
        unsafe { *out_ctx = t as usize as *mut msnap_context };
        Ok(json::ContextJson { home: root })
    })
}

/// Free a context. Freeing twice, or a handle that is not a context, is
/// `MSNAP_ERR_INVALID_ARGUMENT`. Calls still running on other threads
/// finish normally.
#[no_mangle]
pub extern "C" fn msnap_context_free(ctx: *mut msnap_context) -> i32 {
    call_status(|| CONTEXTS.remove(token(ctx)).map(drop))
}

/// Deprecated alias of `msnap_context_free`, its name before every handle
/// was released with a `_free` function. Kept for ABI version 1; new code
/// calls `msnap_context_free`.
#[deprecated(note = "renamed msnap_context_free")]
#[no_mangle]
pub extern "C" fn msnap_context_close(ctx: *mut msnap_context) -> i32 {
    msnap_context_free(ctx)
}

/// Create a cancel token. Free it with `msnap_cancel_free`.
#[no_mangle]
pub extern "C" fn msnap_cancel_new(out_cancel: *mut *mut msnap_cancel) -> i32 {
    call_status(|| {
        if out_cancel.is_null() {
            return Err(Error::InvalidArgument("out_cancel is NULL".into()));
        }
        let t = CANCELS.insert(CancelToken::new());
        // SAFETY: checked non-NULL above.
        unsafe { *out_cancel = t as usize as *mut msnap_cancel };
        Ok(())
    })
}

/// Ask every operation using this token to stop. Thread-safe; idempotent.
#[no_mangle]
pub extern "C" fn msnap_cancel_trigger(cancel: *mut msnap_cancel) -> i32 {
    call_status(|| CANCELS.get(token(cancel)).map(|c| c.cancel()))
}

/// Free a cancel token. Operations already holding it keep working.
#[no_mangle]
pub extern "C" fn msnap_cancel_free(cancel: *mut msnap_cancel) -> i32 {
    call_status(|| CANCELS.remove(token(cancel)).map(drop))
}

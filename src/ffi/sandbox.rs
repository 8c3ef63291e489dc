//! Sandbox exports: create, start, stop, info, free, get, list, remove, and
//! the local image layout (list, import).
use super::boundary::{call, call_status, call_text, encode, json_arg};
use super::json::*;
use super::ops::monitor;
use super::{context, msnap_cancel, msnap_context, msnap_progress_fn, msnap_sandbox, token};
use crate::error::Error;
use crate::home::Home;
use crate::image;
use crate::sandbox::{self, RunningSandbox, SandboxSource};
use std::ffi::{c_char, c_void};
use std::sync::Mutex;

/// A running sandbox handle; `None` once stopped through it.
pub(crate) type SandboxSlot = Mutex<Option<RunningSandbox>>;
pub(crate) static SANDBOXES: super::handles::Registry<SandboxSlot> =
    super::handles::Registry::new(0x53, "sandbox");

fn hand_out(out_sandbox: *mut *mut msnap_sandbox, running: RunningSandbox) {
    let t = SANDBOXES.insert(Mutex::new(Some(running)));
    // SAFETY: callers check `out_sandbox` is non-NULL before getting here.
    unsafe { *out_sandbox = t as usize as *mut msnap_sandbox };
}

fn source_of(a: &SandboxCreateArgs) -> Result<SandboxSource, Error> {
    match (&a.image, &a.snapshot, &a.upper) {
        (image, Some(snap), None) => {
            if image.is_some() || a.size_bytes.is_some() || a.fstype.is_some() {
                return Err(Error::InvalidArgument(
                    "a sandbox from a snapshot takes its image, fstype and size from the snapshot"
                        .into(),
                ));
            }
            Ok(SandboxSource::Snapshot {
                name_or_path: snap.clone(),
            })
        }
        (Some(image), None, Some(upper)) => {
            if a.size_bytes.is_some() {
                return Err(Error::InvalidArgument(
                    "size_bytes does not apply to an adopted upper".into(),
                ));
            }
            Ok(SandboxSource::Upper {
                path: upper.clone(),
                fstype: a.fstype.clone().ok_or_else(|| {
                    Error::InvalidArgument("adopting an upper needs fstype".into())
                })?,
                image: image.clone(),
            })
        }
        (Some(image), None, None) => Ok(SandboxSource::Image {
            image: image.clone(),
            size_bytes: a.size_bytes,
            fstype: a.fstype.clone(),
        }),
        (None, None, Some(_)) => Err(Error::InvalidArgument(
            "adopting an upper needs the image it runs on".into(),
        )),
        _ => Err(Error::InvalidArgument(
            "give one of: image, snapshot, or image + upper + fstype".into(),
        )),
    }
}

/// Create a sandbox. `args`: `{"name", "image"?, "snapshot"?, "upper"?,
/// "fstype"?, "size_bytes"?, "start"?}`. Unless `"start": false`, it is
/// started and `*out_sandbox` receives the running handle (then
/// `out_sandbox` must not be NULL). `*out`: the sandbox object.
#[no_mangle]
pub extern "C" fn msnap_sandbox_create(
    out_sandbox: *mut *mut msnap_sandbox,
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: SandboxCreateArgs = json_arg(args)?;
        let start = a.start.unwrap_or(true);
        if start && out_sandbox.is_null() {
            return Err(Error::InvalidArgument(
                "out_sandbox is NULL (pass \"start\": false to create without starting)".into(),
            ));
        }
        let source = source_of(&a)?;
        let m = monitor(cancel, progress, payload)?;
        let created = sandbox::create(&home, &a.name, &source, &m)?;
        if !start {
            return Ok(SandboxJson::from(&created));
        }
        let running = sandbox::start(&home, &a.name)?;
        let info = running.info()?;
        hand_out(out_sandbox, running);
        Ok(SandboxJson::from(&info))
    })
}

/// Start an existing sandbox. `args`: `{"name"}`. `*out_sandbox`: the
/// running handle; `*out`: the sandbox object. `sandbox_running` if it is.
#[no_mangle]
pub extern "C" fn msnap_sandbox_start(
    out_sandbox: *mut *mut msnap_sandbox,
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        if out_sandbox.is_null() {
            return Err(Error::InvalidArgument("out_sandbox is NULL".into()));
        }
        let a: NameArgs = json_arg(args)?;
        let running = sandbox::start(&home, &a.name)?;
        let info = running.info()?;
        hand_out(out_sandbox, running);
        Ok(SandboxJson::from(&info))
    })
}

/// Stop a running sandbox through its handle: records it stopped and
/// releases the lock. `*out`: the sandbox, now `stopped`. The handle stays
/// valid until `msnap_sandbox_free`; stopping it again changes nothing and
/// returns `{}` (as `msnap_sandbox_info` does after a stop).
#[no_mangle]
pub extern "C" fn msnap_sandbox_stop(out: *mut *mut c_char, sb: *mut msnap_sandbox) -> i32 {
    call(out, || {
        let slot = SANDBOXES.get(token(sb))?;
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        match guard.take() {
            Some(running) => {
                let name = running.name().to_string();
                let home = running.home().clone();
                running.stop()?;
                let stopped = sandbox::get(&home, &name)?;
                Ok(HeldSandboxJson::Held(Box::new(SandboxJson::from(&stopped))))
            }
            None => Ok(HeldSandboxJson::Stopped(EmptyJson {})),
        }
    })
}

/// The sandbox behind a running handle, as it is now. After stop, `{}`.
#[no_mangle]
pub extern "C" fn msnap_sandbox_info(out: *mut *mut c_char, sb: *const msnap_sandbox) -> i32 {
    call(out, || {
        let slot = SANDBOXES.get(token(sb))?;
        let guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(running) => Ok(HeldSandboxJson::Held(Box::new(SandboxJson::from(
                &running.info()?,
            )))),
            None => Ok(HeldSandboxJson::Stopped(EmptyJson {})),
        }
    })
}

/// Free a sandbox handle. If it was not stopped, the lock is released
/// without recording a stop, so the sandbox reads as crashed, as if its
/// process had died. Freeing twice is `invalid_argument`.
#[no_mangle]
pub extern "C" fn msnap_sandbox_free(sb: *mut msnap_sandbox) -> i32 {
    call_status(|| SANDBOXES.remove(token(sb)).map(drop))
}

/// A sandbox by name. `args`: `{"name"}`. `*out`: the sandbox object.
#[no_mangle]
pub extern "C" fn msnap_sandbox_get(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: NameArgs = json_arg(args)?;
        Ok(SandboxJson::from(&sandbox::get(&home, &a.name)?))
    })
}

/// All sandboxes by name. `args`: NULL or `{}`. `*out`: `{"sandboxes": [...]}`.
#[no_mangle]
pub extern "C" fn msnap_sandbox_list(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let _: EmptyArgs = json_arg(args)?;
        let sandboxes = sandbox::list(&home)?
            .iter()
            .map(SandboxJson::from)
            .collect();
        Ok(SandboxListJson { sandboxes })
    })
}

/// Record a sandbox that no handle holds as stopped (clears "crashed").
/// `args`: `{"name"}`. `sandbox_running` if a live handle holds it.
#[no_mangle]
pub extern "C" fn msnap_sandbox_mark_stopped(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: NameArgs = json_arg(args)?;
        Ok(SandboxJson::from(&sandbox::stop(&home, &a.name)?))
    })
}

/// Remove a sandbox that is not running. `args`: `{"name"}`. `*out`: `{}`.
#[no_mangle]
pub extern "C" fn msnap_sandbox_remove(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: NameArgs = json_arg(args)?;
        sandbox::remove(&home, &a.name)?;
        Ok(EmptyJson {})
    })
}

/// Images in the home's OCI layout. `args`: NULL or `{}`.
/// `*out`: `{"images": [{"ref", "manifest_digest", "config_digest", "layers", "size"}]}`.
#[no_mangle]
pub extern "C" fn msnap_image_list(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call_text(out, || {
        let home: std::sync::Arc<Home> = context(ctx)?;
        let _: EmptyArgs = json_arg(args)?;
        let images = image::list(&home.images_dir())?;
        encode(&ImageListJson {
            images: images.iter().map(ImageJson::from).collect(),
        })
    })
}

/// Copy the images of another OCI layout directory into the home's,
/// checking every blob. `args`: `{"source", "ref"?}`.
/// `*out`: `{"images": [{"ref", "manifest_digest"}]}`.
#[no_mangle]
pub extern "C" fn msnap_image_import(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call_text(out, || {
        let home = context(ctx)?;
        let a: ImageImportArgs = json_arg(args)?;
        let pins = image::import_layout(&home.images_dir(), &a.source, a.reference.as_deref())?;
        encode(&ImageImportJson {
            images: pins.iter().map(ImagePinJson::from).collect(),
        })
    })
}

//! Snapshot exports: create, open, get, list, list_dir, remove, reindex, verify.
use super::boundary::{call, call_text, encode_into, error_json, json_arg, to_value};
use super::json::*;
use super::ops::monitor;
use super::{context, msnap_cancel, msnap_context, msnap_progress_fn};
use crate::error::Error;
use crate::integrity::Algorithm;
use crate::snapshot::{self, CreateOptions};
use serde_json::{json, Value};
use std::ffi::{c_char, c_void};

/// Create a snapshot of a stopped, crashed or never-started sandbox.
/// `args`: `{"source_sandbox", "name"|"path", "labels"?, "force"?,
/// "record_integrity"?, "integrity_algorithm"?}`. `*out`: the artifact.
#[no_mangle]
pub extern "C" fn msnap_snapshot_create(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: SnapshotCreateArgs = json_arg(args)?;
        let integrity_algorithm = match a.integrity_algorithm.as_deref() {
            None | Some("") => None,
            Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| {
                Error::InvalidArgument(format!("unknown integrity algorithm {name:?}"))
            })?),
        };
        let opts = CreateOptions {
            name: a.name,
            path: a.path,
            labels: a.labels,
            force: a.force,
            record_integrity: a.record_integrity,
            integrity_algorithm,
        };
        let m = monitor(cancel, progress, payload)?;
        let art = snapshot::create(&home, &a.source_sandbox, &opts, &m)?;
        to_value(ArtifactJson::from(&art))
    })
}

/// Open an artifact by bare name or path (metadata checks only).
/// `args`: `{"ref"}`. `*out`: the artifact.
#[no_mangle]
pub extern "C" fn msnap_snapshot_open(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: RefArgs = json_arg(args)?;
        to_value(ArtifactJson::from(&snapshot::open(&home, &a.reference)?))
    })
}

/// Look up an indexed snapshot by bare name, digest or path.
/// `args`: `{"ref"}`. `*out`: a snapshot handle object.
#[no_mangle]
pub extern "C" fn msnap_snapshot_get(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: RefArgs = json_arg(args)?;
        to_value(HandleJson::from(&snapshot::get(&home, &a.reference)?))
    })
}

/// List indexed snapshots, newest first. `args`: NULL or `{}`.
/// `*out`: `{"snapshots": [handle...]}`.
#[no_mangle]
pub extern "C" fn msnap_snapshot_list(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call_text(out, || {
        let home = context(ctx)?;
        let _: EmptyArgs = json_arg(args)?;
        // Each handle is encoded as the index yields it, so a listing of
        // thousands is never held twice, as handles and as text; collecting
        // them first and freeing them all afterwards cost a third again of
        // the engine's list.
        const HEAD: &[u8] = br#"{"snapshots":["#;
        let mut text = HEAD.to_vec();
        snapshot::list_each(&home, |h| {
            if text.len() > HEAD.len() {
                text.push(b',');
            }
            encode_into(&mut text, &HandleJson::from(&h))
        })?;
        text.extend_from_slice(b"]}");
        Ok(text)
    })
}

/// Parse every artifact directly inside a directory without touching the
/// index. `args`: `{"dir"}`. `*out`: `{"artifacts": [...], "skipped":
/// [{"path", "code", "message"}]}`.
#[no_mangle]
pub extern "C" fn msnap_snapshot_list_dir(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        context(ctx)?;
        let a: DirArgs = json_arg(args)?;
        let listing = snapshot::list_dir(&a.dir)?;
        let artifacts: Vec<ArtifactJson> =
            listing.artifacts.iter().map(ArtifactJson::from).collect();
        let skipped: Vec<Value> = listing
            .skipped
            .iter()
            .map(|(p, e)| {
                let mut v = error_json(e);
                v["path"] = json!(p);
                v
            })
            .collect();
        Ok(json!({ "artifacts": artifacts, "skipped": skipped }))
    })
}

/// Remove an artifact and its index row. `args`: `{"ref", "force"?}`.
/// Refuses with `has_children` unless force. `*out`: `{}`.
#[no_mangle]
pub extern "C" fn msnap_snapshot_remove(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: RemoveArgs = json_arg(args)?;
        snapshot::remove(&home, &a.reference, a.force)?;
        Ok(json!({}))
    })
}

/// Rebuild the index from a directory's artifacts. `args`: `{"dir"?}`
/// (default: the home's snapshots directory). `*out`: `{"indexed": n}`.
#[no_mangle]
pub extern "C" fn msnap_snapshot_reindex(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: OptionalDirArgs = json_arg(args)?;
        let n = snapshot::reindex(&home, a.dir.as_deref())?;
        Ok(json!({ "indexed": n }))
    })
}

/// Recompute recorded integrity. `args`: `{"ref"}` (name, digest or path).
/// `*out`: `{"digest", "path", "upper": {"kind", "algorithm", "digest"}}`;
/// a mismatch is `integrity_mismatch` with `expected` and `actual`.
#[no_mangle]
pub extern "C" fn msnap_snapshot_verify(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> i32 {
    call(out, || {
        let home = context(ctx)?;
        let a: RefArgs = json_arg(args)?;
        let m = monitor(cancel, progress, payload)?;
        to_value(VerifyJson::from(&snapshot::verify(
            &home,
            &a.reference,
            &m,
        )?))
    })
}

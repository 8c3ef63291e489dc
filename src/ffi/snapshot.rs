//! Snapshot exports: create, open, get, list, list_dir, remove, reindex, verify, prune.
use super::boundary::{call, call_text, encode, json_arg};
use super::json::*;
use super::ops::monitor;
use super::{artifact_format, context, msnap_cancel, msnap_context, msnap_progress_fn};
use crate::artifact;
use crate::error::Error;
use crate::integrity::Algorithm;
use crate::snapshot::{self, CreateOptions, PruneOptions};
use std::ffi::{c_char, c_void};

/// Create a snapshot of a stopped, crashed or never-started sandbox.
/// `args`: `{"source_sandbox", "name"|"path", "labels"?, "force"?,
/// "record_integrity"?, "integrity_algorithm"?, "format"?}` (`format`:
/// `"msb-v0.6.3"`, `manifest.json`, the default, or `"msb-v0.6.14"`,
/// `snapshot.json`, which current microsandbox reads without migrating it).
/// `*out`: the artifact.
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
            format: artifact_format(a.format.as_deref())?,
        };
        let m = monitor(cancel, progress, payload)?;
        let art = snapshot::create(&home, &a.source_sandbox, &opts, &m)?;
        Ok(ArtifactJson::from(&art))
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
        Ok(ArtifactJson::from(&snapshot::open(&home, &a.reference)?))
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
    call_text(out, || {
        let home = context(ctx)?;
        let a: RefArgs = json_arg(args)?;
        encode(&HandleJson::from(&snapshot::get(&home, &a.reference)?))
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
        SnapshotListJson::new(|visit: &mut VisitHandle| snapshot::list_each(&home, visit)).encode()
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
    call_text(out, || {
        context(ctx)?;
        let a: DirArgs = json_arg(args)?;
        // Encoded one at a time, so a directory of thousands never holds
        // thousands of open uppers.
        let (mut artifacts, mut skipped) = (Vec::new(), Vec::new());
        artifact::for_each_in_dir(&a.dir, |path, opened| {
            match opened {
                Ok(art) => artifacts.push(ArtifactJson::from(&art)),
                Err(e) => skipped.push((path, e)),
            }
            Ok(artifact::Visit::Continue)
        })?;
        encode(&ListDirJson::new(artifacts, &skipped))
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
        Ok(EmptyJson {})
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
        let indexed = snapshot::reindex(&home, a.dir.as_deref())?;
        Ok(ReindexJson { indexed })
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
        Ok(VerifyJson::from(&snapshot::verify(
            &home,
            &a.reference,
            &m,
        )?))
    })
}

/// Remove the snapshots a retention policy does not keep (docs/abi.md,
/// "Prune"). `args`: `{"labels"?, "older_than"?, "keep_last"?,
/// "group_by"?, "keep_within"?, "dry_run"?, "force"?}`. `*out`:
/// `{"dry_run", "removed": [...], "kept": [...], "bytes_freed"}`.
#[no_mangle]
pub extern "C" fn msnap_snapshot_prune(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> i32 {
    call_text(out, || {
        let home = context(ctx)?;
        let a: SnapshotPruneArgs = json_arg(args)?;
        let duration = |field: &str, text: Option<&str>| {
            text.map(|t| {
                snapshot::parse_duration(t).map_err(|e| match e {
                    Error::InvalidArgument(m) => Error::InvalidArgument(format!("{field}: {m}")),
                    other => other,
                })
            })
            .transpose()
        };
        let opts = PruneOptions {
            labels: a.labels,
            older_than: duration("older_than", a.older_than.as_deref())?,
            keep_last: a.keep_last,
            group_by: match a.group_by.as_deref() {
                None => Default::default(),
                Some(g) => g.parse()?,
            },
            keep_within: duration("keep_within", a.keep_within.as_deref())?,
            dry_run: a.dry_run,
            force: a.force,
            now_unix_nanos: None,
        };
        let m = monitor(cancel, progress, payload)?;
        let report = snapshot::prune(&home, &opts, &m)?;
        encode(&PruneJson::from(&report))
    })
}

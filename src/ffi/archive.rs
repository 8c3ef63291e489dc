//! Archive exports: snapshot export and import.
use super::boundary::{call_text, encode, json_arg};
use super::json::*;
use super::ops::monitor;
use super::{artifact_format, context, msnap_cancel, msnap_context, msnap_progress_fn};
use crate::archive::{self, ExportOptions};
use crate::error::Error;
use crate::home::Home;
use crate::snapshot::{self, Artifact, SnapshotHandle};
use std::ffi::{c_char, c_void};

/// Bundle a snapshot (and optionally its parents and base image) into a
/// `.tar.zst` (or plain `.tar`) archive. `args`: `{"ref", "out",
/// "with_parents"?, "with_image"?, "plain_tar"?, "dense"?, "level"?,
/// "threads"?, "format"?}` (`format`: `"msb-v0.6.3"`, the default, or
/// `"msb-v0.6.14"`, the archive layout of current microsandbox).
/// `*out`: `{"path", "snapshots": [digest...], "bytes_written"}`.
/// A cancelled export leaves no file at `out`.
#[no_mangle]
pub extern "C" fn msnap_snapshot_export(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> i32 {
    call_text(out, || {
        let home = context(ctx)?;
        let a: ExportArgs = json_arg(args)?;
        let opts = ExportOptions {
            with_parents: a.with_parents,
            with_image: a.with_image,
            plain_tar: a.plain_tar,
            dense: a.dense,
            level: a.level,
            threads: a.threads,
            format: artifact_format(a.format.as_deref())?,
        };
        let m = monitor(cancel, progress, payload)?;
        let report = archive::export(&home, &a.reference, &a.out, &opts, &m)?;
        encode(&ExportJson::from(&report))
    })
}

/// The index's handle of an artifact just installed.
fn handle_of(home: &Home, art: &Artifact) -> Result<SnapshotHandle, Error> {
    snapshot::get(home, &art.path.to_string_lossy())
}

/// Unpack a snapshot archive into the home's snapshots directory or an
/// explicit `dest`, checking every entry and verifying recorded integrity.
/// `args`: `{"archive", "dest"?, "name"?}` (`name`: install the head under
/// this bare name instead of the archive's directory name). `*out`: `{"head": handle, "imported":
/// [handle...], "images": [manifest_digest...]}`. A failed or cancelled import
/// leaves the destination and the index as they were.
#[no_mangle]
pub extern "C" fn msnap_snapshot_import(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> i32 {
    call_text(out, || {
        let home = context(ctx)?;
        let a: ImportArgs = json_arg(args)?;
        let m = monitor(cancel, progress, payload)?;
        let report =
            archive::import_named(&home, &a.archive, a.dest.as_deref(), a.name.as_deref(), &m)?;
        let head = handle_of(&home, &report.head)?;
        let imported = report
            .imported
            .iter()
            .map(|art| handle_of(&home, art))
            .collect::<Result<Vec<_>, _>>()?;
        encode(&ImportJson {
            head: HandleJson::from(&head),
            imported: imported.iter().map(HandleJson::from).collect(),
            images: &report.images,
            skipped: &report.skipped,
        })
    })
}

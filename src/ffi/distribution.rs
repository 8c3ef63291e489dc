//! Distribution exports: snapshot push and pull through OCI registries and
//! OCI image layouts (`oci:DIR`, `oci-archive:FILE`).
//!
//! Both take the shape of every other long operation (`out, ctx, args,
//! cancel, progress, payload`): the local snapshot, the reference and the
//! options go in as one JSON object, the report comes out as JSON. Pull
//! hands back the head as a handle object inside its result, as
//! `snapshot_import` does, not as a separate out-parameter: snapshot
//! handles are JSON objects in this ABI (only contexts, cancel tokens and
//! running sandboxes are opaque handles).
use super::boundary::{call_text, encode, json_arg};
use super::json::*;
use super::ops::monitor;
use super::{context, msnap_cancel, msnap_context, msnap_progress_fn};
use crate::distribution::{self, PullOptions, PushOptions};
use std::ffi::{c_char, c_void};

/// Push a local snapshot (bare name, digest or path) to a reference:
/// `HOST[:PORT]/REPO[:TAG|@sha256:…]`, `oci:DIR[:TAG]` or
/// `oci-archive:FILE[:TAG]`. `args`: `{"ref", "reference",
/// "with_parents"?, "since"?, "plain_http"?, "username"?, "password"?,
/// "ca_file"?, "docker_config"?, "max_in_flight"?, "timeout_seconds"?}`.
/// `*out`: the push report. Progress phase `push`.
#[no_mangle]
pub extern "C" fn msnap_snapshot_push(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> i32 {
    call_text(out, || {
        let home = context(ctx)?;
        let a: SnapshotPushArgs = json_arg(args)?;
        let opts = PushOptions {
            with_parents: a.with_parents,
            since: a.since,
            remote: a.remote.into(),
        };
        let m = monitor(cancel, progress, payload)?;
        let report: PushJson = distribution::push(&home, &a.snapshot, &a.reference, &opts, &m)?;
        encode(&report)
    })
}

/// Pull a snapshot from a reference into the home's snapshots directory
/// (named after the tag, or `name`) or an explicit `dest`, verified end to
/// end, and index it. `args`: `{"reference", "dest"?, "name"?,
/// "with_parents"?, "plain_http"?, "username"?, "password"?, "ca_file"?,
/// "docker_config"?, "max_in_flight"?, "timeout_seconds"?}`. `*out`:
/// `{"head": handle, "report": pull report}`. Progress phase `pull`. A
/// failed or cancelled pull leaves the destination and the index as they
/// were.
#[no_mangle]
pub extern "C" fn msnap_snapshot_pull(
    out: *mut *mut c_char,
    ctx: *const msnap_context,
    args: *const c_char,
    cancel: *const msnap_cancel,
    progress: msnap_progress_fn,
    payload: *mut c_void,
) -> i32 {
    call_text(out, || {
        let home = context(ctx)?;
        let a: SnapshotPullArgs = json_arg(args)?;
        let opts = PullOptions {
            with_parents: a.with_parents,
            name: a.name,
            remote: a.remote.into(),
        };
        let m = monitor(cancel, progress, payload)?;
        let (head, report) = distribution::pull(&home, &a.reference, a.dest.as_deref(), &opts, &m)?;
        encode(&PullJson {
            head: HandleJson::from(&head),
            report: &report,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use std::ffi::CString;

    fn args<T: serde::de::DeserializeOwned>(text: &str) -> crate::error::Result<T> {
        let c = CString::new(text).unwrap();
        json_arg(c.as_ptr())
    }

    #[test]
    fn push_arguments_carry_every_option_by_its_engine_name() {
        let a: SnapshotPushArgs = args(
            r#"{"ref":"base","reference":"oci:/tmp/l:v1","with_parents":true,"since":"root",
                "plain_http":true,"username":"u","password":"p","ca_file":"/ca.pem",
                "docker_config":"/d.json","max_in_flight":2,"timeout_seconds":5}"#,
        )
        .unwrap();
        assert_eq!(
            (a.snapshot.as_str(), a.reference.as_str()),
            ("base", "oci:/tmp/l:v1")
        );
        assert!(a.with_parents);
        assert_eq!(a.since.as_deref(), Some("root"));
        let r: distribution::RemoteOptions = a.remote.into();
        assert!(r.plain_http);
        assert_eq!(
            (r.username.as_deref(), r.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(r.ca_file.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(
            r.docker_config.as_deref(),
            Some(std::path::Path::new("/d.json"))
        );
        assert_eq!((r.max_in_flight, r.timeout_seconds), (Some(2), Some(5)));
    }

    #[test]
    fn pull_arguments_carry_every_option_by_its_engine_name() {
        let a: SnapshotPullArgs = args(
            r#"{"reference":"localhost:5000/s:v1","dest":"/d","name":"n","with_parents":true,
                "plain_http":true,"max_in_flight":3}"#,
        )
        .unwrap();
        assert_eq!(a.reference, "localhost:5000/s:v1");
        assert_eq!(a.dest.as_deref(), Some(std::path::Path::new("/d")));
        assert_eq!(a.name.as_deref(), Some("n"));
        assert!(a.with_parents && a.remote.plain_http);
        assert_eq!(a.remote.max_in_flight, Some(3));
        let d: SnapshotPullArgs = args(r#"{"reference":"oci:/l"}"#).unwrap();
        assert!(d.dest.is_none() && d.name.is_none() && !d.with_parents);
        assert!(d.remote.username.is_none() && !d.remote.plain_http);
    }

    #[test]
    fn the_arguments_debug_form_holds_no_password() {
        let a: SnapshotPullArgs =
            args(r#"{"reference":"oci:/l","username":"u","password":"hunter2-secret"}"#).unwrap();
        let shown = format!("{a:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("\"u\""),
            "{shown}"
        );
    }

    #[test]
    fn unknown_and_misplaced_fields_are_refused() {
        for (text, field) in [
            (
                r#"{"ref":"a","reference":"oci:/l","plain_htp":true}"#,
                "plain_htp",
            ),
            (r#"{"ref":"a","reference":"oci:/l","name":"n"}"#, "name"),
            (r#"{"ref":"a","reference":"oci:/l","dest":"/d"}"#, "dest"),
        ] {
            let e = args::<SnapshotPushArgs>(text).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument, "{text}");
            assert!(e.to_string().contains(field), "{text}: {e}");
        }
        for (text, field) in [
            (r#"{"reference":"oci:/l","since":"p"}"#, "since"),
            (r#"{"reference":"oci:/l","ref":"a"}"#, "ref"),
            (r#"{"reference":"oci:/l","usrname":"u"}"#, "usrname"),
        ] {
            let e = args::<SnapshotPullArgs>(text).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument, "{text}");
            assert!(e.to_string().contains(field), "{text}: {e}");
        }
        for text in [r#"{"ref":"a"}"#, r#"{"reference":"oci:/l"}"#, "{}"] {
            let e = args::<SnapshotPushArgs>(text).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArgument, "{text}");
        }
        let e = args::<SnapshotPullArgs>("{}").unwrap_err();
        assert!(e.to_string().contains("reference"), "{e}");
        let e =
            args::<SnapshotPullArgs>(r#"{"reference":"oci:/l","max_in_flight":-1}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArgument);
    }
}

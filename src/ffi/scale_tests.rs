//! No caller-sized buffers: a listing of 100,000 snapshots comes back whole
//! through the C ABI (microsandbox's Go FFI fails past its 1 MiB buffers).
use crate::db::index::{self, IndexRow};
use crate::ffi::*;
use std::ffi::{c_char, CStr, CString};
use std::ptr;

#[test]
fn list_of_100k_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let home = crate::home::Home::open(tmp.path()).unwrap();
    // In the home's snapshots directory, so each row's bare name resolves to it.
    let snapshots = home.snapshots_dir();
    home.db()
        .write(|tx| {
            for i in 0..100_000u64 {
                let row = IndexRow {
                    artifact_path: format!("{}/s{i:06}", snapshots.display()),
                    digest: format!("sha256:{i:064x}"),
                    name: Some(format!("s{i:06}")),
                    parent_digest: (i > 0).then(|| format!("sha256:{:064x}", i - 1)),
                    image_ref: "alpine:3.20".into(),
                    image_manifest_digest: format!("sha256:{:064x}", 7),
                    format: "raw".into(),
                    fstype: "ext4".into(),
                    size_bytes: Some(4 << 30),
                    created_at: "2026-11-28T00:00:00+00:00".into(),
                    created_at_unix_nanos: i as i64,
                    indexed_at_unix_nanos: 0,
                    labels: Default::default(),
                    integrity_algorithm: None,
                    artifact_format: "msb-v0.6.3".to_string(),
                };
                index::upsert(tx, &row)?;
            }
            Ok(())
        })
        .unwrap();
    drop(home);

    let mut ctx: *mut msnap_context = ptr::null_mut();
    let mut out: *mut c_char = ptr::null_mut();
    let args = CString::new(format!(r#"{{"home":"{}"}}"#, tmp.path().display())).unwrap();
    assert_eq!(
        msnap_context_open(&mut ctx, &mut out, args.as_ptr()),
        MSNAP_OK
    );
    unsafe { msnap_string_free(out) };
    assert_eq!(msnap_snapshot_list(&mut out, ctx, ptr::null()), MSNAP_OK);
    let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
    unsafe { msnap_string_free(out) };
    assert!(text.len() > 30 << 20, "listing is {} bytes", text.len());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let list = v["snapshots"].as_array().unwrap();
    assert_eq!(list.len(), 100_000);
    // Newest first, and child counts computed for every row.
    assert_eq!(list[0]["name"], "s099999");
    assert_eq!(list[0]["child_count"], 0);
    assert_eq!(list[1]["child_count"], 1);
    assert_eq!(msnap_context_free(ctx), MSNAP_OK);
}

//! The bodies of the fuzz targets, shared by the cargo-fuzz crate (`fuzz/`,
//! nightly) and by the stable corpus replay (`tests/reliability_fuzz_replay.rs`)
//! so that `cargo test` runs every committed corpus file through exactly the
//! code the fuzzer exercised.
//!
//! Not part of the API. These functions *panic* when an invariant breaks:
//! that is how a fuzzer reports a finding. The engine itself must never
//! panic on any input; a panic here that comes from inside the engine is a
//! bug in the engine.
use crate::error::{Error, ErrorCode, Result};
use crate::home::Home;
use crate::integrity::Algorithm;
use crate::manifest::Manifest;
use crate::progress::Monitor;
use crate::publish::STAGING_PREFIX;
use crate::sandbox::{self, SandboxSource};
use crate::snapshot::{self, CreateOptions};
use crate::{archive, ffi};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::ffi::{c_char, CStr, CString};
use std::fs;
use std::path::{Path, PathBuf};

/// The image reference the seeded homes carry.
pub const IMAGE_REF: &str = "alpine:3.20";

// ---------------------------------------------------------------------------
// manifest

/// Parse arbitrary bytes as a manifest. Never panics inside `parse`; when it
/// accepts, the canonical form must parse back to the same manifest and
/// digest (the identity is stable).
pub fn manifest(data: &[u8]) {
    let Ok(m) = Manifest::parse(data) else {
        return;
    };
    let canonical = m.canonical_bytes();
    let again = match Manifest::parse(&canonical) {
        Ok(a) => a,
        Err(e) => panic!("canonical bytes of an accepted manifest do not parse: {e}"),
    };
    assert_eq!(again, m, "canonical round trip changed the manifest");
    assert_eq!(again.digest(), m.digest(), "digest changed on round trip");
    assert_eq!(
        again.canonical_bytes(),
        canonical,
        "canonical form not a fixed point"
    );
}

// ---------------------------------------------------------------------------
// archive import

/// Import arbitrary bytes as an archive into a fresh empty home under
/// `scratch`. It must return (Ok or a typed error, never `internal`), leave
/// no staging behind, and on failure leave the home's snapshots and index
/// empty; on success the index must equal what Reindex finds.
pub fn archive_import(scratch: &Path, data: &[u8]) {
    let root = fresh_dir(scratch, "import-home");
    let home =
        crate::recovery::open_home(&root).unwrap_or_else(|e| panic!("open scratch home: {e}"));
    let archive_path = scratch.join("input.archive");
    fs::write(&archive_path, data).unwrap_or_else(|e| panic!("write input: {e}"));
    let result = archive::import(&home, &archive_path, None, &Monitor::none());
    assert_no_staging(&home.tmp_dir());
    match result {
        Err(e) => {
            assert_ne!(e.code(), ErrorCode::Internal, "import: {e}");
            assert!(
                dir_names(&home.snapshots_dir()).is_empty(),
                "failed import ({e}) left {:?}",
                dir_names(&home.snapshots_dir())
            );
            let listed = snapshot::list(&home).unwrap_or_else(|e| panic!("list: {e}"));
            assert!(listed.is_empty(), "failed import ({e}) left index rows");
        }
        Ok(report) => {
            for art in &report.imported {
                snapshot::open_dir(&art.path).unwrap_or_else(|e| {
                    panic!("imported {} does not open: {e}", art.path.display())
                });
            }
            let before = indexed_set(&home);
            snapshot::reindex(&home, None).unwrap_or_else(|e| panic!("reindex: {e}"));
            assert_eq!(
                before,
                indexed_set(&home),
                "index differs from Reindex after import"
            );
        }
    }
}

/// (path, digest) of every indexed snapshot, sorted.
pub fn indexed_set(home: &Home) -> Vec<(PathBuf, String)> {
    let mut v: Vec<(PathBuf, String)> = snapshot::list(home)
        .unwrap_or_else(|e| panic!("list: {e}"))
        .into_iter()
        .map(|h| (h.path, h.digest))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// C ABI JSON arguments

/// Call the C ABI's exports with `data` as their JSON argument string, on a
/// fresh seeded home under `scratch` (an image, a stopped sandbox `sb`, a
/// snapshot `base` with integrity). Every status must be a known code other
/// than `internal`, every out-string a JSON object (an error object naming
/// the status's code on failure), and no staging may be left behind.
///
/// Calls that can write (create, remove, export, import, ...) are only made
/// when every string in the arguments is a plain name (no `/`, `\`, `.`, `..`
/// or leading `.`/`~`), so a fuzzed path can never reach outside the home or
/// the current directory: **run this with the current directory set to a
/// scratch directory** (relative names such as an export `out` land there).
pub fn ffi_json(scratch: &Path, data: &[u8]) {
    let template = scratch.join("ffi-template");
    if !template.join("microsnap.db").exists() {
        let building = fresh_dir(scratch, "ffi-template-building");
        seed_home(&building).unwrap_or_else(|e| panic!("seed home: {e}"));
        fs::rename(&building, &template).unwrap_or_else(|e| panic!("install template: {e}"));
    }
    let root = fresh_dir(scratch, "ffi-home");
    copy_tree(&template, &root);
    let nul = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let Ok(args) = CString::new(&data[..nul]) else {
        return;
    };
    let writes_allowed = std::str::from_utf8(&data[..nul])
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .is_some_and(|v| all_strings_plain(&v));

    let ctx = open_context(&root);
    let a = args.as_ptr();
    let null = std::ptr::null();
    let np = None;
    let pl = std::ptr::null_mut();
    let mut out: *mut c_char = std::ptr::null_mut();
    macro_rules! check {
        ($name:literal, $call:expr) => {{
            let status = $call;
            check_result($name, status, &mut out);
        }};
    }
    check!("snapshot_open", ffi::msnap_snapshot_open(&mut out, ctx, a));
    check!("snapshot_get", ffi::msnap_snapshot_get(&mut out, ctx, a));
    check!("snapshot_list", ffi::msnap_snapshot_list(&mut out, ctx, a));
    check!(
        "snapshot_list_dir",
        ffi::msnap_snapshot_list_dir(&mut out, ctx, a)
    );
    check!(
        "snapshot_verify",
        ffi::msnap_snapshot_verify(&mut out, ctx, a, null, np, pl)
    );
    check!("sandbox_get", ffi::msnap_sandbox_get(&mut out, ctx, a));
    check!("sandbox_list", ffi::msnap_sandbox_list(&mut out, ctx, a));
    check!("image_list", ffi::msnap_image_list(&mut out, ctx, a));
    if writes_allowed {
        check!(
            "snapshot_create",
            ffi::msnap_snapshot_create(&mut out, ctx, a, null, np, pl)
        );
        check!(
            "snapshot_export",
            ffi::msnap_snapshot_export(&mut out, ctx, a, null, np, pl)
        );
        check!(
            "snapshot_import",
            ffi::msnap_snapshot_import(&mut out, ctx, a, null, np, pl)
        );
        check!(
            "snapshot_reindex",
            ffi::msnap_snapshot_reindex(&mut out, ctx, a)
        );
        check!(
            "snapshot_remove",
            ffi::msnap_snapshot_remove(&mut out, ctx, a)
        );
        let mut sb = std::ptr::null_mut();
        check!(
            "sandbox_create",
            ffi::msnap_sandbox_create(&mut sb, &mut out, ctx, a, null, np, pl)
        );
        free_sandbox(sb);
        let mut sb = std::ptr::null_mut();
        check!(
            "sandbox_start",
            ffi::msnap_sandbox_start(&mut sb, &mut out, ctx, a)
        );
        free_sandbox(sb);
        check!(
            "sandbox_mark_stopped",
            ffi::msnap_sandbox_mark_stopped(&mut out, ctx, a)
        );
        check!(
            "sandbox_remove",
            ffi::msnap_sandbox_remove(&mut out, ctx, a)
        );
    }
    assert_eq!(ffi::msnap_context_free(ctx), 0, "close context");
    assert_no_staging(&root.join("tmp"));
}

fn open_context(root: &Path) -> *mut ffi::msnap_context {
    let args = serde_json::json!({ "home": root }).to_string();
    let args = CString::new(args).unwrap_or_else(|e| panic!("home path: {e}"));
    let mut ctx = std::ptr::null_mut();
    let mut out = std::ptr::null_mut();
    let status = ffi::msnap_context_open(&mut ctx, &mut out, args.as_ptr());
    let text = take_string(out);
    assert_eq!(status, 0, "open context: {text}");
    ctx
}

fn free_sandbox(sb: *mut ffi::msnap_sandbox) {
    if !sb.is_null() {
        assert_eq!(ffi::msnap_sandbox_free(sb), 0, "free sandbox");
    }
}

fn take_string(out: *mut c_char) -> String {
    assert!(!out.is_null(), "no out-string");
    // SAFETY: the library returned this NUL-terminated string and it has not
    // been freed; it is freed right after copying.
    let text = unsafe { CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: `out` came from the library and is freed exactly once, here.
    unsafe { ffi::msnap_string_free(out) };
    text
}

fn check_result(function: &str, status: i32, out: &mut *mut c_char) {
    let text = take_string(std::mem::replace(out, std::ptr::null_mut()));
    let value: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{function}: out-string is not JSON ({e}): {text}"));
    assert!(
        value.is_object(),
        "{function}: out-string is not an object: {text}"
    );
    if status == 0 {
        return;
    }
    let code = ErrorCode::ALL
        .iter()
        .find(|c| **c as i32 == status)
        .unwrap_or_else(|| panic!("{function}: unknown status {status}: {text}"));
    assert_ne!(
        *code,
        ErrorCode::Internal,
        "{function}: internal error: {text}"
    );
    assert_eq!(
        value["code"].as_str(),
        Some(code.name()),
        "{function}: status {status} but error object {text}"
    );
}

/// True when every string value in `v` is a plain name that cannot address
/// anything outside the home or the current directory.
fn all_strings_plain(v: &Value) -> bool {
    match v {
        Value::String(s) => {
            !s.contains('/')
                && !s.contains('\\')
                && !s.starts_with('.')
                && !s.starts_with('~')
                && !s.contains('\0')
        }
        Value::Array(items) => items.iter().all(all_strings_plain),
        Value::Object(map) => map.values().all(all_strings_plain),
        _ => true,
    }
}

// ---------------------------------------------------------------------------
// seeded homes (also used by the reliability tests)

/// Write a minimal valid OCI image layout tagged [`IMAGE_REF`] into
/// `images_dir`: one empty tar layer, a config, a manifest, `index.json`.
/// Returns the manifest digest.
pub fn write_test_image(images_dir: &Path) -> Result<String> {
    let blobs = images_dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(|e| Error::io("create", &blobs, e))?;
    let put = |bytes: &[u8]| -> Result<(String, usize)> {
        let hex = format!("{:x}", Sha256::digest(bytes));
        let path = blobs.join(&hex);
        fs::write(&path, bytes).map_err(|e| Error::io("write", &path, e))?;
        Ok((format!("sha256:{hex}"), bytes.len()))
    };
    let (layer, layer_size) = put(&[0u8; 1024])?;
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer]},
        "config": {}
    });
    let (config_digest, config_size) = put(config.to_string().as_bytes())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer, "size": layer_size}]
    });
    let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": manifest_digest, "size": manifest_size,
                       "annotations": {"org.opencontainers.image.ref.name": IMAGE_REF}}]
    });
    let write = |name: &str, text: String| -> Result<()> {
        let path = images_dir.join(name);
        fs::write(&path, text).map_err(|e| Error::io("write", &path, e))
    };
    write(
        "oci-layout",
        r#"{"imageLayoutVersion":"1.0.0"}"#.to_string(),
    )?;
    write("index.json", index.to_string())?;
    Ok(manifest_digest)
}

/// Seed the home at `root`: the test image, a sandbox `sb` (8 MiB sparse
/// upper with a little data), and a snapshot `base` of it with integrity.
pub fn seed_home(root: &Path) -> Result<()> {
    let home = crate::recovery::open_home(root)?;
    write_test_image(&home.images_dir())?;
    sandbox::create(
        &home,
        "sb",
        &SandboxSource::Image {
            image: IMAGE_REF.into(),
            size_bytes: Some(8 << 20),
            fstype: None,
        },
        &Monitor::none(),
    )?;
    let upper = home.sandboxes_dir().join("sb/upper.ext4");
    let f = fs::OpenOptions::new()
        .write(true)
        .open(&upper)
        .map_err(|e| Error::io("open", &upper, e))?;
    std::os::unix::fs::FileExt::write_all_at(&f, b"microsnap fuzz seed", 1 << 20)
        .map_err(|e| Error::io("write", &upper, e))?;
    snapshot::create(
        &home,
        "sb",
        &CreateOptions {
            name: Some("base".into()),
            record_integrity: true,
            integrity_algorithm: Some(Algorithm::MerkleSha256V1),
            ..Default::default()
        },
        &Monitor::none(),
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// small helpers

/// Panic if `tmp` holds any staging entry (a live operation would hold one,
/// but these targets run nothing concurrently).
pub fn assert_no_staging(tmp: &Path) {
    let left: Vec<String> = dir_names(tmp)
        .into_iter()
        .filter(|n| n.starts_with(STAGING_PREFIX))
        .collect();
    assert!(
        left.is_empty(),
        "staging left behind in {}: {left:?}",
        tmp.display()
    );
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `scratch/<name>`, emptied.
fn fresh_dir(scratch: &Path, name: &str) -> PathBuf {
    let dir = scratch.join(name);
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("clear {}: {e}", dir.display()),
    }
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Copy a small directory tree (sparse files stay small: data is copied
/// through the sparse copier).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    let entries = fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let kind = entry.file_type().unwrap_or_else(|e| panic!("stat: {e}"));
        if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            crate::sparse::copy_sparse(&src, &dst, &Monitor::none())
                .unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

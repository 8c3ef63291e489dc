//! Golden files pin the JSON every C ABI call returns, so the Go and Python
//! bindings (whose tests read the same files) cannot drift from the library.
//! Values that vary between runs (paths, times, snapshot digests) are
//! normalized; everything else, including key sets and types, is compared.
//! Set UPDATE_GOLDEN=1 to rewrite the files after an intended change.
use microsnap::ffi::*;
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::ptr;

struct Normalizer {
    home: String,
    digests: HashMap<String, String>,
    stable: Vec<String>,
}

impl Normalizer {
    fn value(&mut self, key: Option<&str>, v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    self.value(Some(k), x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| self.value(key, x)),
            Value::String(s) if key == Some("created_at") => *s = "<time>".into(),
            // Compressed sizes vary with the (time-stamped) manifests inside.
            // Sizes on disk depend on the filesystem (and descriptor sizes
            // on the time-stamped manifests); golden files pin their shape.
            Value::Number(_)
                if matches!(
                    key,
                    Some(
                        "created_at_unix_nanos"
                            | "bytes_written"
                            | "logical_bytes"
                            | "allocated_bytes"
                            | "shared_bytes"
                            | "bytes_freed"
                            | "logical_bytes_freed"
                            // Manifests carry a creation time.
                            | "bytes_uploaded"
                            | "bytes_downloaded"
                    )
                ) =>
            {
                *v = Value::from(0)
            }
            Value::String(s) => *s = self.string(s),
            _ => {}
        }
    }

    /// `<digest-N>`, numbered by first appearance.
    fn digest_name(&mut self, digest: &str) -> String {
        let n = self.digests.len() + 1;
        self.digests
            .entry(digest.to_string())
            .or_insert(format!("<digest-{n}>"))
            .clone()
    }

    fn string(&mut self, s: &str) -> String {
        let mut s = s.replace(&self.home, "<home>");
        // A digest tag (`sha256-<64 hex>`, what push tags each snapshot
        // with) is its digest spelt for a tag: name it as the digest.
        let mut k = 0;
        while let Some(pos) = s[k..].find("sha256-") {
            let start = k + pos;
            let hex = &s[start + 7..(start + 7 + 64).min(s.len())];
            let whole = hex.len() == 64
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && !s[start + 71..].starts_with(|c: char| c.is_ascii_hexdigit());
            if whole {
                let digest = format!("sha256:{hex}");
                let name = self.digest_name(&digest);
                s.replace_range(start + 7..start + 71, &name);
                k = start + 7 + name.len();
            } else {
                k = start + 7;
            }
        }
        // Archive directory names are digest prefixes: `sha256-` + 16 hex.
        let mut j = 0;
        while let Some(pos) = s[j..].find("sha256-") {
            let start = j + pos + 7;
            let end = (start + 16).min(s.len());
            if end - start == 16 && s[start..end].bytes().all(|b| b.is_ascii_hexdigit()) {
                s.replace_range(start..end, "<prefix>");
            }
            j = start;
        }
        // Manifest digests embed created_at, so they differ per run: number
        // them by first appearance. Image and content digests are stable.
        let mut i = 0;
        while let Some(pos) = s[i..].find("sha256:") {
            let start = i + pos;
            let end = (start + 71).min(s.len());
            let cand = s[start..end].to_string();
            let is_digest = cand.len() == 71 && cand[7..].bytes().all(|b| b.is_ascii_hexdigit());
            if is_digest && !self.stable.contains(&cand) {
                let name = self.digest_name(&cand);
                s.replace_range(start..end, &name);
                i = start + name.len();
            } else {
                i = start + 7;
            }
        }
        s
    }
}

fn take(out: *mut c_char) -> Value {
    assert!(!out.is_null());
    let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_string();
    unsafe { msnap_string_free(out) };
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

struct Recorder {
    norm: Normalizer,
    calls: Vec<(String, i32, Value)>,
}

impl Recorder {
    fn record(&mut self, name: &str, status: i32, out: *mut c_char) -> Value {
        let raw = take(out);
        let mut v = raw.clone();
        self.norm.value(None, &mut v);
        self.calls.push((name.to_string(), status, v));
        raw
    }
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn every_call_matches_its_golden_json() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let st = std::process::Command::new("python3")
        .arg(fixtures().join("make_oci_image.py"))
        .arg(home.join("images"))
        .arg("alpine:3.20")
        .output()
        .expect("python3");
    assert!(st.status.success());
    let image_digest = String::from_utf8(st.stdout).unwrap().trim().to_string();
    let home = home.canonicalize().unwrap();
    let mut r = Recorder {
        norm: Normalizer {
            home: tmp
                .path()
                .canonicalize()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            digests: HashMap::new(),
            stable: vec![image_digest],
        },
        calls: Vec::new(),
    };

    let mut ctx: *mut msnap_context = ptr::null_mut();
    let mut out: *mut c_char = ptr::null_mut();
    let args = c(&format!(r#"{{"home":"{}"}}"#, home.display()));
    let s = msnap_context_open(&mut ctx, &mut out, args.as_ptr());
    r.record("context_open", s, out);

    let mut sb: *mut msnap_sandbox = ptr::null_mut();
    let a = c(r#"{"name":"baseline","image":"alpine:3.20","size_bytes":16777216}"#);
    let s = msnap_sandbox_create(
        &mut sb,
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    let created = r.record("sandbox_create", s, out);
    let upper = created["upper_path"].as_str().unwrap().to_string();
    std::fs::write(&upper, b"").ok(); // keep size: rewrite below
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&upper)
        .unwrap();
    f.set_len(16 << 20).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"golden data", 4096).unwrap();
    drop(f);
    let s = msnap_sandbox_info(&mut out, sb);
    r.record("sandbox_info", s, out);
    let s = msnap_sandbox_stop(&mut out, sb);
    r.record("sandbox_stop", s, out);
    assert_eq!(msnap_sandbox_free(sb), MSNAP_OK);
    let a = c(r#"{"name":"baseline"}"#);
    let s = msnap_sandbox_get(&mut out, ctx, a.as_ptr());
    r.record("sandbox_get", s, out);
    let s = msnap_sandbox_list(&mut out, ctx, ptr::null());
    r.record("sandbox_list", s, out);
    let s = msnap_image_list(&mut out, ctx, ptr::null());
    r.record("image_list", s, out);

    let a = c(
        r#"{"source_sandbox":"baseline","name":"base","labels":{"stage":"post-deps"},"record_integrity":true}"#,
    );
    let s = msnap_snapshot_create(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("snapshot_create", s, out);
    let a = c(r#"{"ref":"base"}"#);
    let s = msnap_snapshot_open(&mut out, ctx, a.as_ptr());
    r.record("snapshot_open", s, out);
    let s = msnap_snapshot_get(&mut out, ctx, a.as_ptr());
    r.record("snapshot_get", s, out);
    let s = msnap_snapshot_verify(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("snapshot_verify", s, out);

    let a = c(r#"{"name":"fork","snapshot":"base"}"#);
    let s = msnap_sandbox_create(
        &mut sb,
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("sandbox_create_from_snapshot", s, out);
    let s = msnap_sandbox_stop(&mut out, sb);
    r.record("sandbox_stop_fork", s, out);
    assert_eq!(msnap_sandbox_free(sb), MSNAP_OK);
    let a = c(r#"{"source_sandbox":"fork","name":"child"}"#);
    let s = msnap_snapshot_create(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("snapshot_create_child", s, out);
    let s = msnap_snapshot_list(&mut out, ctx, ptr::null());
    r.record("snapshot_list", s, out);

    // A malformed artifact beside the good ones shows up in `skipped`.
    let bad = home.join("snapshots/broken");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("manifest.json"), b"{\"schema\":2}").unwrap();
    let a = c(&format!(
        r#"{{"dir":"{}"}}"#,
        home.join("snapshots").display()
    ));
    let s = msnap_snapshot_list_dir(&mut out, ctx, a.as_ptr());
    r.record("snapshot_list_dir", s, out);
    let s = msnap_snapshot_reindex(&mut out, ctx, ptr::null());
    r.record("snapshot_reindex", s, out);

    let a = c(r#"{"ref":"base"}"#);
    let s = msnap_snapshot_remove(&mut out, ctx, a.as_ptr());
    r.record("error_has_children", s, out);
    // (after the import below, another copy of "base" exists, and removing
    // one copy no longer orphans its child)
    let archive_path = tmp.path().join("base.tar.zst");
    let a = c(&format!(
        r#"{{"ref":"child","out":"{}","with_parents":true}}"#,
        archive_path.display()
    ));
    let s = msnap_snapshot_export(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    let exported = r.record("snapshot_export", s, out);
    assert_eq!(exported["snapshots"].as_array().map(|v| v.len()), Some(2));
    let dest = home.join("elsewhere");
    let a = c(&format!(
        r#"{{"archive":"{}","dest":"{}"}}"#,
        archive_path.display(),
        dest.display()
    ));
    let s = msnap_snapshot_import(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("snapshot_import", s, out);
    let not_archive = tmp.path().join("not-an-archive");
    std::fs::write(&not_archive, b"hello").unwrap();
    let a = c(&format!(r#"{{"archive":"{}"}}"#, not_archive.display()));
    let s = msnap_snapshot_import(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("error_invalid_archive", s, out);

    // Error objects.
    let a = c(r#"{"ref":"nope"}"#);
    let s = msnap_snapshot_get(&mut out, ctx, a.as_ptr());
    r.record("error_snapshot_not_found", s, out);
    let a = c(r#"{"ref":"base","bogus":1}"#);
    let s = msnap_snapshot_get(&mut out, ctx, a.as_ptr());
    r.record("error_unknown_field", s, out);
    // A reference without a registry host: microsnap never guesses one.
    let a = c(r#"{"ref":"base","reference":"sandboxes/base:v1"}"#);
    let s = msnap_snapshot_push(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("error_push_bad_reference", s, out);
    let base_upper = home.join("snapshots/base/upper.ext4");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&base_upper)
        .unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"X", 4096).unwrap();
    drop(f);
    let a = c(r#"{"ref":"base"}"#);
    let s = msnap_snapshot_verify(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("error_integrity_mismatch", s, out);

    let a = c(r#"{"ref":"child"}"#);
    let s = msnap_snapshot_remove(&mut out, ctx, a.as_ptr());
    r.record("snapshot_remove", s, out);
    let a = c(r#"{"name":"fork"}"#);
    let s = msnap_sandbox_remove(&mut out, ctx, a.as_ptr());
    r.record("sandbox_remove", s, out);
    // Left: base in snapshots/ and, in elsewhere/, the imported copies of
    // base and child. Grouped by source sandbox, keep_last 1 keeps child
    // (of fork) and one copy of base (of baseline); the other copy goes,
    // since child still has its parent in the one kept.
    let a = c(r#"{"keep_last":1}"#);
    let s = msnap_snapshot_prune(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    let pruned = r.record("snapshot_prune", s, out);
    assert_eq!(
        pruned["removed"].as_array().map(Vec::len),
        Some(1),
        "{pruned}"
    );
    assert_eq!(pruned["kept"].as_array().map(Vec::len), Some(2), "{pruned}");

    let s = msnap_home_usage(&mut out, ctx, ptr::null());
    r.record("home_usage", s, out);
    // A blob nothing names, written an hour ago: the one thing prune removes
    // (the image stays: the baseline sandbox and the snapshots pin it).
    let stray = b"nothing names this blob";
    let stray_path = home.join("images/blobs/sha256").join(sha256_hex(stray));
    std::fs::write(&stray_path, stray).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stray_path)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    // The malformed artifact from above pins an unknown image: prune refuses.
    let s = msnap_image_prune(
        &mut out,
        ctx,
        ptr::null(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("error_image_prune_unknown_pin", s, out);
    std::fs::remove_dir_all(&bad).unwrap();
    let a = c(r#"{"dry_run":true}"#);
    let s = msnap_image_prune(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("image_prune_dry_run", s, out);
    let s = msnap_image_prune(
        &mut out,
        ctx,
        ptr::null(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    r.record("image_prune", s, out);
    assert!(!stray_path.exists());

    // Push a fresh snapshot into an OCI layout and pull it back under
    // another name (last, so that the digests it adds number after every
    // other file's).
    let a = c(r#"{"source_sandbox":"baseline","name":"shared","record_integrity":true}"#);
    let s = msnap_snapshot_create(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    assert_eq!(s, MSNAP_OK);
    take(out);
    let layout = tmp.path().join("layout");
    let a = c(&format!(
        r#"{{"ref":"shared","reference":"oci:{}:v1"}}"#,
        layout.display()
    ));
    let s = msnap_snapshot_push(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    let pushed = r.record("snapshot_push", s, out);
    assert_eq!(
        pushed["snapshots"].as_array().map(Vec::len),
        Some(1),
        "{pushed}"
    );
    let a = c(&format!(
        r#"{{"reference":"oci:{}:v1","name":"shared-again"}}"#,
        layout.display()
    ));
    let s = msnap_snapshot_pull(
        &mut out,
        ctx,
        a.as_ptr(),
        ptr::null(),
        None,
        ptr::null_mut(),
    );
    let pulled = r.record("snapshot_pull", s, out);
    assert_eq!(
        pulled["head"]["digest"], pushed["snapshot_digest"],
        "{pulled}"
    );
    assert_eq!(pulled["report"]["already_present"], false, "{pulled}");
    assert_eq!(msnap_context_free(ctx), MSNAP_OK);

    let golden_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for (name, status, value) in &r.calls {
        let doc = serde_json::json!({ "status": status, "out": value });
        let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        let path = golden_dir.join(format!("{name}.json"));
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != text {
            mismatches.push(format!("{name}: golden\n{want}\ngot\n{text}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatch (UPDATE_GOLDEN=1 to accept):\n{}",
        mismatches.join("\n")
    );
}

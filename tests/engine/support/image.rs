//! Image helpers: run the fixture generator (the one copy of it in this
//! binary; `support::TestHome` uses it too), read layout files.
#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

pub const GENERATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/make_oci_image.py"
);

/// Whether python3 can run the generator; prints why not when it can't, so a
/// skipped test says so in the output.
pub fn python_available(test: &str) -> bool {
    match Command::new("python3").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            println!(
                "SKIP {test}: python3 is not installed; it runs tests/fixtures/make_oci_image.py"
            );
            false
        }
    }
}

/// Run make_oci_image.py and return the manifest digest it prints.
pub fn make_image(layout: &Path, reference: &str, extra: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(GENERATOR)
        .arg(layout)
        .arg(reference)
        .args(extra)
        .output()
        .expect("run python3 tests/fixtures/make_oci_image.py");
    assert!(
        out.status.success(),
        "make_oci_image.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "odd digest {digest:?}"
    );
    digest
}

pub fn blob_file(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read json")).expect("parse json")
}

pub fn sha256_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The OCI architecture name of this machine, computed independently of the
/// library so the multi-arch test checks it rather than trusting it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether an executable called `name` is on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(name);
            std::fs::metadata(&candidate).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

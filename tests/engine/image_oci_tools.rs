//! Proof that make_oci_image.py writes a real OCI image and that layouts
//! microsnap writes stay readable by OCI tools: `skopeo inspect` and
//! `umoci unpack` read them. Each test skips (and says why) when its tool is
//! not installed; nothing here installs anything.
use crate::support::image as image_support;

use image_support::*;
use microsnap::image;
use std::fs;
use std::path::Path;
use std::process::Command;

fn running_as_root() -> bool {
    // SAFETY: geteuid takes no arguments, has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn tools_available(test: &str, tool: &str) -> bool {
    if !python_available(test) {
        return false;
    }
    if !on_path(tool) {
        println!("SKIP {test}: `{tool}` is not installed (not on PATH)");
        return false;
    }
    true
}

/// A layout holding a generated image under `alpine:3.20` plus one that went
/// through microsnap (import_layout + add_ref) under `copied:1`.
fn layout_with_both(root: &Path) -> (std::path::PathBuf, String) {
    let source = root.join("source");
    let digest = make_image(&source, "alpine:3.20", &[]);
    let layout = root.join("images");
    image::import_layout(&layout, &source, None).unwrap();
    let pin = image::resolve(&layout, "alpine:3.20").unwrap();
    let manifest = image::blobs_of(&layout, &pin.manifest_digest).unwrap()[0].clone();
    image::add_ref(&layout, "copied:1", &manifest).unwrap();
    (layout, digest)
}

#[test]
fn skopeo_inspects_generated_and_microsnap_written_layouts() {
    if !tools_available(
        "skopeo_inspects_generated_and_microsnap_written_layouts",
        "skopeo",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (layout, digest) = layout_with_both(tmp.path());
    for reference in ["alpine:3.20", "copied:1"] {
        let out = Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{reference}", layout.display()))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["Digest"], digest.as_str(), "{reference}");
        assert_eq!(info["Architecture"], "amd64");
        assert_eq!(info["Os"], "linux");
    }
}

#[test]
fn umoci_unpacks_generated_and_microsnap_written_layouts() {
    if !tools_available(
        "umoci_unpacks_generated_and_microsnap_written_layouts",
        "umoci",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _) = layout_with_both(tmp.path());
    for (i, reference) in ["alpine:3.20", "copied:1"].iter().enumerate() {
        let bundle = tmp.path().join(format!("bundle{i}"));
        let mut command = Command::new("umoci");
        command.arg("unpack");
        if !running_as_root() {
            command.arg("--rootless");
        }
        let out = command
            .arg("--image")
            .arg(format!("{}:{reference}", layout.display()))
            .arg(&bundle)
            .output()
            .expect("run umoci");
        assert!(
            out.status.success(),
            "umoci unpack {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let os_release = fs::read_to_string(bundle.join("rootfs/etc/os-release")).unwrap();
        assert!(os_release.contains("ID=microsnap-test"), "{os_release}");
        assert!(bundle.join("rootfs/bin/hello").is_file());
        assert!(bundle.join("config.json").is_file());
    }
}

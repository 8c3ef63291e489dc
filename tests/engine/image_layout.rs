//! The local OCI image layout: resolving, listing, storing and importing
//! images in layouts built by tests/fixtures/make_oci_image.py.
use crate::support::image as image_support;

use image_support::*;
use microsnap::error::{Error, ErrorCode};
use microsnap::image::{self, Descriptor};
use std::fs;
use std::io::{self, Read};
use std::path::Path;

const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn descriptor_of_blob(layout: &Path, digest: &str, media_type: &str) -> Descriptor {
    Descriptor {
        media_type: media_type.to_string(),
        digest: digest.to_string(),
        size: fs::metadata(blob_file(layout, digest)).expect("blob").len(),
    }
}

fn code(err: &Error) -> ErrorCode {
    err.code()
}

fn temp_files_in(layout: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for dir in [layout.to_path_buf(), layout.join("blobs/sha256")] {
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    names.push(name);
                }
            }
        }
    }
    names
}

#[test]
fn generator_writes_a_deterministic_real_image() {
    if !python_available("generator_writes_a_deterministic_real_image") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let first = make_image(&tmp.path().join("a"), "alpine:3.20", &[]);
    let second = make_image(&tmp.path().join("b"), "alpine:3.20", &[]);
    assert_eq!(
        first, second,
        "same arguments must give the same manifest digest"
    );
    let arm = make_image(
        &tmp.path().join("b"),
        "alpine:3.20-arm",
        &["--arch", "arm64"],
    );
    assert_ne!(first, arm);

    // Every blob is named by its hash, and the manifest ties them together.
    let layout = tmp.path().join("a");
    let manifest_bytes = fs::read(blob_file(&layout, &first)).unwrap();
    assert_eq!(sha256_of(&manifest_bytes), first);
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], IMAGE_MANIFEST);
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    let layer = fs::read(blob_file(&layout, layer_digest)).unwrap();
    assert_eq!(sha256_of(&layer), layer_digest);
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = read_json(&blob_file(&layout, config_digest));
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    // An uncompressed layer's diff_id is its own digest.
    assert_eq!(config["rootfs"]["diff_ids"][0], layer_digest);

    // The layer is a real tar with the promised files, owned by root.
    let mut archive = tar::Archive::new(&layer[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        assert_eq!(entry.header().uid().unwrap(), 0);
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name == "etc/os-release" {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            assert!(text.contains("ID=microsnap-test"), "{text}");
        }
        names.push(name);
    }
    assert!(names.contains(&"etc/os-release".to_string()), "{names:?}");
    assert!(names.contains(&"bin/hello".to_string()), "{names:?}");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries are sorted");

    let index = read_json(&layout.join("index.json"));
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "alpine:3.20"
    );
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
}

#[test]
fn generator_packs_a_given_rootfs() {
    if !python_available("generator_packs_a_given_rootfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rootfs = tmp.path().join("rootfs");
    fs::create_dir_all(rootfs.join("opt/app")).unwrap();
    fs::write(rootfs.join("opt/app/run.sh"), b"echo run\n").unwrap();
    std::os::unix::fs::symlink("app/run.sh", rootfs.join("opt/run")).unwrap();
    let layout = tmp.path().join("images");
    let digest = make_image(&layout, "app:1", &["--rootfs", rootfs.to_str().unwrap()]);
    let blobs = image::blobs_of(&layout, &digest).unwrap();
    let layer = fs::read(blob_file(&layout, &blobs[2].digest)).unwrap();
    let mut archive = tar::Archive::new(&layer[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name == "opt/run" {
            assert!(entry.header().entry_type().is_symlink());
            assert_eq!(
                entry.link_name().unwrap().unwrap().to_str(),
                Some("app/run.sh")
            );
        }
        seen.push(name);
    }
    assert_eq!(seen, ["opt/", "opt/app/", "opt/app/run.sh", "opt/run"]);
}

#[test]
fn resolves_by_exact_and_normalized_reference() {
    if !python_available("resolves_by_exact_and_normalized_reference") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    let alpine = make_image(&layout, "alpine:3.20", &[]);
    let ghcr = make_image(&layout, "ghcr.io/acme/tool:1", &["--arch", "arm64"]);

    for spelling in [
        "alpine:3.20",
        "library/alpine:3.20",
        "docker.io/library/alpine:3.20",
        "index.docker.io/library/alpine:3.20",
    ] {
        let pin = image::resolve(&layout, spelling).unwrap();
        assert_eq!(pin.manifest_digest, alpine, "{spelling}");
        // The pin names the image as the layout does, however it was asked for.
        assert_eq!(pin.reference, "alpine:3.20", "{spelling}");
    }
    let pin = image::resolve(&layout, "ghcr.io/acme/tool:1").unwrap();
    assert_eq!(pin.manifest_digest, ghcr);

    // Normalization never crosses registries, names or tags.
    for miss in [
        "alpine",
        "alpine:3.19",
        "ghcr.io/library/alpine:3.20",
        "acme/tool:1",
        "tool:1",
    ] {
        let err = image::resolve(&layout, miss).unwrap_err();
        assert_eq!(code(&err), ErrorCode::ImageNotFound, "{miss}: {err}");
    }
}

#[test]
fn exact_match_wins_over_normalized_match() {
    if !python_available("exact_match_wins_over_normalized_match") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    let short = make_image(&layout, "alpine:3.20", &[]);
    let long = make_image(
        &layout,
        "docker.io/library/alpine:3.20",
        &["--arch", "arm64"],
    );
    assert_eq!(
        image::resolve(&layout, "alpine:3.20")
            .unwrap()
            .manifest_digest,
        short
    );
    assert_eq!(
        image::resolve(&layout, "docker.io/library/alpine:3.20")
            .unwrap()
            .manifest_digest,
        long
    );
    // Only normalization matches, and it matches two different images.
    let err = image::resolve(&layout, "library/alpine:3.20").unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument, "{err}");
    assert!(err.to_string().contains("ambiguous"), "{err}");
}

#[test]
fn resolves_by_digest() {
    if !python_available("resolves_by_digest") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    let named = make_image(&layout, "alpine:3.20", &[]);
    let pin = image::resolve(&layout, &named).unwrap();
    assert_eq!(pin.manifest_digest, named);
    assert_eq!(pin.reference, "alpine:3.20");

    // A manifest present only as a blob (its index entry gone) resolves to itself.
    let unnamed = make_image(&layout, "scratch:1", &["--arch", "arm64"]);
    let mut index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["digest"] != unnamed.as_str());
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    let pin = image::resolve(&layout, &unnamed).unwrap();
    assert_eq!(pin.manifest_digest, unnamed);
    assert_eq!(pin.reference, unnamed);

    // A well-formed digest with no blob is not found; a blob that is not a
    // manifest (a layer) does not resolve either.
    let absent = format!("sha256:{}", "0".repeat(64));
    let err = image::resolve(&layout, &absent).unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound);
    assert!(err.to_string().contains(&absent), "{err}");
    let layer = &image::blobs_of(&layout, &named).unwrap()[2].digest;
    let err = image::resolve(&layout, layer).unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound, "{err}");

    // Nor does a blob too large to be a manifest (a big layer), and it is
    // refused without reading it into memory.
    let big = vec![7u8; 17 << 20];
    let big_digest = sha256_of(&big);
    fs::write(blob_file(&layout, &big_digest), &big).unwrap();
    let err = image::resolve(&layout, &big_digest).unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound, "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[test]
fn not_found_names_the_reference_and_the_layout() {
    if !python_available("not_found_names_the_reference_and_the_layout") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    make_image(&layout, "alpine:3.20", &[]);
    let err = image::resolve(&layout, "debian:12").unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound);
    let message = err.to_string();
    assert!(message.contains("debian:12"), "{message}");
    assert!(message.contains(&layout.display().to_string()), "{message}");
    assert!(
        message.contains("alpine:3.20"),
        "lists what is there: {message}"
    );
    let err = image::resolve(&layout, "").unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument);
}

#[test]
fn missing_layout_is_not_found_and_lists_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let absent = tmp.path().join("images");
    let err = image::resolve(&absent, "alpine:3.20").unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound);
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(image::list(&absent).unwrap().is_empty());
    assert!(!absent.exists(), "reading must not create the layout");

    fs::create_dir(&absent).unwrap();
    assert!(image::list(&absent).unwrap().is_empty());
    let err = image::resolve(&absent, "alpine:3.20").unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound);

    // A marker without an index is a broken layout, not an empty one.
    fs::write(
        absent.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let err = image::list(&absent).unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound);
    assert!(err.to_string().contains("index.json is missing"), "{err}");
}

#[test]
fn malformed_layout_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    fs::create_dir_all(&layout).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    for bad_index in [
        &b"{not json"[..],
        br#"{"schemaVersion":2}"#,
        br#"{"manifests":"x"}"#,
        br#"{"manifests":[{"digest":"sha256:00","size":1}]}"#,
        br#"{"manifests":[{"mediaType":"m","digest":"d","size":-1}]}"#,
        b"\xff\xfe",
    ] {
        fs::write(layout.join("index.json"), bad_index).unwrap();
        let err = image::resolve(&layout, "alpine:3.20").unwrap_err();
        assert_eq!(code(&err), ErrorCode::ImageNotFound, "{err}");
        assert!(err.to_string().contains("malformed"), "{err}");
        let err = image::list(&layout).unwrap_err();
        assert_eq!(code(&err), ErrorCode::ImageNotFound, "{err}");
    }
    fs::write(layout.join("index.json"), r#"{"manifests":[]}"#).unwrap();
    fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let err = image::resolve(&layout, "alpine:3.20").unwrap_err();
    assert!(err.to_string().contains("imageLayoutVersion"), "{err}");
    // A write never overwrites a layout it cannot read.
    let err = image::ensure_layout(&layout).unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound, "{err}");
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"2.0.0"}"#
    );
}

#[test]
fn tampered_or_incomplete_images_do_not_resolve() {
    if !python_available("tampered_or_incomplete_images_do_not_resolve") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    let digest = make_image(&layout, "alpine:3.20", &[]);
    let blobs = image::blobs_of(&layout, &digest).unwrap();

    // A manifest whose bytes no longer match its name.
    let manifest_path = blob_file(&layout, &digest);
    let original = fs::read(&manifest_path).unwrap();
    let mut tampered = original.clone();
    let last = tampered.len() - 2;
    tampered[last] = b' ';
    fs::write(&manifest_path, &tampered).unwrap();
    let err = image::resolve(&layout, "alpine:3.20").unwrap_err();
    assert_eq!(code(&err), ErrorCode::IntegrityMismatch, "{err}");
    fs::write(&manifest_path, &original).unwrap();

    // A missing layer makes the image incomplete.
    fs::remove_file(blob_file(&layout, &blobs[2].digest)).unwrap();
    for err in [
        image::resolve(&layout, "alpine:3.20").unwrap_err(),
        image::blobs_of(&layout, &digest).unwrap_err(),
        image::list(&layout).unwrap_err(),
    ] {
        assert_eq!(code(&err), ErrorCode::ImageNotFound, "{err}");
        assert!(err.to_string().contains(&blobs[2].digest), "{err}");
    }
}

/// Build a multi-arch image index over a host-arch image and another-arch
/// image, neither named on its own, store it under `multi:1`.
fn build_multi_arch(
    layout: &Path,
    scratch: &Path,
    with_host: bool,
) -> (String, String, Descriptor) {
    let host = host_arch();
    let other = if host == "amd64" { "arm64" } else { "amd64" };
    let host_digest = make_image(scratch, "host", &["--arch", host]);
    let other_digest = make_image(scratch, "other", &["--arch", other]);
    let mut platforms = vec![(other_digest.clone(), other)];
    if with_host {
        platforms.insert(0, (host_digest.clone(), host));
        platforms.reverse(); // the host's manifest is not simply the first
    }
    for (digest, _) in &platforms {
        for blob in image::blobs_of(scratch, digest).unwrap() {
            let mut file = fs::File::open(blob_file(scratch, &blob.digest)).unwrap();
            image::add_blob(layout, &blob, &mut file).unwrap();
        }
    }
    let manifests: Vec<serde_json::Value> = platforms
        .iter()
        .map(|(digest, arch)| {
            serde_json::json!({
                "mediaType": IMAGE_MANIFEST,
                "digest": digest,
                "size": fs::metadata(blob_file(scratch, digest)).unwrap().len(),
                "platform": {"architecture": arch, "os": "linux"},
            })
        })
        .collect();
    let index_bytes = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": IMAGE_INDEX,
        "manifests": manifests,
    }))
    .unwrap();
    let index_desc = Descriptor {
        media_type: IMAGE_INDEX.to_string(),
        digest: sha256_of(&index_bytes),
        size: index_bytes.len() as u64,
    };
    image::add_blob(layout, &index_desc, &mut &index_bytes[..]).unwrap();
    image::add_ref(layout, "multi:1", &index_desc).unwrap();
    (host_digest, other_digest, index_desc)
}

#[test]
fn multi_arch_index_resolves_to_the_host_platform() {
    if !python_available("multi_arch_index_resolves_to_the_host_platform") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    let (host_digest, other_digest, index_desc) =
        build_multi_arch(&layout, &tmp.path().join("scratch"), true);
    assert_ne!(host_digest, other_digest);

    let pin = image::resolve(&layout, "multi:1").unwrap();
    assert_eq!(pin.manifest_digest, host_digest);
    assert_eq!(pin.reference, "multi:1");
    // The index's digest and the platform manifest's digest both find it by name.
    for digest in [&index_desc.digest, &host_digest] {
        let pin = image::resolve(&layout, digest).unwrap();
        assert_eq!(pin.manifest_digest, host_digest, "{digest}");
        assert_eq!(pin.reference, "multi:1", "{digest}");
    }
    let listed = image::list(&layout).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reference.as_deref(), Some("multi:1"));
    assert_eq!(listed[0].manifest_digest, host_digest);

    let err = image::blobs_of(&layout, &index_desc.digest).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument, "{err}");
}

#[test]
fn multi_arch_index_without_the_host_platform_is_not_found() {
    if !python_available("multi_arch_index_without_the_host_platform_is_not_found") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    build_multi_arch(&layout, &tmp.path().join("scratch"), false);
    let err = image::resolve(&layout, "multi:1").unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound);
    assert!(
        err.to_string().contains(&format!("linux/{}", host_arch())),
        "{err}"
    );
    // Not an image for this machine: left out of the list, not an error.
    assert!(image::list(&layout).unwrap().is_empty());
}

#[test]
fn blobs_of_lists_manifest_config_then_layers_with_sizes() {
    if !python_available("blobs_of_lists_manifest_config_then_layers_with_sizes") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    let digest = make_image(&layout, "alpine:3.20", &[]);
    let blobs = image::blobs_of(&layout, &digest).unwrap();
    let manifest = read_json(&blob_file(&layout, &digest));

    assert_eq!(blobs.len(), 3);
    assert_eq!(blobs[0].digest, digest);
    assert_eq!(blobs[0].media_type, IMAGE_MANIFEST);
    assert_eq!(
        blobs[1].digest,
        manifest["config"]["digest"].as_str().unwrap()
    );
    assert_eq!(
        blobs[1].media_type,
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        blobs[2].digest,
        manifest["layers"][0]["digest"].as_str().unwrap()
    );
    for blob in &blobs {
        let bytes = fs::read(blob_file(&layout, &blob.digest)).unwrap();
        assert_eq!(blob.size, bytes.len() as u64, "{}", blob.digest);
        assert_eq!(sha256_of(&bytes), blob.digest);
    }
    // Serialized with the OCI field names.
    let json = serde_json::to_value(&blobs[0]).unwrap();
    assert_eq!(json["mediaType"], IMAGE_MANIFEST);
    assert_eq!(json["size"], blobs[0].size);

    let listed = image::list(&layout).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].config_digest, blobs[1].digest);
    assert_eq!(listed[0].layers, blobs[2..].to_vec());
    assert_eq!(
        listed[0].total_size,
        blobs.iter().map(|b| b.size).sum::<u64>()
    );

    let err = image::blobs_of(&layout, &format!("sha256:{}", "1".repeat(64))).unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound);
}

/// A reader that counts how many bytes were taken from it.
struct Counting<R> {
    inner: R,
    taken: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken += n as u64;
        Ok(n)
    }
}

#[test]
fn add_blob_checks_digest_and_size_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    let data = b"some layer bytes".repeat(1000);
    let good = Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: sha256_of(&data),
        size: data.len() as u64,
    };

    // Wrong content, right size.
    let mut wrong = data.clone();
    wrong[7] ^= 1;
    let err = image::add_blob(&layout, &good, &mut &wrong[..]).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArchive);
    assert!(err.to_string().contains(&good.digest), "{err}");
    // Too short.
    let err = image::add_blob(&layout, &good, &mut &data[..data.len() - 1]).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArchive);
    assert!(err.to_string().contains("size"), "{err}");
    // Too long, from an endless stream: reads stop at size + 1.
    let mut endless = Counting {
        inner: io::repeat(b'x'),
        taken: 0,
    };
    let err = image::add_blob(&layout, &good, &mut endless).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArchive);
    assert_eq!(endless.taken, good.size + 1);
    // None of the failures left a blob or a temp file behind.
    assert!(!blob_file(&layout, &good.digest).exists());
    assert!(
        temp_files_in(&layout).is_empty(),
        "{:?}",
        temp_files_in(&layout)
    );

    image::add_blob(&layout, &good, &mut &data[..]).unwrap();
    assert_eq!(fs::read(blob_file(&layout, &good.digest)).unwrap(), data);
    image::add_blob(&layout, &good, &mut &data[..]).unwrap();
    // An existing blob does not make a bad stream acceptable.
    let err = image::add_blob(&layout, &good, &mut &wrong[..]).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArchive);
    assert_eq!(fs::read(blob_file(&layout, &good.digest)).unwrap(), data);
    assert!(temp_files_in(&layout).is_empty());
    // add_blob made a valid empty layout around the blob.
    assert!(image::list(&layout).unwrap().is_empty());

    let hostile = Descriptor {
        digest: "sha256:../../etc/passwd".into(),
        ..good.clone()
    };
    let err = image::add_blob(&layout, &hostile, &mut &data[..]).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument);
}

#[test]
fn add_ref_into_an_empty_directory_then_resolve() {
    if !python_available("add_ref_into_an_empty_directory_then_resolve") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    let digest = make_image(&source, "whatever", &[]);
    let layout = tmp.path().join("home/images");
    let manifest = descriptor_of_blob(&source, &digest, IMAGE_MANIFEST);

    // The manifest must be stored first.
    let err = image::add_ref(&layout, "alpine:3.20", &manifest).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument, "{err}");

    for blob in image::blobs_of(&source, &digest).unwrap() {
        let mut file = fs::File::open(blob_file(&source, &blob.digest)).unwrap();
        image::add_blob(&layout, &blob, &mut file).unwrap();
    }
    image::add_ref(&layout, "alpine:3.20", &manifest).unwrap();
    assert_eq!(
        fs::read_to_string(layout.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let pin = image::resolve(&layout, "alpine:3.20").unwrap();
    assert_eq!(pin.manifest_digest, digest);
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["size"], manifest.size);

    // Adding the same name again changes nothing.
    let before = fs::read(layout.join("index.json")).unwrap();
    image::add_ref(&layout, "alpine:3.20", &manifest).unwrap();
    assert_eq!(fs::read(layout.join("index.json")).unwrap(), before);

    for bad in ["", "Alpine 3", "../x", "a//b", "-x"] {
        let err = image::add_ref(&layout, bad, &manifest).unwrap_err();
        assert_eq!(code(&err), ErrorCode::InvalidArgument, "{bad:?}");
    }
    let wrong_size = Descriptor {
        size: manifest.size + 1,
        ..manifest.clone()
    };
    assert!(image::add_ref(&layout, "x:1", &wrong_size).is_err());
    let layer = &image::blobs_of(&layout, &digest).unwrap()[2];
    let err = image::add_ref(&layout, "x:1", layer).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument, "{err}");
    assert!(temp_files_in(&layout).is_empty());
}

#[test]
fn add_ref_repoints_a_name_and_keeps_everything_else() {
    if !python_available("add_ref_repoints_a_name_and_keeps_everything_else") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    let first = make_image(&layout, "app:1", &[]);
    let kept = make_image(&layout, "keep:1", &["--arch", "arm64"]);
    let second = make_image(&layout, "app:2", &["--arch", "riscv64"]);

    // Fields microsnap does not know must survive a rewrite.
    let mut index = read_json(&layout.join("index.json"));
    index["x-vendor"] = serde_json::json!({"note": "keep me"});
    index["manifests"][1]["annotations"]["org.example.extra"] = "kept".into();
    index["manifests"][1]["platform"] = serde_json::json!({"architecture": "arm64", "os": "linux"});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let second_desc = descriptor_of_blob(&layout, &second, IMAGE_MANIFEST);
    image::add_ref(&layout, "app:1", &second_desc).unwrap();
    assert_eq!(
        image::resolve(&layout, "app:1").unwrap().manifest_digest,
        second
    );
    assert_eq!(
        image::resolve(&layout, "keep:1").unwrap().manifest_digest,
        kept
    );
    assert_eq!(
        image::resolve(&layout, "app:2").unwrap().manifest_digest,
        second
    );
    // The old manifest is still a blob, reachable by digest.
    assert_eq!(
        image::resolve(&layout, &first).unwrap().manifest_digest,
        first
    );

    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["x-vendor"]["note"], "keep me");
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    // The renamed entry kept its position.
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "app:1"
    );
    assert_eq!(entries[0]["digest"], second.as_str());
    assert_eq!(entries[1]["annotations"]["org.example.extra"], "kept");
    assert_eq!(entries[1]["platform"]["architecture"], "arm64");
}

#[test]
fn concurrent_add_ref_loses_no_name() {
    if !python_available("concurrent_add_ref_loses_no_name") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("images");
    let digest = make_image(&layout, "base:1", &[]);
    let manifest = descriptor_of_blob(&layout, &digest, IMAGE_MANIFEST);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (layout, manifest) = (&layout, &manifest);
            scope.spawn(move || {
                for i in 0..10 {
                    image::add_ref(layout, &format!("tag-{t}-{i}:1"), manifest).unwrap();
                }
            });
        }
    });
    let listed = image::list(&layout).unwrap();
    assert_eq!(listed.len(), 41);
    for t in 0..4 {
        for i in 0..10 {
            image::resolve(&layout, &format!("tag-{t}-{i}:1")).unwrap();
        }
    }
}

#[test]
fn import_layout_copies_every_image() {
    if !python_available("import_layout_copies_every_image") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    let alpine = make_image(&source, "alpine:3.20", &[]);
    let tool = make_image(&source, "ghcr.io/acme/tool:1", &["--arch", "arm64"]);
    let layout = tmp.path().join("images");
    make_image(&layout, "existing:1", &["--arch", "riscv64"]);

    let pins = image::import_layout(&layout, &source, None).unwrap();
    let got: Vec<(&str, &str)> = pins
        .iter()
        .map(|p| (p.reference.as_str(), p.manifest_digest.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("alpine:3.20", alpine.as_str()),
            ("ghcr.io/acme/tool:1", tool.as_str())
        ]
    );
    assert_eq!(
        image::resolve(&layout, "alpine:3.20")
            .unwrap()
            .manifest_digest,
        alpine
    );
    assert_eq!(
        image::resolve(&layout, "ghcr.io/acme/tool:1")
            .unwrap()
            .manifest_digest,
        tool
    );
    image::resolve(&layout, "existing:1").unwrap();
    for blob in image::blobs_of(&layout, &tool).unwrap() {
        assert_eq!(
            fs::read(blob_file(&layout, &blob.digest)).unwrap(),
            fs::read(blob_file(&source, &blob.digest)).unwrap()
        );
    }
    // Importing again is harmless.
    assert_eq!(image::import_layout(&layout, &source, None).unwrap(), pins);
    assert_eq!(image::list(&layout).unwrap().len(), 3);
}

#[test]
fn import_layout_with_a_name() {
    if !python_available("import_layout_with_a_name") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let single = tmp.path().join("single");
    let digest = make_image(&single, "whatever-skopeo-wrote", &[]);
    let layout = tmp.path().join("images");

    // The only image of a layout can be imported under a new name.
    let pins = image::import_layout(&layout, &single, Some("mine:1")).unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(
        (pins[0].reference.as_str(), pins[0].manifest_digest.as_str()),
        ("mine:1", digest.as_str())
    );
    assert_eq!(
        image::resolve(&layout, "mine:1").unwrap().manifest_digest,
        digest
    );
    assert!(image::resolve(&layout, "whatever-skopeo-wrote").is_err());

    // In a layout of several, the name picks one (normalized matching applies).
    let several = tmp.path().join("several");
    make_image(&several, "a:1", &[]);
    let b = make_image(&several, "docker.io/library/b:1", &["--arch", "arm64"]);
    let pins = image::import_layout(&layout, &several, Some("b:1")).unwrap();
    assert_eq!(pins[0].manifest_digest, b);
    assert_eq!(image::resolve(&layout, "b:1").unwrap().reference, "b:1");
    let err = image::import_layout(&layout, &several, Some("c:1")).unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound, "{err}");
    let err = image::import_layout(&layout, &several, Some("bad name")).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArgument, "{err}");
    // A source missing a layer of the image cannot be imported.
    let partial = tmp.path().join("partial");
    let p = make_image(&partial, "p:1", &["--arch", "riscv64"]);
    let layer = image::blobs_of(&partial, &p).unwrap()[2].digest.clone();
    fs::remove_file(blob_file(&partial, &layer)).unwrap();
    let err = image::import_layout(&layout, &partial, None).unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&partial.display().to_string()),
        "{message}"
    );
    assert!(message.contains(&layer), "{message}");
    assert!(image::resolve(&layout, "p:1").is_err());

    let err = image::import_layout(&layout, &tmp.path().join("nowhere"), None).unwrap_err();
    assert_eq!(code(&err), ErrorCode::ImageNotFound, "{err}");
}

#[test]
fn import_layout_refuses_a_corrupt_blob_and_names_nothing() {
    if !python_available("import_layout_refuses_a_corrupt_blob_and_names_nothing") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    let good = make_image(&source, "good:1", &[]);
    let bad = make_image(&source, "bad:1", &["--arch", "arm64"]);
    let layer = image::blobs_of(&source, &bad).unwrap()[2].clone();
    let layer_path = blob_file(&source, &layer.digest);
    let mut bytes = fs::read(&layer_path).unwrap();
    bytes[600] ^= 0xff;
    fs::write(&layer_path, &bytes).unwrap();
    assert_ne!(good, bad);

    let layout = tmp.path().join("images");
    let err = image::import_layout(&layout, &source, None).unwrap_err();
    assert_eq!(code(&err), ErrorCode::InvalidArchive, "{err}");
    assert!(err.to_string().contains(&layer.digest), "{err}");
    assert!(!blob_file(&layout, &layer.digest).exists());
    // The good image's blobs may have been copied, but no name was added.
    assert!(image::list(&layout).unwrap().is_empty());
    assert!(temp_files_in(&layout).is_empty());
}

#[test]
fn blob_path_refuses_anything_but_a_sha256_digest() {
    let layout = Path::new("/srv/images");
    let hex = "ab".repeat(32);
    assert_eq!(
        image::blob_path(layout, &format!("sha256:{hex}")).unwrap(),
        layout.join("blobs/sha256").join(&hex)
    );
    for bad in [
        "sha256:../../etc/passwd".to_string(),
        format!("sha256:{}", hex.to_uppercase()),
        format!("sha256:{hex}/"),
        format!("sha256:{}", &hex[..63]),
        format!("sha512:{hex}"),
        format!("sha256:/{}", &hex[1..]),
        hex.clone(),
        String::new(),
    ] {
        let err = image::blob_path(layout, &bad).unwrap_err();
        assert_eq!(code(&err), ErrorCode::InvalidArgument, "{bad:?}");
    }
}

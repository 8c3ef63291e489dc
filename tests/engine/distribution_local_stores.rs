//! The local stores of push and pull: `oci:DIR` (an OCI image layout) and
//! `oci-archive:FILE` (a tar of one), through the `Store` trait, checked
//! against the real OCI tools (umoci, skopeo) both ways, and against hostile
//! or half-written input. Tests that need a tool skip (and say so) when it
//! is not installed. Every image here is a few KiB.
use crate::support::image::on_path;
use microsnap::distribution::media_types::{ANNOTATION_REF_NAME, IMAGE_MANIFEST};
use microsnap::distribution::reference::Reference;
use microsnap::distribution::store::{self, Access, Store};
use microsnap::distribution::{layout, RemoteOptions};
use microsnap::error::ErrorCode;
use microsnap::progress::{CancelToken, Monitor};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::path::Path;
use std::process::Command;

const MAX: u64 = 1 << 20;

fn sha256(bytes: &[u8]) -> String {
    let mut out = String::from("sha256:");
    for b in Sha256::digest(bytes) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

/// A minimal valid OCI image: one plain-tar layer holding `hello`, a config
/// naming it, and a manifest of both.
struct Image {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

impl Image {
    fn new(content: &str) -> Image {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_path("hello").unwrap();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder.append(&header, content.as_bytes()).unwrap();
        let layer = builder.into_inner().unwrap();
        let config = serde_json::to_vec(&json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(&config),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256(&layer),
                "size": layer.len(),
            }],
        }))
        .unwrap();
        Image {
            config,
            layer,
            manifest,
        }
    }

    fn digest(&self) -> String {
        sha256(&self.manifest)
    }

    /// Put it in `store` under `tag`: the layer from a file, the config from
    /// memory, the manifest last (as push does).
    fn push(&self, store: &dyn Store, tag: &str, scratch: &Path) {
        let m = Monitor::none();
        let layer_file = scratch.join(format!("layer-{}", hex(&sha256(&self.layer))));
        fs::write(&layer_file, &self.layer).unwrap();
        let sent = store
            .put_blob_file(
                &sha256(&self.layer),
                &layer_file,
                self.layer.len() as u64,
                &m,
            )
            .unwrap();
        assert!(sent == 0 || sent == self.layer.len() as u64);
        store
            .put_blob_bytes(&sha256(&self.config), &self.config, &m)
            .unwrap();
        store
            .put_manifest(tag, &self.manifest, IMAGE_MANIFEST)
            .unwrap();
    }

    /// `store` holds it under `tag`, byte for byte.
    fn check_in(&self, store: &dyn Store, tag: &str) {
        let m = Monitor::none();
        assert_eq!(
            store.get_manifest(tag, MAX).unwrap().as_deref(),
            Some(&self.manifest[..]),
            "manifest {tag} of {}",
            store.describe()
        );
        assert_eq!(
            store.get_manifest(&self.digest(), MAX).unwrap().as_deref(),
            Some(&self.manifest[..])
        );
        for blob in [&self.config, &self.layer] {
            assert_eq!(
                store.blob_size(&sha256(blob)).unwrap(),
                Some(blob.len() as u64)
            );
            assert_eq!(&store.get_blob(&sha256(blob), MAX, &m).unwrap(), blob);
        }
        let range = store
            .get_blob_range(&sha256(&self.layer), 512, 5, &m)
            .unwrap();
        assert_eq!(range, &self.layer[512..517]);
    }
}

fn tool(test: &str, name: &str) -> bool {
    if on_path(name) {
        return true;
    }
    println!("SKIP {test}: `{name}` is not installed (not on PATH)");
    false
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn index_json(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap()
}

fn tags(dir: &Path) -> Vec<String> {
    index_json(dir)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            e["annotations"][ANNOTATION_REF_NAME]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn code<T>(result: microsnap::error::Result<T>) -> ErrorCode {
    match result {
        Ok(_) => panic!("expected an error, got Ok"),
        Err(e) => e.code(),
    }
}

// ---- oci:DIR ----

#[test]
fn layout_the_store_writes_is_what_umoci_and_skopeo_read() {
    let test = "layout_the_store_writes_is_what_umoci_and_skopeo_read";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    let reference = Reference::parse(&format!("oci:{}:one", dir.display())).unwrap();
    let store = store::open(
        &reference,
        &RemoteOptions::default(),
        Access::Write,
        tmp.path(),
    )
    .unwrap();
    let (one, two) = (Image::new("one"), Image::new("two"));
    one.push(&*store, "one", tmp.path());
    two.push(&*store, "two", tmp.path());
    store.commit().unwrap();
    assert_eq!(store.describe(), format!("oci:{}", dir.display()));
    let marker: Value = serde_json::from_slice(&fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(marker, json!({"imageLayoutVersion": "1.0.0"}));
    let index = index_json(&dir);
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(tags(&dir), ["one", "two"]);

    let read = layout::open(&dir, Access::Read).unwrap();
    one.check_in(&*read, "one");
    two.check_in(&*read, "two");

    if tool(test, "umoci") {
        let listed = run(Command::new("umoci").args(["ls", "--layout"]).arg(&dir));
        let mut listed: Vec<_> = String::from_utf8(listed)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        listed.sort();
        assert_eq!(listed, ["one", "two"]);
    }
    if tool(test, "skopeo") {
        for (tag, image) in [("one", &one), ("two", &two)] {
            let raw = run(Command::new("skopeo")
                .args(["inspect", "--raw"])
                .arg(format!("oci:{}:{tag}", dir.display())));
            assert_eq!(raw, image.manifest, "{tag}");
            let info: Value = serde_json::from_slice(&run(Command::new("skopeo")
                .arg("inspect")
                .arg(format!("oci:{}:{tag}", dir.display()))))
            .unwrap();
            assert_eq!(info["Digest"], image.digest().as_str());
            assert_eq!(info["Architecture"], "amd64");
        }
    }
}

#[test]
fn layout_skopeo_writes_is_read_by_the_store() {
    let test = "layout_skopeo_writes_is_read_by_the_store";
    if !tool(test, "skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (ours, theirs) = (tmp.path().join("ours"), tmp.path().join("theirs"));
    let image = Image::new("copied");
    image.push(
        &*layout::open(&ours, Access::Write).unwrap(),
        "src",
        tmp.path(),
    );
    // Without these flags skopeo gzips the plain-tar layer on the way.
    run(Command::new("skopeo")
        .args([
            "copy",
            "--dest-oci-accept-uncompressed-layers",
            "--preserve-digests",
        ])
        .arg(format!("oci:{}:src", ours.display()))
        .arg(format!("oci:{}:dst", theirs.display())));
    image.check_in(&*layout::open(&theirs, Access::Read).unwrap(), "dst");
    // And the store adds to the layout skopeo made without disturbing it.
    let other = Image::new("other");
    other.push(
        &*layout::open(&theirs, Access::Write).unwrap(),
        "more",
        tmp.path(),
    );
    assert_eq!(tags(&theirs), ["dst", "more"]);
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:dst", theirs.display())));
    assert_eq!(raw, image.manifest);
}

#[test]
fn re_putting_a_tag_replaces_only_that_entry_and_keeps_foreign_ones_and_unknown_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    let store = layout::open(&dir, Access::Write).unwrap();
    let (a, b, c) = (Image::new("a"), Image::new("b"), Image::new("c"));
    a.push(&*store, "a", tmp.path());
    b.push(&*store, "b", tmp.path());
    // Another tool's entries: one unnamed with unknown fields, one named,
    // and an unknown top-level field.
    let mut index = index_json(&dir);
    let foreign_unnamed = json!({
        "mediaType": IMAGE_MANIFEST,
        "digest": a.digest(),
        "size": a.manifest.len(),
        "platform": {"architecture": "arm64", "os": "linux"},
        "x-vendor": {"keep": [1, 2, 3]},
    });
    let foreign_named = json!({
        "mediaType": IMAGE_MANIFEST,
        "digest": b.digest(),
        "size": b.manifest.len(),
        "annotations": {ANNOTATION_REF_NAME: "theirs", "org.example.note": "untouched"},
    });
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(foreign_unnamed.clone());
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(foreign_named.clone());
    index["annotations"] = json!({"org.example.layout": "mine"});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();

    c.push(&*store, "a", tmp.path());
    let after = index_json(&dir);
    assert_eq!(after["annotations"], json!({"org.example.layout": "mine"}));
    let entries = after["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{after:#}");
    // "a" took the old entry's place and names the new manifest.
    assert_eq!(entries[0]["annotations"][ANNOTATION_REF_NAME], "a");
    assert_eq!(entries[0]["digest"], c.digest().as_str());
    assert_eq!(entries[0]["size"], c.manifest.len());
    assert_eq!(entries[0]["mediaType"], IMAGE_MANIFEST);
    assert_eq!(entries[1]["annotations"][ANNOTATION_REF_NAME], "b");
    assert_eq!(entries[1]["digest"], b.digest().as_str());
    assert_eq!(entries[2], foreign_unnamed);
    assert_eq!(entries[3], foreign_named);
    c.check_in(&*store, "a");
    b.check_in(&*store, "b");
    assert_eq!(
        store.get_manifest("theirs", MAX).unwrap().unwrap(),
        b.manifest
    );
    // The replaced manifest is still a blob (a layout never deletes on push).
    assert_eq!(
        store.get_manifest(&a.digest(), MAX).unwrap().unwrap(),
        a.manifest
    );
    assert_eq!(store.get_manifest("nosuchtag", MAX).unwrap(), None);
    assert_eq!(store.get_manifest(&sha256(b"absent"), MAX).unwrap(), None);
    assert_eq!(
        code(store.get_manifest("bad tag", MAX)),
        ErrorCode::InvalidArgument
    );
}

#[test]
fn two_pushers_into_one_layout_lose_no_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    layout::open(&dir, Access::Write).unwrap();
    std::thread::scope(|s| {
        for worker in 0..2 {
            let (dir, scratch) = (dir.clone(), tmp.path().to_path_buf());
            s.spawn(move || {
                let store = layout::open(&dir, Access::Write).unwrap();
                for i in 0..15 {
                    Image::new(&format!("{worker}-{i}")).push(
                        &*store,
                        &format!("t{worker}-{i}"),
                        &scratch,
                    );
                }
            });
        }
    });
    let mut found = tags(&dir);
    found.sort();
    let mut expected: Vec<String> = (0..2)
        .flat_map(|w| (0..15).map(move |i| format!("t{w}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn a_leftover_temp_file_of_a_killed_push_is_no_blob_and_the_layout_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    let image = Image::new("after a crash");
    layout::open(&dir, Access::Write).unwrap();
    // What a push killed mid-blob leaves: the first bytes in a temp file.
    let leftover = dir.join("blobs/sha256/.tmp-12345-0-00000000");
    fs::write(&leftover, &image.layer[..100]).unwrap();
    let store = layout::open(&dir, Access::Write).unwrap();
    assert_eq!(store.blob_size(&sha256(&image.layer)).unwrap(), None);
    assert_eq!(
        code(store.get_blob(&sha256(&image.layer), MAX, &Monitor::none())),
        ErrorCode::InvalidArchive
    );
    image.push(&*store, "t", tmp.path());
    image.check_in(&*layout::open(&dir, Access::Read).unwrap(), "t");
    if on_path("skopeo") {
        let raw = run(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:t", dir.display())));
        assert_eq!(raw, image.manifest);
    }
    // The store's own writes leave no temp file behind.
    let temps: Vec<_> = files_under(&dir)
        .into_iter()
        .filter(|f| f.contains(".tmp-"))
        .collect();
    assert_eq!(temps, ["blobs/sha256/.tmp-12345-0-00000000"]);
}

#[test]
fn a_blob_whose_bytes_do_not_match_its_digest_or_size_is_refused_and_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    let store = layout::open(&dir, Access::Write).unwrap();
    let m = Monitor::none();
    let wrong = sha256(b"something else");
    assert_eq!(
        code(store.put_blob_bytes(&wrong, b"these bytes", &m)),
        ErrorCode::IntegrityMismatch
    );
    let file = tmp.path().join("blob");
    fs::write(&file, b"these bytes").unwrap();
    let right = sha256(b"these bytes");
    assert_eq!(
        code(store.put_blob_file(&wrong, &file, 11, &m)),
        ErrorCode::IntegrityMismatch
    );
    // The file is longer, then shorter, than announced.
    assert_eq!(
        code(store.put_blob_file(&right, &file, 10, &m)),
        ErrorCode::IntegrityMismatch
    );
    assert_eq!(
        code(store.put_blob_file(&right, &file, 12, &m)),
        ErrorCode::IntegrityMismatch
    );
    assert_eq!(store.blob_size(&wrong).unwrap(), None);
    assert_eq!(store.blob_size(&right).unwrap(), None);
    assert_eq!(files_under(&dir), ["index.json", "oci-layout"]);
    assert_eq!(
        code(store.put_blob_bytes("sha256:../../x", b"", &m)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(code(store.blob_size("md5:abc")), ErrorCode::InvalidArgument);
    // Right: stored once; a second put sends nothing.
    assert_eq!(store.put_blob_file(&right, &file, 11, &m).unwrap(), 11);
    assert_eq!(store.put_blob_file(&right, &file, 11, &m).unwrap(), 0);
    assert_eq!(store.put_blob_bytes(&right, b"these bytes", &m).unwrap(), 0);
    assert_eq!(store.blob_size(&right).unwrap(), Some(11));
}

#[test]
fn reads_are_bounded_and_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    let store = layout::open(&dir, Access::Write).unwrap();
    let image = Image::new("bounded");
    image.push(&*store, "t", tmp.path());
    let m = Monitor::none();
    let layer = sha256(&image.layer);
    let len = image.layer.len() as u64;
    assert_eq!(
        code(store.get_blob(&layer, len - 1, &m)),
        ErrorCode::InvalidArchive
    );
    assert_eq!(store.get_blob(&layer, len, &m).unwrap(), image.layer);
    assert_eq!(
        store.get_blob_range(&layer, len - 3, 3, &m).unwrap(),
        &image.layer[len as usize - 3..]
    );
    assert_eq!(store.get_blob_range(&layer, 0, 0, &m).unwrap(), b"");
    let err = store.get_blob_range(&layer, len - 3, 4, &m).unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArchive);
    assert!(err.to_string().contains(&layer), "{err}");
    assert_eq!(
        code(store.get_blob_range(&layer, u64::MAX, 2, &m)),
        ErrorCode::InvalidArchive
    );
    assert_eq!(
        code(store.get_manifest("t", image.manifest.len() as u64 - 1)),
        ErrorCode::InvalidArchive
    );
    // A blob changed on disk is caught when read as a manifest.
    let manifest_path = dir.join("blobs/sha256").join(hex(&image.digest()));
    let mut bytes = image.manifest.clone();
    bytes[0] ^= 1;
    fs::write(&manifest_path, &bytes).unwrap();
    assert_eq!(
        code(store.get_manifest("t", MAX)),
        ErrorCode::IntegrityMismatch
    );
    // A symlink planted as a blob is not followed.
    let target = tmp.path().join("outside");
    fs::write(&target, b"secret").unwrap();
    let planted = sha256(b"secret");
    std::os::unix::fs::symlink(&target, dir.join("blobs/sha256").join(hex(&planted))).unwrap();
    assert_eq!(
        code(store.get_blob(&planted, MAX, &m)),
        ErrorCode::InvalidArchive
    );
    assert_eq!(code(store.blob_size(&planted)), ErrorCode::InvalidArchive);
}

#[test]
fn a_cancelled_put_or_read_stops_and_leaves_no_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    let store = layout::open(&dir, Access::Write).unwrap();
    let bytes = vec![7u8; 6 << 20];
    let file = tmp.path().join("big");
    fs::write(&file, &bytes).unwrap();
    let token = CancelToken::new();
    token.cancel();
    let cancelled = Monitor::with_cancel(token);
    let digest = sha256(&bytes);
    assert_eq!(
        code(store.put_blob_file(&digest, &file, bytes.len() as u64, &cancelled)),
        ErrorCode::Cancelled
    );
    store.abandon();
    assert_eq!(store.blob_size(&digest).unwrap(), None);
    assert_eq!(files_under(&dir), ["index.json", "oci-layout"]);
    store
        .put_blob_file(&digest, &file, bytes.len() as u64, &Monitor::none())
        .unwrap();
    assert_eq!(
        code(store.get_blob(&digest, u64::MAX, &cancelled)),
        ErrorCode::Cancelled
    );
    assert_eq!(
        code(store.get_blob_range(&digest, 0, 5 << 20, &cancelled)),
        ErrorCode::Cancelled
    );
}

#[test]
fn a_directory_that_is_not_a_layout_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = tmp.path().join("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("precious"), b"mine").unwrap();
    assert_eq!(
        code(layout::open(&busy, Access::Write)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(layout::open(&busy, Access::Read)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(files_under(&busy), ["precious"]);
    let file = tmp.path().join("file");
    fs::write(&file, b"x").unwrap();
    assert_eq!(
        code(layout::open(&file, Access::Write)),
        ErrorCode::InvalidArgument
    );
    assert_eq!(fs::read(&file).unwrap(), b"x");
    // Reading never creates anything.
    let missing = tmp.path().join("missing");
    assert_eq!(
        code(layout::open(&missing, Access::Read)),
        ErrorCode::InvalidArgument
    );
    assert!(!missing.exists());
    // An empty directory becomes a layout; a wrong marker is refused.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    layout::open(&empty, Access::Write).unwrap();
    assert_eq!(files_under(&empty), ["index.json", "oci-layout"]);
    fs::write(empty.join("oci-layout"), br#"{"imageLayoutVersion":"9.0"}"#).unwrap();
    assert_eq!(
        code(layout::open(&empty, Access::Write)),
        ErrorCode::InvalidArchive
    );
    // A store opened for reading does not write.
    let lay = tmp.path().join("lay");
    layout::open(&lay, Access::Write).unwrap();
    let read = layout::open(&lay, Access::Read).unwrap();
    assert!(read
        .put_blob_bytes(&sha256(b"x"), b"x", &Monitor::none())
        .is_err());
    assert!(read.put_manifest("t", b"{}", IMAGE_MANIFEST).is_err());
    assert_eq!(files_under(&lay), ["index.json", "oci-layout"]);
}

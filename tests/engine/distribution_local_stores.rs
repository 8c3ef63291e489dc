//! The local stores of push and pull: `oci:DIR` (an OCI image layout) and
//! `oci-archive:FILE` (a tar of one), through the `Store` trait, checked
//! against the real OCI tools (umoci, skopeo) both ways, and against hostile
//! or half-written input. Tests that need a tool skip (and say so) when it
//! is not installed. Every image here is a few KiB.
use crate::support::image::on_path;
use microsnap::distribution::media_types::{self, ANNOTATION_REF_NAME, IMAGE_MANIFEST};
use microsnap::distribution::reference::Reference;
use microsnap::distribution::store::{self, Access, Store};
use microsnap::distribution::{layout, oci_archive, RemoteOptions};
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

    /// Shaped as push makes a snapshot: microsnap's config and layer media
    /// types and `artifactType`, no tar anywhere.
    fn snapshot_like(content: &str) -> Image {
        let config = format!(r#"{{"name":"{content}"}}"#).into_bytes();
        let layer = content.repeat(200).into_bytes();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST,
            "artifactType": media_types::ARTIFACT_TYPE,
            "config": {"mediaType": media_types::CONFIG, "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": media_types::PACK, "digest": sha256(&layer), "size": layer.len()}],
            "annotations": {media_types::ANNOTATION_SNAPSHOT_DIGEST: sha256(&config)},
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
    store.commit(&Monitor::none()).unwrap();
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

// ---- oci-archive:FILE ----

fn archive_ref(file: &Path, tag: &str) -> String {
    format!("oci-archive:{}:{tag}", file.display())
}

/// Write an archive holding `images` (tag, image) with the store.
fn write_archive(file: &Path, scratch: &Path, images: &[(&str, &Image)]) {
    let store = oci_archive::open(file, Access::Write, scratch).unwrap();
    for (tag, image) in images {
        image.push(&*store, tag, scratch);
    }
    store.commit(&Monitor::none()).unwrap();
}

/// Writing the archive file is the long part of a push to `oci-archive:`
/// (every blob is copied into it): a cancel stops it, and neither the file
/// nor its temporary is left.
#[test]
fn a_cancelled_archive_commit_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let file = out.join("a.tar");
    let store = oci_archive::open(&file, Access::Write, &scratch).unwrap();
    Image::new("big").push(&*store, "v", &scratch);
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = store
        .commit(&Monitor::with_cancel(cancel))
        .expect_err("a cancelled commit must fail");
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    assert_eq!(
        fs::read_dir(&out).unwrap().count(),
        0,
        "the archive or its temporary file was left"
    );
    // The same store, not cancelled, still writes it whole.
    store.commit(&Monitor::none()).unwrap();
    assert!(file.exists());
}

/// (name, entry type byte, mode, mtime, uid, gid, size) of each member.
fn members(file: &Path) -> Vec<(String, u8, u32, u64, u64, u64, u64)> {
    let mut archive = tar::Archive::new(fs::File::open(file).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.entry_type().as_byte(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                e.size(),
            )
        })
        .collect()
}

#[test]
fn archive_skopeo_writes_is_read_by_the_store() {
    if !tool("archive_skopeo_writes_is_read_by_the_store", "skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    let image = Image::new("to an archive");
    image.push(
        &*layout::open(&dir, Access::Write).unwrap(),
        "src",
        tmp.path(),
    );
    let file = tmp.path().join("skopeo.tar");
    run(Command::new("skopeo")
        .args([
            "copy",
            "--dest-oci-accept-uncompressed-layers",
            "--preserve-digests",
        ])
        .arg(format!("oci:{}:src", dir.display()))
        .arg(archive_ref(&file, "t")));
    let reference = Reference::parse(&archive_ref(&file, "t")).unwrap();
    let store = store::open(
        &reference,
        &RemoteOptions::default(),
        Access::Read,
        tmp.path(),
    )
    .unwrap();
    assert_eq!(store.describe(), format!("oci-archive:{}", file.display()));
    image.check_in(&*store, "t");
    assert_eq!(store.get_manifest("src", MAX).unwrap(), None);
    // Reading extracted nothing.
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        3,
        "lay, skopeo.tar, the layer file"
    );
}

#[test]
fn archive_the_store_writes_is_what_skopeo_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("ours.tar");
    let (one, two) = (Image::new("one"), Image::new("two"));
    write_archive(&file, tmp.path(), &[("one", &one), ("two", &two)]);
    let read = oci_archive::open(&file, Access::Read, tmp.path()).unwrap();
    one.check_in(&*read, "one");
    two.check_in(&*read, "two");
    // Regular members in a fixed order, owned by root, mode 0644, mtime 0.
    let listed = members(&file);
    let mut blobs: Vec<String> = [
        &one.config,
        &one.layer,
        &one.manifest,
        &two.config,
        &two.layer,
        &two.manifest,
    ]
    .iter()
    .map(|b| format!("blobs/sha256/{}", hex(&sha256(b))))
    .collect();
    blobs.sort();
    let mut expected = vec!["oci-layout".to_string(), "index.json".to_string()];
    expected.extend(blobs);
    assert_eq!(
        listed.iter().map(|m| m.0.clone()).collect::<Vec<_>>(),
        expected
    );
    for (name, kind, mode, mtime, uid, gid, _) in &listed {
        assert_eq!(
            (*kind, *mode, *mtime, *uid, *gid),
            (b'0', 0o644, 0, 0, 0),
            "{name}"
        );
    }
    // Nothing left beside it or in the scratch.
    let mut left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("layer-"))
        .collect();
    left.sort();
    assert_eq!(left, ["ours.tar"]);

    if tool("archive_the_store_writes_is_what_skopeo_reads", "skopeo") {
        let raw = run(Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(archive_ref(&file, "two")));
        assert_eq!(raw, two.manifest);
        let info: Value = serde_json::from_slice(&run(Command::new("skopeo")
            .arg("inspect")
            .arg(archive_ref(&file, "one"))))
        .unwrap();
        assert_eq!(info["Digest"], one.digest().as_str());
        let back = tmp.path().join("back");
        run(Command::new("skopeo")
            .args([
                "copy",
                "--dest-oci-accept-uncompressed-layers",
                "--preserve-digests",
            ])
            .arg(archive_ref(&file, "one"))
            .arg(format!("oci:{}:one", back.display())));
        one.check_in(&*layout::open(&back, Access::Read).unwrap(), "one");
    }
}

#[test]
fn pushing_into_an_existing_archive_keeps_what_it_held() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("family.tar");
    let (parent, child, other) = (
        Image::new("parent"),
        Image::new("child"),
        Image::new("other"),
    );
    write_archive(&file, tmp.path(), &[("parent", &parent), ("other", &other)]);
    let store = oci_archive::open(&file, Access::Write, tmp.path()).unwrap();
    // The writer sees what the file holds: nothing of it is sent again.
    parent.check_in(&*store, "parent");
    let m = Monitor::none();
    assert_eq!(
        store
            .put_blob_bytes(&sha256(&parent.layer), &parent.layer, &m)
            .unwrap(),
        0
    );
    child.push(&*store, "child", tmp.path());
    // Re-tagging replaces only that entry.
    child.push(&*store, "other", tmp.path());
    child.check_in(&*store, "child");
    store.commit(&Monitor::none()).unwrap();
    drop(store);
    let read = oci_archive::open(&file, Access::Read, tmp.path()).unwrap();
    parent.check_in(&*read, "parent");
    child.check_in(&*read, "child");
    child.check_in(&*read, "other");
    // other's blobs stay too (an archive never deletes on push).
    assert_eq!(
        read.blob_size(&sha256(&other.layer)).unwrap(),
        Some(other.layer.len() as u64)
    );
    let names: Vec<String> = members(&file).into_iter().map(|m| m.0).collect();
    assert_eq!(names.len(), 2 + 9, "{names:?}");
}

#[test]
fn a_failed_or_cancelled_archive_push_leaves_the_file_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    let file = tmp.path().join("a.tar");
    let image = Image::new("kept");
    write_archive(&file, &scratch, &[("kept", &image)]);
    let before = fs::read(&file).unwrap();
    let layer_file = tmp.path().join("big");
    let big = vec![3u8; 5 << 20];
    fs::write(&layer_file, &big).unwrap();

    // Abandoned after a cancel.
    let store = oci_archive::open(&file, Access::Write, &scratch).unwrap();
    Image::new("new").push(&*store, "new", &scratch);
    let token = CancelToken::new();
    token.cancel();
    let cancelled = Monitor::with_cancel(token);
    assert_eq!(
        code(store.put_blob_file(&sha256(&big), &layer_file, big.len() as u64, &cancelled)),
        ErrorCode::Cancelled
    );
    store.abandon();
    drop(store);
    // Dropped without commit.
    let store = oci_archive::open(&file, Access::Write, &scratch).unwrap();
    Image::new("new").push(&*store, "new", &scratch);
    drop(store);
    // A new file abandoned is never created.
    let fresh = tmp.path().join("fresh.tar");
    let store = oci_archive::open(&fresh, Access::Write, &scratch).unwrap();
    Image::new("new").push(&*store, "new", &scratch);
    store.abandon();
    drop(store);

    assert_eq!(fs::read(&file).unwrap(), before);
    assert!(!fresh.exists());
    let mut left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["a.tar", "big", "scratch"]);
    let scratch_left: Vec<_> = fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().starts_with("layer-"))
        .collect();
    assert!(scratch_left.is_empty(), "{scratch_left:?}");
    image.check_in(
        &*oci_archive::open(&file, Access::Read, &scratch).unwrap(),
        "kept",
    );
}

#[test]
fn an_existing_file_that_is_not_an_oci_archive_is_never_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("notes.txt");
    fs::write(&file, b"precious notes, not a tar").unwrap();
    assert_eq!(
        code(oci_archive::open(&file, Access::Write, tmp.path())),
        ErrorCode::InvalidArgument
    );
    assert_eq!(fs::read(&file).unwrap(), b"precious notes, not a tar");
    assert_eq!(
        code(oci_archive::open(&file, Access::Read, tmp.path())),
        ErrorCode::InvalidArchive
    );
    let missing = tmp.path().join("missing.tar");
    assert_eq!(
        code(oci_archive::open(&missing, Access::Read, tmp.path())),
        ErrorCode::InvalidArgument
    );
    let no_dir = tmp.path().join("no/such/dir/a.tar");
    assert_eq!(
        code(oci_archive::open(&no_dir, Access::Write, tmp.path())),
        ErrorCode::InvalidArgument
    );
}

/// One hand-made tar member: raw name bytes (no checks), type, data, link.
struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    data: &'a [u8],
    link: &'a str,
}

fn raw(name: &[u8], data: &[u8]) -> Vec<u8> {
    raw_tar(&[Raw {
        name,
        kind: tar::EntryType::Regular,
        data,
        link: "",
    }])
}

/// A tar of `members` written header by header, so names and types the
/// `tar` crate's setters refuse can be made; ends with two zero blocks.
fn raw_tar(members: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..m.name.len()].copy_from_slice(m.name);
        header.set_entry_type(m.kind);
        header.set_size(m.data.len() as u64);
        header.set_mode(0o644);
        if !m.link.is_empty() {
            header.set_link_name(m.link).unwrap();
        }
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(m.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// The members of a valid one-image archive, `./`-prefixed, with directory
/// entries (as some writers make them).
fn dotted_members(image: &Image) -> Vec<(Vec<u8>, Vec<u8>)> {
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": IMAGE_MANIFEST,
            "digest": image.digest(),
            "size": image.manifest.len(),
            "annotations": {ANNOTATION_REF_NAME: "t"},
        }],
    }))
    .unwrap();
    let mut out = vec![
        (
            b"./oci-layout".to_vec(),
            br#"{"imageLayoutVersion": "1.0.0"}"#.to_vec(),
        ),
        (b"./index.json".to_vec(), index),
    ];
    for blob in [&image.config, &image.layer, &image.manifest] {
        out.push((
            format!("./blobs/sha256/{}", hex(&sha256(blob))).into_bytes(),
            blob.clone(),
        ));
    }
    out
}

fn tar_of(members: &[(Vec<u8>, Vec<u8>)], dirs: bool) -> Vec<u8> {
    let mut raws: Vec<Raw> = Vec::new();
    let dir = |name: &'static [u8]| Raw {
        name,
        kind: tar::EntryType::Directory,
        data: b"",
        link: "",
    };
    if dirs {
        raws.extend([dir(b"./"), dir(b"./blobs/"), dir(b"./blobs/sha256/")]);
    }
    raws.extend(members.iter().map(|(name, data)| Raw {
        name,
        kind: tar::EntryType::Regular,
        data,
        link: "",
    }));
    raw_tar(&raws)
}

#[test]
fn dotted_names_and_directory_entries_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let image = Image::new("dotted");
    let file = tmp.path().join("dotted.tar");
    fs::write(&file, tar_of(&dotted_members(&image), true)).unwrap();
    image.check_in(
        &*oci_archive::open(&file, Access::Read, tmp.path()).unwrap(),
        "t",
    );
    // Adding to it keeps the image.
    write_archive(&file, tmp.path(), &[("u", &Image::new("u"))]);
    image.check_in(
        &*oci_archive::open(&file, Access::Read, tmp.path()).unwrap(),
        "t",
    );
}

#[test]
fn hostile_or_broken_archives_are_invalid_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let image = Image::new("hostile");
    let good = tar_of(&dotted_members(&image), false);
    let with = |extra: Raw| {
        // The hostile member first, then a whole valid layout.
        let mut bytes = raw_tar(&[extra]);
        bytes.truncate(bytes.len() - 1024);
        bytes.extend(tar_of(&dotted_members(&image), false));
        bytes
    };
    let reg = tar::EntryType::Regular;
    let mut truncated_mid = good.clone();
    truncated_mid.truncate(good.len() / 2 + 100);
    let mut no_end = good.clone();
    no_end.truncate(good.len() - 1024);
    let mut duplicated = dotted_members(&image);
    duplicated.push((b"index.json".to_vec(), b"{}".to_vec()));
    let mut oversized = raw(b"oci-layout", &[b'x'; 600]);
    oversized.truncate(512 + 512); // the header says 600 bytes, 512 remain
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dot-dot",
            with(Raw {
                name: b"../x",
                kind: reg,
                data: b"x",
                link: "",
            }),
        ),
        (
            "nested dot-dot",
            with(Raw {
                name: b"blobs/../../x",
                kind: reg,
                data: b"x",
                link: "",
            }),
        ),
        (
            "absolute",
            with(Raw {
                name: b"/etc/x",
                kind: reg,
                data: b"x",
                link: "",
            }),
        ),
        (
            "symlink",
            with(Raw {
                name: b"blobs/sha256/aa",
                kind: tar::EntryType::Symlink,
                data: b"",
                link: "/etc/passwd",
            }),
        ),
        (
            "hard link",
            with(Raw {
                name: b"x",
                kind: tar::EntryType::Link,
                data: b"",
                link: "index.json",
            }),
        ),
        (
            "device",
            with(Raw {
                name: b"dev",
                kind: tar::EntryType::Char,
                data: b"",
                link: "",
            }),
        ),
        (
            "fifo",
            with(Raw {
                name: b"fifo",
                kind: tar::EntryType::Fifo,
                data: b"",
                link: "",
            }),
        ),
        ("duplicate", tar_of(&duplicated, false)),
        ("truncated mid-member", truncated_mid),
        ("truncated at a member boundary", no_end),
        ("member larger than the file", oversized),
        (
            "not a tar",
            b"just some text that is not a tar archive".repeat(20),
        ),
        ("empty tar", vec![0u8; 1024]),
        ("no index.json", tar_of(&dotted_members(&image)[..1], false)),
        (
            "index.json not JSON",
            tar_of(
                &[
                    (
                        b"oci-layout".to_vec(),
                        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
                    ),
                    (b"index.json".to_vec(), b"nope".to_vec()),
                ],
                false,
            ),
        ),
    ];
    for (what, bytes) in cases {
        let file = tmp.path().join("hostile.tar");
        fs::write(&file, &bytes).unwrap();
        let result = oci_archive::open(&file, Access::Read, tmp.path());
        match result {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => {
                println!("{what}: {e}");
                assert_eq!(e.code(), ErrorCode::InvalidArchive, "{what}: {e}")
            }
        }
    }
    // Nothing was extracted anywhere.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["hostile.tar"]);
    // The same members, well formed, are fine.
    let file = tmp.path().join("good.tar");
    fs::write(&file, &good).unwrap();
    image.check_in(
        &*oci_archive::open(&file, Access::Read, tmp.path()).unwrap(),
        "t",
    );
}

#[test]
fn a_blob_corrupted_inside_an_archive_is_caught_where_the_store_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let image = Image::new("corrupt");
    let mut members = dotted_members(&image);
    // The manifest blob (last) changed: the store checks manifests.
    members.last_mut().unwrap().1[3] ^= 1;
    let file = tmp.path().join("c.tar");
    fs::write(&file, tar_of(&members, false)).unwrap();
    let store = oci_archive::open(&file, Access::Read, tmp.path()).unwrap();
    assert_eq!(
        code(store.get_manifest("t", MAX)),
        ErrorCode::IntegrityMismatch
    );
    // Blob reads move bytes; ranges past a member's end are refused.
    let layer = sha256(&image.layer);
    assert_eq!(
        code(store.get_blob_range(&layer, image.layer.len() as u64, 1, &Monitor::none())),
        ErrorCode::InvalidArchive
    );
    assert_eq!(
        code(store.get_blob(&sha256(b"absent"), MAX, &Monitor::none())),
        ErrorCode::InvalidArchive
    );
    assert_eq!(store.blob_size(&sha256(b"absent")).unwrap(), None);
    let token = CancelToken::new();
    token.cancel();
    assert_eq!(
        code(store.get_blob(&layer, MAX, &Monitor::with_cancel(token))),
        ErrorCode::Cancelled
    );
    assert!(store
        .put_blob_bytes(&sha256(b"x"), b"x", &Monitor::none())
        .is_err());
}

#[test]
fn skopeo_carries_a_snapshot_shaped_artifact_between_the_stores_unchanged() {
    if !tool(
        "skopeo_carries_a_snapshot_shaped_artifact_between_the_stores_unchanged",
        "skopeo",
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let image = Image::snapshot_like("snapshot");
    let (dir, theirs, back) = (
        tmp.path().join("lay"),
        tmp.path().join("skopeo.tar"),
        tmp.path().join("back"),
    );
    let ours = tmp.path().join("ours.tar");
    image.push(
        &*layout::open(&dir, Access::Write).unwrap(),
        "snap",
        tmp.path(),
    );
    write_archive(&ours, tmp.path(), &[("snap", &image)]);
    // No flags: skopeo leaves blobs of unknown media types as they are.
    run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:snap", dir.display()))
        .arg(archive_ref(&theirs, "snap")));
    image.check_in(
        &*oci_archive::open(&theirs, Access::Read, tmp.path()).unwrap(),
        "snap",
    );
    run(Command::new("skopeo")
        .arg("copy")
        .arg(archive_ref(&ours, "snap"))
        .arg(format!("oci:{}:snap", back.display())));
    image.check_in(&*layout::open(&back, Access::Read).unwrap(), "snap");
}

#[test]
fn a_cancel_during_a_blob_copy_stops_it_within_a_few_mib() {
    // The source is a FIFO fed by a thread that cancels after 4.5 MiB and
    // then offers 4 MiB more: the copy must notice at its next check (at
    // 8 MiB) instead of storing the blob, whatever the scheduling.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    let store = layout::open(&dir, Access::Write).unwrap();
    let bytes: Vec<u8> = (0..(8u32 << 20) + (1 << 19))
        .map(|i| (i % 251) as u8)
        .collect();
    let fifo = tmp.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: c_path is a valid NUL-terminated path for the call's duration.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let token = CancelToken::new();
    let monitor = Monitor::with_cancel(token.clone());
    let first = (4 << 20) + (1 << 19);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            use std::io::Write;
            let mut w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
            w.write_all(&bytes[..first]).unwrap();
            token.cancel();
            // The reader stops early: a broken pipe here is expected.
            let _ = w.write_all(&bytes[first..]);
        });
        store.put_blob_file(&sha256(&bytes), &fifo, bytes.len() as u64, &monitor)
    });
    assert_eq!(code(result), ErrorCode::Cancelled);
    assert_eq!(store.blob_size(&sha256(&bytes)).unwrap(), None);
    assert_eq!(files_under(&dir), ["index.json", "oci-layout"]);
}

#[test]
fn a_layout_whose_creation_was_cut_after_its_marker_is_completed_by_the_next_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lay");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    assert_eq!(
        code(layout::open(&dir, Access::Read)),
        ErrorCode::InvalidArchive
    );
    let image = Image::new("completed");
    image.push(
        &*layout::open(&dir, Access::Write).unwrap(),
        "t",
        tmp.path(),
    );
    image.check_in(&*layout::open(&dir, Access::Read).unwrap(), "t");
}

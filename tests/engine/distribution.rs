//! Push and pull through the local transports (`oci:DIR`, `oci-archive:FILE`):
//! round trips, chunk dedup against a parent, lineage, `since`, tampered
//! blobs, cancellation, and the names pull gives. The registry transport
//! runs the same engine code; its own tests are in `registry_*`.
use crate::support::*;
use microsnap::distribution::{self, PullOptions, PullReport, PushOptions, PushReport};
use microsnap::error::ErrorCode;
use microsnap::progress::{CancelToken, Monitor};
use microsnap::snapshot::{self, CreateOptions};
use std::fs;
use std::path::{Path, PathBuf};

pub(crate) const LEAF: u64 = 64 * 1024;

fn push(t: &TestHome, name: &str, reference: &str, options: &PushOptions) -> PushReport {
    distribution::push(&t.home, name, reference, options, &Monitor::none())
        .unwrap_or_else(|e| panic!("push {name} {reference}: {e}"))
}

fn pull(
    t: &TestHome,
    reference: &str,
    options: &PullOptions,
) -> (snapshot::SnapshotHandle, PullReport) {
    distribution::pull(&t.home, reference, None, options, &Monitor::none())
        .unwrap_or_else(|e| panic!("pull {reference}: {e}"))
}

/// The error of a pull that must fail.
fn pull_error(t: &TestHome, reference: &str, options: &PullOptions) -> microsnap::error::Error {
    distribution::pull(&t.home, reference, None, options, &Monitor::none())
        .expect_err("the pull must fail")
}

fn named_pull(name: &str) -> PullOptions {
    PullOptions {
        name: Some(name.into()),
        ..PullOptions::default()
    }
}

/// Replace the manifest `layout`'s index.json names by `change` of it,
/// stored under its own new digest (so only what `change` did is wrong).
fn restore_manifest(layout: &Path, change: impl FnOnce(&mut serde_json::Value)) {
    let index_path = layout.join("index.json");
    let mut index = support::image::read_json(&index_path);
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = support::image::read_json(&support::image::blob_file(layout, &digest));
    change(&mut manifest);
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let new_digest = support::image::sha256_of(&bytes);
    fs::write(support::image::blob_file(layout, &new_digest), &bytes).unwrap();
    for entry in index["manifests"].as_array_mut().unwrap() {
        entry["digest"] = new_digest.clone().into();
        entry["size"] = bytes.len().into();
    }
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

/// A snapshot `name` of a sandbox whose upper (64 MiB, or more for many
/// chunks) has `chunks` distinct
/// 64 KiB chunks of data spread over it (every 7th chunk), with integrity.
pub(crate) fn scattered_snapshot(
    t: &TestHome,
    name: &str,
    chunks: u64,
    seed: u64,
) -> microsnap::artifact::Artifact {
    let sb = t.sandbox(
        &format!("sb-{name}"),
        (64 * MIB).max((chunks * 7 + 1) * LEAF),
    );
    for i in 0..chunks {
        write_at(
            &sb.upper_path,
            i * 7 * LEAF,
            &pseudo_random(LEAF as usize, seed + i),
        );
    }
    snapshot_with_integrity(t, &sb.name, name)
}

/// A child of `parent`: a sandbox made from it, `changes` chunks rewritten
/// (each with a 4 KiB write), then snapshotted.
pub(crate) fn child_of(
    t: &TestHome,
    parent: &str,
    name: &str,
    changes: &[u64],
) -> microsnap::artifact::Artifact {
    let sb = t
        .sandbox_from(&format!("sb-{name}"), parent)
        .expect("sandbox from parent");
    // Seeds differ per snapshot and chunk: equal content would dedup.
    let seed = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    for chunk in changes {
        let data = pseudo_random(4096, seed ^ (chunk << 32));
        write_at(&sb.upper_path, chunk * LEAF + 4096, &data);
    }
    snapshot_with_integrity(t, &sb.name, name)
}

/// Snapshot `sandbox` as `name` with merkle integrity (so with a leaf list).
fn snapshot_with_integrity(
    t: &TestHome,
    sandbox: &str,
    name: &str,
) -> microsnap::artifact::Artifact {
    snapshot::create(
        &t.home,
        sandbox,
        &CreateOptions {
            name: Some(name.into()),
            record_integrity: true,
            ..CreateOptions::default()
        },
        &Monitor::none(),
    )
    .expect("create snapshot")
}

/// Where `t` keeps the leaf list of snapshot `digest`.
fn leaf_list_of(t: &TestHome, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    t.home.root().join("cache/leaves").join(hex)
}

pub(crate) fn upper_bytes(path: &Path) -> Vec<u8> {
    let art = microsnap::artifact::open_dir(path).expect("open");
    fs::read(art.upper_path()).expect("read upper")
}

fn blobs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir.join("blobs/sha256"))
        .expect("blobs dir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 64)
        .collect();
    names.sort();
    names
}

fn manifest_of(dir: &Path, tag: &str) -> serde_json::Value {
    let index = support::image::read_json(&dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {index}"));
    let digest = entry["digest"].as_str().unwrap();
    support::image::read_json(&support::image::blob_file(dir, digest))
}

use crate::support;

#[test]
fn a_snapshot_pushed_to_a_layout_pulls_back_identical_into_another_home() {
    let a = TestHome::new();
    let art = scattered_snapshot(&a, "base", 40, 1);
    let layout = a.outside("layout");
    let pushed = push(&a, "base", &oci(&layout, "v1"), &PushOptions::default());
    assert_eq!(pushed.snapshot_digest, art.digest);
    assert_eq!(pushed.chunks_total, 40);
    assert_eq!(pushed.chunks_uploaded, 40);
    assert_eq!(pushed.chunks_reused, 0);
    assert!(pushed.bytes_uploaded > 40 * LEAF / 2, "{pushed:?}");

    let manifest = manifest_of(&layout, "v1");
    assert_eq!(manifest["config"]["digest"], art.digest.as_str());
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.microsnap.snapshot.v1"
    );
    assert_eq!(
        manifest["annotations"]["dev.microsnap.snapshot.digest"],
        art.digest.as_str()
    );
    let config = fs::read(support::image::blob_file(&layout, &art.digest)).unwrap();
    assert_eq!(config, fs::read(art.path.join("manifest.json")).unwrap());

    let b = TestHome::new();
    let (handle, report) = pull(&b, &oci(&layout, "v1"), &PullOptions::default());
    assert_eq!(handle.digest, art.digest);
    assert_eq!(handle.name.as_deref(), Some("v1"));
    assert_eq!(report.chunks_total, 40);
    assert_eq!(report.chunks_downloaded, 40);
    assert_eq!(report.bytes_copied_locally, 0);
    assert!(!report.already_present);
    assert_eq!(upper_bytes(&handle.path), upper_bytes(&art.path));
    snapshot::verify(&b.home, "v1", &Monitor::none()).expect("pulled snapshot verifies");
    let source = microsnap::sparse::allocated_bytes(&art.upper_path()).unwrap();
    let pulled_upper = microsnap::artifact::open_dir(&handle.path)
        .unwrap()
        .upper_path();
    let pulled = microsnap::sparse::allocated_bytes(&pulled_upper).unwrap();
    assert!(
        pulled <= source + source / 20,
        "pulled upper allocates {pulled}, source {source}"
    );

    // Pulling it again is a no-op that says so.
    let (_, again) = pull(&b, &oci(&layout, "v1"), &PullOptions::default());
    assert!(again.already_present, "{again:?}");
    assert_eq!(again.chunks_downloaded, 0);
}

#[test]
fn the_same_snapshot_gives_the_same_blobs_and_manifest_everywhere() {
    let t = TestHome::new();
    scattered_snapshot(&t, "base", 12, 2);
    let one = t.outside("one");
    let two = t.outside("two");
    let a = push(&t, "base", &oci(&one, "x"), &PushOptions::default());
    let b = push(&t, "base", &oci(&two, "x"), &PushOptions::default());
    assert_eq!(a.manifest_digest, b.manifest_digest);
    assert_eq!(blobs(&one), blobs(&two));
    // A second push into the same layout sends nothing but finds it all.
    let again = push(&t, "base", &oci(&one, "y"), &PushOptions::default());
    assert_eq!(again.manifest_digest, a.manifest_digest);
    assert_eq!(again.chunks_uploaded, 0);
    assert_eq!(again.chunks_reused, 12);
}

#[test]
fn a_child_pushes_and_pulls_only_the_chunks_its_parent_lacks() {
    let t = TestHome::new();
    scattered_snapshot(&t, "parent", 60, 3);
    // Change 5 of the parent's chunks and add data in 3 fresh ones.
    let changes = [0u64, 7, 14, 70, 140, 2, 3, 4];
    child_of(&t, "parent", "child", &changes);
    let layout = t.outside("layout");
    push(
        &t,
        "parent",
        &oci(&layout, "parent"),
        &PushOptions::default(),
    );
    let before = blobs(&layout);
    let child = push(&t, "child", &oci(&layout, "child"), &PushOptions::default());
    assert_eq!(child.chunks_uploaded, changes.len() as u64, "{child:?}");
    assert_eq!(child.chunks_total, 63, "{child:?}");
    assert_eq!(child.chunks_reused, 55, "{child:?}");
    // New blobs: one pack, the index, the config, the manifest.
    let new: Vec<_> = blobs(&layout)
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect();
    assert_eq!(new.len(), 4, "{new:?}");
    assert!(child.bytes_uploaded < 8 * LEAF + 64 * 1024, "{child:?}");

    // The child's manifest lists the parent's pack too.
    let parent_manifest = manifest_of(&layout, "parent");
    let child_manifest = manifest_of(&layout, "child");
    let parent_pack = &parent_manifest["layers"][1]["digest"];
    assert!(
        child_manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| &l["digest"] == parent_pack),
        "{child_manifest}"
    );

    // Onto a host that has the parent: only the new chunks travel.
    let host = TestHome::new();
    pull(&host, &oci(&layout, "parent"), &PullOptions::default());
    let (handle, report) = pull(&host, &oci(&layout, "child"), &PullOptions::default());
    assert_eq!(report.chunks_downloaded, changes.len() as u64, "{report:?}");
    assert_eq!(report.chunks_reused, 55, "{report:?}");
    assert_eq!(report.bytes_copied_locally, 55 * LEAF, "{report:?}");
    assert_eq!(
        upper_bytes(&handle.path),
        upper_bytes(&t.home.snapshots_dir().join("child"))
    );
    snapshot::verify(&host.home, "child", &Monitor::none()).expect("child verifies");
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// A host with many snapshots: pull keeps open only the ones it copies
/// chunks from (and finds its chunks all the same), not every snapshot
/// with a leaf list.
#[test]
fn a_pull_holds_open_only_the_local_snapshots_it_copies_from() {
    let t = TestHome::new();
    scattered_snapshot(&t, "parent", 20, 5);
    child_of(&t, "parent", "child", &[0, 7]);
    let layout = t.outside("layout");
    push(&t, "child", &oci(&layout, "child"), &PushOptions::default());
    snapshot::remove(&t.home, "child", true).expect("remove child");
    for i in 0..40 {
        scattered_snapshot(&t, &format!("other-{i}"), 1, 1000 + i);
    }
    let baseline = open_fds();
    let peak = std::sync::atomic::AtomicUsize::new(0);
    let monitor = Monitor::new(
        None,
        Some(Box::new(|_: &str, _: u64, _: u64| {
            peak.fetch_max(open_fds(), std::sync::atomic::Ordering::Relaxed);
            true
        })),
    );
    let (_, report) = distribution::pull(
        &t.home,
        &oci(&layout, "child"),
        None,
        &PullOptions::default(),
        &monitor,
    )
    .expect("pull the child");
    drop(monitor);
    assert_eq!(report.chunks_downloaded, 2, "{report:?}");
    assert_eq!(report.chunks_reused, 18, "{report:?}");
    let peak = peak.into_inner();
    assert!(peak > baseline, "no progress was reported during the pull");
    // 41 snapshots have leaf lists; one holds chunks the child needs.
    assert!(
        peak <= baseline + 16,
        "{} descriptors open during the pull, {baseline} before",
        peak
    );
}

/// A leaf list describes a digest: it goes when the last indexed copy of
/// that digest is removed, and not before.
#[test]
fn removing_the_last_copy_of_a_snapshot_deletes_its_leaf_list() {
    let t = TestHome::new();
    let art = scattered_snapshot(&t, "s", 3, 70);
    let list = leaf_list_of(&t, &art.digest);
    assert!(
        list.exists(),
        "create with merkle integrity records the list"
    );
    // A second copy of the same digest, indexed at another path.
    let copies = t.outside("copies");
    fs::create_dir_all(&copies).unwrap();
    let copy = copies.join("s");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&art.path)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    assert_eq!(snapshot::reindex(&t.home, Some(&copies)).unwrap(), 1);
    snapshot::remove(&t.home, "s", false).expect("remove the first copy");
    assert!(list.exists(), "another copy of the digest is still indexed");
    snapshot::remove(&t.home, &copy.display().to_string(), false).expect("remove the copy");
    assert!(!list.exists(), "the last copy's leaf list stayed behind");
}

#[test]
fn with_parents_pushes_the_chain_and_pulls_it_back_with_its_lineage() {
    let t = TestHome::new();
    let root = scattered_snapshot(&t, "root", 10, 4);
    let mid = child_of(&t, "root", "mid", &[1, 2]);
    let head = child_of(&t, "mid", "head", &[3]);
    let layout = t.outside("layout");
    let report = push(
        &t,
        "head",
        &oci(&layout, "head"),
        &PushOptions {
            with_parents: true,
            ..PushOptions::default()
        },
    );
    let pushed: Vec<_> = report
        .snapshots
        .iter()
        .map(|s| s.snapshot_digest.clone())
        .collect();
    assert_eq!(
        pushed,
        vec![root.digest.clone(), mid.digest.clone(), head.digest.clone()]
    );
    assert_eq!(report.chunks_uploaded, 10 + 2 + 1, "{report:?}");
    for s in &report.snapshots {
        assert!(
            s.tags.contains(&s.snapshot_digest.replacen(':', "-", 1)),
            "{s:?}"
        );
    }

    let other = TestHome::new();
    let (handle, pulled) = pull(
        &other,
        &oci(&layout, "head"),
        &PullOptions {
            with_parents: true,
            ..PullOptions::default()
        },
    );
    assert_eq!(handle.digest, head.digest);
    assert_eq!(handle.parent_digest.as_deref(), Some(mid.digest.as_str()));
    assert_eq!(pulled.chunks_downloaded, 13, "{pulled:?}");
    let digests: Vec<_> = snapshot::list(&other.home)
        .unwrap()
        .into_iter()
        .map(|h| h.digest)
        .collect();
    for d in [&root.digest, &mid.digest, &head.digest] {
        assert!(digests.contains(d), "{d} not pulled: {digests:?}");
    }
    let mid_handle = snapshot::get(&other.home, &mid.digest).unwrap();
    assert_eq!(mid_handle.child_count, 1);
}

#[test]
fn since_writes_only_what_the_parent_lacks_and_pull_names_a_missing_parent() {
    let t = TestHome::new();
    scattered_snapshot(&t, "parent", 30, 5);
    let child = child_of(&t, "parent", "child", &[0, 1]);
    let file = t.outside("child.tar");
    let report = push(
        &t,
        "child",
        &format!("oci-archive:{}:child", file.display()),
        &PushOptions {
            since: Some("parent".into()),
            ..PushOptions::default()
        },
    );
    assert_eq!(report.chunks_uploaded, 2, "{report:?}");
    let full = t.outside("full.tar");
    push(
        &t,
        "child",
        &format!("oci-archive:{}:child", full.display()),
        &PushOptions::default(),
    );
    let small = fs::metadata(&file).unwrap().len();
    let whole = fs::metadata(&full).unwrap().len();
    assert!(
        small * 4 < whole,
        "since archive {small} bytes, full {whole}"
    );

    // Without the parent: a clear error naming it, and nothing left.
    let bare = TestHome::new();
    let before = bare.state(&[]);
    let err = distribution::pull(
        &bare.home,
        &format!("oci-archive:{}:child", file.display()),
        None,
        &PullOptions::default(),
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SnapshotNotFound, "{err}");
    let parent_digest = child.descriptor.parent().unwrap().to_string();
    assert!(err.to_string().contains(&parent_digest), "{err}");
    assert_eq!(bare.state(&[]), before);

    // With the parent (pulled from the full archive's chain): it works.
    let layout = t.outside("layout");
    push(&t, "parent", &oci(&layout, "p"), &PushOptions::default());
    pull(&bare, &oci(&layout, "p"), &PullOptions::default());
    let (handle, pulled) = pull(
        &bare,
        &format!("oci-archive:{}:child", file.display()),
        &PullOptions::default(),
    );
    assert_eq!(handle.digest, child.digest);
    assert_eq!(pulled.chunks_downloaded, 2, "{pulled:?}");
}

/// Tamper with a blob of `layout` and check pull refuses with `code`,
/// leaving the home as it was.
fn pull_refuses(layout: &Path, tamper: impl FnOnce(&Path), code: ErrorCode) -> String {
    let t = TestHome::new();
    tamper(layout);
    let before = t.state(&[]);
    let err = distribution::pull(
        &t.home,
        &oci(layout, "v"),
        None,
        &PullOptions::default(),
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), code, "{err}");
    assert_eq!(t.state(&[]), before, "a failed pull changed the home");
    err.to_string()
}

fn pushed_layout(t: &TestHome, name: &str) -> PathBuf {
    let layout = t.outside(name);
    push(t, "base", &oci(&layout, "v"), &PushOptions::default());
    layout
}

fn layer_blob(layout: &Path, layer: usize) -> PathBuf {
    let manifest = manifest_of(layout, "v");
    support::image::blob_file(
        layout,
        manifest["layers"][layer]["digest"].as_str().unwrap(),
    )
}

#[test]
fn corrupted_truncated_or_substituted_blobs_end_in_clear_errors_with_nothing_left() {
    let t = TestHome::new();
    scattered_snapshot(&t, "base", 20, 6);

    let layout = pushed_layout(&t, "flip");
    pull_refuses(
        &layout,
        |l| flip_byte(&layer_blob(l, 1), 100),
        ErrorCode::IntegrityMismatch,
    );

    let layout = pushed_layout(&t, "truncate");
    pull_refuses(
        &layout,
        |l| {
            let pack = layer_blob(l, 1);
            let len = fs::metadata(&pack).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(&pack)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        },
        ErrorCode::IntegrityMismatch,
    );

    let layout = pushed_layout(&t, "index");
    pull_refuses(
        &layout,
        |l| flip_byte(&layer_blob(l, 0), 10),
        ErrorCode::IntegrityMismatch,
    );

    let layout = pushed_layout(&t, "config");
    pull_refuses(
        &layout,
        |l| {
            let manifest = manifest_of(l, "v");
            let config =
                support::image::blob_file(l, manifest["config"]["digest"].as_str().unwrap());
            let text = fs::read_to_string(&config)
                .unwrap()
                .replace("alpine", "alpina");
            fs::write(&config, text).unwrap();
        },
        ErrorCode::IntegrityMismatch,
    );

    // A pack substituted by another valid pack of the same size.
    let layout = pushed_layout(&t, "swap");
    pull_refuses(
        &layout,
        |l| {
            let pack = layer_blob(l, 1);
            let len = fs::metadata(&pack).unwrap().len();
            fs::write(&pack, pseudo_random(len as usize, 77)).unwrap();
        },
        ErrorCode::IntegrityMismatch,
    );

    // A manifest whose own digest is right, but that is not a snapshot's:
    // re-stored under its new digest, with index.json pointing at it.
    let layout = pushed_layout(&t, "manifest");
    pull_refuses(
        &layout,
        |l| {
            restore_manifest(l, |m| {
                m["artifactType"] = "application/vnd.example".into();
            })
        },
        ErrorCode::InvalidArchive,
    );
}

#[test]
fn pull_names_after_the_tag_or_name_and_refuses_a_taken_name() {
    let t = TestHome::new();
    scattered_snapshot(&t, "base", 3, 7);
    scattered_snapshot(&t, "other", 3, 8);
    let layout = t.outside("layout");
    push(&t, "base", &oci(&layout, "base"), &PushOptions::default());
    push(&t, "other", &oci(&layout, "other"), &PushOptions::default());

    let b = TestHome::new();
    let (h, _) = pull(&b, &oci(&layout, "base"), &named_pull("renamed"));
    assert_eq!(h.name.as_deref(), Some("renamed"));
    let err = pull_error(&b, &oci(&layout, "other"), &named_pull("renamed"));
    assert_eq!(err.code(), ErrorCode::AlreadyExists, "{err}");
    let err = pull_error(&b, &oci(&layout, "base"), &named_pull("../escape"));
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    let err = pull_error(&b, &oci(&layout, "missing"), &PullOptions::default());
    assert_eq!(err.code(), ErrorCode::SnapshotNotFound, "{err}");
}

#[test]
fn a_cancelled_push_or_pull_stops_and_leaves_nothing() {
    let t = TestHome::new();
    scattered_snapshot(&t, "base", 30, 9);
    let layout = t.outside("layout");
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = distribution::push(
        &t.home,
        "base",
        &oci(&layout, "v"),
        &PushOptions::default(),
        &Monitor::with_cancel(cancel),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    assert!(
        !layout.join("index.json").exists()
            || support::image::read_json(&layout.join("index.json"))["manifests"]
                .as_array()
                .unwrap()
                .is_empty(),
        "a cancelled push published a manifest"
    );

    push(&t, "base", &oci(&layout, "v"), &PushOptions::default());
    let b = TestHome::new();
    let before = b.state(&[]);
    // Cancel from the progress callback once some chunks are written.
    let monitor = Monitor::new(
        None,
        Some(Box::new(|phase: &str, done: u64, _total: u64| {
            !(phase == "pull" && done > 0)
        })),
    );
    let err = distribution::pull(
        &b.home,
        &oci(&layout, "v"),
        None,
        &PullOptions::default(),
        &monitor,
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Cancelled, "{err}");
    assert_eq!(b.state(&[]), before);
}

#[test]
fn push_refuses_a_digest_reference_and_since_outside_an_archive() {
    let t = TestHome::new();
    scattered_snapshot(&t, "base", 1, 10);
    let digest_ref = format!("127.0.0.1:5000/x@sha256:{}", "a".repeat(64));
    let err = distribution::push(
        &t.home,
        "base",
        &digest_ref,
        &PushOptions::default(),
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    let err = distribution::push(
        &t.home,
        "base",
        &oci(&t.outside("l"), "v"),
        &PushOptions {
            since: Some("base".into()),
            ..PushOptions::default()
        },
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument, "{err}");
    let err = distribution::push(
        &t.home,
        "nope",
        &oci(&t.outside("l"), "v"),
        &PushOptions::default(),
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SnapshotNotFound, "{err}");
}

#[test]
fn a_v0614_snapshot_travels_with_its_snapshot_json_and_blake3_integrity() {
    let t = TestHome::new();
    let sb = t.sandbox("sb-new", 16 * MIB);
    for i in 0..5u64 {
        write_at(
            &sb.upper_path,
            i * 3 * LEAF,
            &pseudo_random(LEAF as usize, 50 + i),
        );
    }
    let art = snapshot::create(
        &t.home,
        &sb.name,
        &CreateOptions {
            name: Some("new".into()),
            record_integrity: true,
            format: microsnap::artifact::ArtifactFormat::MsbV0614,
            ..CreateOptions::default()
        },
        &Monitor::none(),
    )
    .expect("create v0.6.14 snapshot");
    let layout = t.outside("layout");
    push(&t, "new", &oci(&layout, "v"), &PushOptions::default());
    let manifest = manifest_of(&layout, "v");
    assert_eq!(
        manifest["annotations"]["dev.microsnap.artifact.format"],
        "msb-v0.6.14"
    );
    let other = TestHome::new();
    let (handle, _) = pull(&other, &oci(&layout, "v"), &PullOptions::default());
    assert_eq!(handle.digest, art.digest);
    assert_eq!(handle.artifact_format, "msb-v0.6.14");
    assert!(handle.path.join("snapshot.json").exists());
    assert_eq!(upper_bytes(&handle.path), upper_bytes(&art.path));
    snapshot::verify(&other.home, "v", &Monitor::none()).expect("blake3 verify");
}

#[test]
fn a_local_parent_without_a_leaf_list_still_saves_the_download() {
    let t = TestHome::new();
    scattered_snapshot(&t, "parent", 20, 11);
    child_of(&t, "parent", "child", &[0, 1]);
    let layout = t.outside("layout");
    push(
        &t,
        "parent",
        &oci(&layout, "parent"),
        &PushOptions::default(),
    );
    push(&t, "child", &oci(&layout, "child"), &PushOptions::default());

    let host = TestHome::new();
    pull(&host, &oci(&layout, "parent"), &PullOptions::default());
    // The parent got here some other way: no leaf list.
    fs::remove_dir_all(host.home.root().join("cache/leaves")).unwrap();
    let dest = host.outside("elsewhere");
    let (handle, report) = distribution::pull(
        &host.home,
        &oci(&layout, "child"),
        Some(&dest),
        &PullOptions::default(),
        &Monitor::none(),
    )
    .expect("pull child into an explicit directory");
    assert_eq!(handle.path, dest.join("child"));
    assert_eq!(report.chunks_downloaded, 2, "{report:?}");
    assert_eq!(report.chunks_reused, 19, "{report:?}");
    // The parent's list was recorded on the way.
    let parent = snapshot::get(&host.home, "parent").unwrap();
    assert!(leaf_list_of(&host, &parent.digest).exists());
}

/// The bytes the `push` phase announces: what the push reads.
fn push_reading(t: &TestHome, name: &str, reference: &str) -> (PushReport, u64) {
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = total.clone();
    let monitor = Monitor::new(
        None,
        Some(Box::new(move |phase: &str, _done: u64, all: u64| {
            if phase == "push" {
                seen.store(all, std::sync::atomic::Ordering::Relaxed);
            }
            true
        })),
    );
    let report = distribution::push(&t.home, name, reference, &PushOptions::default(), &monitor)
        .unwrap_or_else(|e| panic!("push {name}: {e}"));
    (report, total.load(std::sync::atomic::Ordering::Relaxed))
}

#[test]
fn a_child_with_a_leaf_list_reads_only_its_new_chunks_and_pushes_the_same_blobs() {
    let t = TestHome::new();
    scattered_snapshot(&t, "parent", 40, 31);
    let child = child_of(&t, "parent", "child", &[0, 7, 3]);
    let list = leaf_list_of(&t, &child.digest);
    assert!(
        list.exists(),
        "create with merkle integrity records the leaf list"
    );

    let listed = t.outside("listed");
    push(
        &t,
        "parent",
        &oci(&listed, "parent"),
        &PushOptions::default(),
    );
    let (report, read) = push_reading(&t, "child", &oci(&listed, "child"));
    assert_eq!(report.chunks_uploaded, 3, "{report:?}");
    assert_eq!(read, 3 * LEAF, "a listed child reads its 3 new chunks only");

    // Without the list the push hashes everything and writes the same blobs.
    fs::remove_file(&list).unwrap();
    let hashed = t.outside("hashed");
    push(
        &t,
        "parent",
        &oci(&hashed, "parent"),
        &PushOptions::default(),
    );
    let (again, read_all) = push_reading(&t, "child", &oci(&hashed, "child"));
    assert_eq!(read_all, 41 * LEAF);
    assert_eq!(again.manifest_digest, report.manifest_digest);
    assert_eq!(blobs(&listed), blobs(&hashed));
}

#[test]
fn a_new_chunk_that_no_longer_matches_the_leaf_list_is_refused() {
    let t = TestHome::new();
    scattered_snapshot(&t, "parent", 10, 32);
    let child = child_of(&t, "parent", "child", &[1]);
    let layout = t.outside("layout");
    push(
        &t,
        "parent",
        &oci(&layout, "parent"),
        &PushOptions::default(),
    );
    flip_byte(&child.upper_path(), LEAF + 5000);
    let err = distribution::push(
        &t.home,
        "child",
        &oci(&layout, "child"),
        &PushOptions::default(),
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IntegrityMismatch, "{err}");
    let index = support::image::read_json(&layout.join("index.json"));
    assert_eq!(
        index["manifests"].as_array().unwrap().len(),
        2,
        "only the parent's two tags"
    );
}

#[test]
fn a_short_last_chunk_equal_to_a_padded_full_one_pulls_back() {
    // Chunk 0 is D then zeros; the short last chunk is D: one leaf hash,
    // one frame, two lengths.
    let t = TestHome::new();
    let sb = t.sandbox("sb-short", 3 * LEAF + 4096);
    let d = pseudo_random(4096, 41);
    write_at(&sb.upper_path, 0, &d);
    write_at(&sb.upper_path, 3 * LEAF, &d);
    snapshot_with_integrity(&t, &sb.name, "short");
    let layout = t.outside("layout");
    let pushed = push(&t, "short", &oci(&layout, "v"), &PushOptions::default());
    assert_eq!(pushed.chunks_total, 2);
    let other = TestHome::new();
    let (handle, report) = pull(&other, &oci(&layout, "v"), &PullOptions::default());
    assert_eq!(report.chunks_downloaded, 2, "{report:?}");
    assert_eq!(
        upper_bytes(&handle.path),
        upper_bytes(&t.home.snapshots_dir().join("short"))
    );
}

#[test]
fn a_basis_whose_packs_are_absent_is_not_built_upon() {
    let t = TestHome::new();
    scattered_snapshot(&t, "parent", 10, 42);
    child_of(&t, "parent", "child", &[1]);
    child_of(&t, "child", "grandchild", &[2]);
    let file = t.outside("family.tar");
    let archive = |tag: &str| format!("oci-archive:{}:{tag}", file.display());
    push(
        &t,
        "child",
        &archive("child"),
        &PushOptions {
            since: Some("parent".into()),
            ..PushOptions::default()
        },
    );
    // The child's manifest is there but the parent's packs are not: the
    // grandchild goes whole, so its manifest names only blobs the file has.
    let report = push(&t, "grandchild", &archive("gc"), &PushOptions::default());
    assert_eq!(report.chunks_uploaded, 12, "{report:?}");
    let bare = TestHome::new();
    let (handle, _) = pull(&bare, &archive("gc"), &PullOptions::default());
    assert_eq!(
        upper_bytes(&handle.path),
        upper_bytes(&t.home.snapshots_dir().join("grandchild"))
    );
}

#[test]
fn a_manifest_whose_parent_annotation_is_not_the_descriptors_is_refused() {
    let t = TestHome::new();
    scattered_snapshot(&t, "base", 3, 43);
    let layout = t.outside("layout");
    push(&t, "base", &oci(&layout, "v"), &PushOptions::default());
    let fake_parent = format!("sha256:{}", "ab".repeat(32));
    pull_refuses(
        &layout,
        |l| {
            restore_manifest(l, |m| {
                m["annotations"]["dev.microsnap.snapshot.parent"] = fake_parent.clone().into();
            })
        },
        ErrorCode::InvalidArchive,
    );
}

#[test]
fn since_an_older_ancestor_names_it_and_finds_its_chunks_without_a_leaf_list() {
    let t = TestHome::new();
    let root = scattered_snapshot(&t, "root", 20, 44);
    child_of(&t, "root", "mid", &[1]);
    let head = child_of(&t, "mid", "head", &[2]);
    let file = t.outside("head.tar");
    let reference = format!("oci-archive:{}:head", file.display());
    let report = push(
        &t,
        "head",
        &reference,
        &PushOptions {
            since: Some("root".into()),
            ..PushOptions::default()
        },
    );
    assert_eq!(
        report.chunks_uploaded, 2,
        "mid's and head's chunks: {report:?}"
    );

    // Without root: the error names root, the snapshot the archive relies on.
    let host = TestHome::new();
    let err = pull_error(&host, &reference, &PullOptions::default());
    assert_eq!(err.code(), ErrorCode::SnapshotNotFound, "{err}");
    assert!(err.to_string().contains(&root.digest), "{err}");

    // With root, but no leaf list for it: root is hashed on the spot.
    let layout = t.outside("layout");
    push(&t, "root", &oci(&layout, "root"), &PushOptions::default());
    pull(&host, &oci(&layout, "root"), &PullOptions::default());
    fs::remove_dir_all(host.home.root().join("cache/leaves")).unwrap();
    let (handle, pulled) = pull(&host, &reference, &PullOptions::default());
    assert_eq!(handle.digest, head.digest);
    assert_eq!(pulled.chunks_downloaded, 2, "{pulled:?}");
    assert_eq!(pulled.chunks_reused, 20, "{pulled:?}");
}

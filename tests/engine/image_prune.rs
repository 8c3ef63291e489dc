//! `image::prune`: what it keeps (tagged, pinned by a sandbox, pinned by an
//! indexed or not-yet-indexed snapshot), what it removes (unreferenced
//! blobs, unnamed entries nothing pins, leftover temp files), that a dry run
//! changes nothing, that it refuses when a snapshot's pin cannot be read,
//! that it waits for an `ImageUseGuard`, and that skopeo and umoci still read
//! the layout afterwards.
use crate::support::image::{
    blob_file, make_image, on_path, python_available, read_json, sha256_of,
};
use crate::support::{expect_code, named, TestHome, IMAGE_REF};
use microsnap::error::ErrorCode;
use microsnap::image::{self, ImagePruneOptions, ImageUseGuard};
use microsnap::progress::{CancelToken, Monitor};
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Add an image with its own layer (a rootfs holding `marker`) under `reference`.
fn add_image(home: &TestHome, reference: &str, marker: &str) -> String {
    let rootfs = home.outside(&format!("rootfs-{marker}"));
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/marker"), marker).unwrap();
    make_image(
        &home.home.images_dir(),
        reference,
        &["--rootfs", rootfs.to_str().unwrap()],
    )
}

/// The manifest digest, then its config and layer digests.
fn blobs_of(layout: &Path, manifest: &str) -> BTreeSet<String> {
    let m = read_json(&blob_file(layout, manifest));
    let mut out = BTreeSet::from([manifest.to_string()]);
    out.insert(m["config"]["digest"].as_str().unwrap().to_string());
    for l in m["layers"].as_array().unwrap() {
        out.insert(l["digest"].as_str().unwrap().to_string());
    }
    out
}

fn all_blobs(layout: &Path) -> BTreeSet<String> {
    fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect()
}

/// Rewrite index.json: drop the entry named `reference`, or make it unnamed.
fn untag(layout: &Path, reference: &str, keep_unnamed: bool) {
    let path = layout.join("index.json");
    let mut index = read_json(&path);
    let entries = index["manifests"].as_array_mut().unwrap();
    let i = entries
        .iter()
        .position(|e| e["annotations"][REF_NAME] == reference)
        .unwrap();
    if keep_unnamed {
        entries[i].as_object_mut().unwrap().remove("annotations");
    } else {
        entries.remove(i);
    }
    fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

fn set_mtime(path: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// A blob nothing names: valid digest, written an hour ago.
fn stray_blob(layout: &Path, content: &[u8]) -> String {
    let digest = sha256_of(content);
    let path = blob_file(layout, &digest);
    fs::write(&path, content).unwrap();
    set_mtime(&path, SystemTime::now() - Duration::from_secs(3600));
    digest
}

/// Every file of the layout with its bytes, to prove nothing changed.
fn layout_state(layout: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in [layout.to_path_buf(), layout.join("blobs/sha256")] {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

struct Scene {
    home: TestHome,
    /// Tagged `alpine:3.20`; pinned by nothing else.
    tagged: String,
    /// Untagged; a sandbox pins it.
    by_sandbox: String,
    /// Untagged; only an indexed snapshot pins it (its sandbox is gone).
    by_snapshot: String,
    /// Untagged; only a snapshot directory the index does not know pins it.
    by_unindexed: String,
    /// Left as an unnamed index.json entry nothing pins.
    unnamed: String,
    /// Dropped from index.json; nothing pins it.
    dropped: String,
    stray: String,
}

impl Scene {
    /// The blobs a correct prune removes, and the ones it must keep.
    fn expected(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let layout = self.home.home.images_dir();
        let mut gone = blobs_of(&layout, &self.unnamed);
        gone.extend(blobs_of(&layout, &self.dropped));
        gone.insert(self.stray.clone());
        let mut kept = BTreeSet::new();
        for d in [
            &self.tagged,
            &self.by_sandbox,
            &self.by_snapshot,
            &self.by_unindexed,
        ] {
            kept.extend(blobs_of(&layout, d));
        }
        (gone, kept)
    }
}

fn scene() -> Scene {
    let home = TestHome::new();
    let h = &home.home;
    let layout = h.images_dir();
    let by_sandbox = add_image(&home, "pinned-by-sandbox:1", "sandbox");
    let by_snapshot = add_image(&home, "pinned-by-snapshot:1", "snapshot");
    let by_unindexed = add_image(&home, "pinned-unindexed:1", "unindexed");
    let unnamed = add_image(&home, "unnamed:1", "unnamed");
    let dropped = add_image(&home, "dropped:1", "dropped");
    let create = |name: &str, image: &str| {
        sandbox::create(
            h,
            name,
            &SandboxSource::Image {
                image: image.to_string(),
                size_bytes: Some(1 << 20),
                fstype: None,
            },
            &Monitor::none(),
        )
        .unwrap()
    };
    create("keeps", "pinned-by-sandbox:1");
    create("snap-src", "pinned-by-snapshot:1");
    snapshot::create(h, "snap-src", &named("snap"), &Monitor::none()).unwrap();
    sandbox::remove(h, "snap-src").unwrap();
    create("unindexed-src", "pinned-unindexed:1");
    snapshot::create(h, "unindexed-src", &named("indexed"), &Monitor::none()).unwrap();
    sandbox::remove(h, "unindexed-src").unwrap();
    // A copy the index does not know, then the indexed original goes.
    let copy = h.snapshots_dir().join("copied-in");
    fs::create_dir(&copy).unwrap();
    for e in fs::read_dir(h.snapshots_dir().join("indexed")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    snapshot::remove(h, "indexed", false).unwrap();
    for r in [
        "pinned-by-sandbox:1",
        "pinned-by-snapshot:1",
        "pinned-unindexed:1",
        "dropped:1",
    ] {
        untag(&layout, r, false);
    }
    untag(&layout, "unnamed:1", true);
    let stray = stray_blob(&layout, b"nothing names this blob");
    Scene {
        tagged: home.image_digest.clone(),
        home,
        by_sandbox,
        by_snapshot,
        by_unindexed,
        unnamed,
        dropped,
        stray,
    }
}

fn prune(s: &Scene, dry_run: bool) -> image::ImagePruneReport {
    image::prune(
        &s.home.home,
        &ImagePruneOptions { dry_run },
        &Monitor::none(),
    )
    .unwrap()
}

#[test]
fn prune_keeps_what_tags_sandboxes_and_snapshots_need_and_removes_the_rest() {
    if !python_available("prune_keeps_what_tags_sandboxes_and_snapshots_need_and_removes_the_rest")
    {
        return;
    }
    let s = scene();
    let layout = s.home.home.images_dir();
    let (expected_gone, expected_kept) = s.expected();
    // The generator's images share nothing but what their rootfs shares; a
    // blob both kept and removed would make the test meaningless.
    assert!(expected_gone.is_disjoint(&expected_kept));
    let before = all_blobs(&layout);
    assert_eq!(before, &expected_gone | &expected_kept);
    let allocated_gone: u64 = expected_gone
        .iter()
        .map(|d| fs::metadata(blob_file(&layout, d)).unwrap().blocks() * 512)
        .sum();

    let state = layout_state(&layout);
    let dry = prune(&s, true);
    assert_eq!(layout_state(&layout), state, "a dry run changes nothing");
    assert!(dry.dry_run);

    let report = prune(&s, false);
    assert!(!report.dry_run);
    for r in [&dry, &report] {
        let removed: BTreeSet<String> = r.removed.iter().map(|b| b.digest.clone()).collect();
        assert_eq!(removed, expected_gone);
        assert_eq!(r.untagged_removed, vec![s.unnamed.clone()]);
        assert_eq!(r.blobs_kept, expected_kept.len() as u64);
        assert_eq!(r.bytes_freed, allocated_gone);
        assert_eq!(r.blobs_kept_young, 0);
    }
    assert_eq!(all_blobs(&layout), expected_kept);
    let index = read_json(&layout.join("index.json"));
    let digests: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(
        digests,
        [s.tagged.as_str()],
        "the unnamed entry is gone, the tag stays"
    );

    // Everything still resolves and runs: the tag, the sandbox, and both
    // snapshots can still make sandboxes.
    image::resolve(&layout, IMAGE_REF).unwrap();
    for d in [&s.by_sandbox, &s.by_snapshot, &s.by_unindexed] {
        image::blobs_of(&layout, d).unwrap();
    }
    s.home.sandbox_from("from-snap", "snap").unwrap();
    s.home.sandbox_from("from-copy", "copied-in").unwrap();

    let again = prune(&s, false);
    assert!(again.removed.is_empty() && again.untagged_removed.is_empty());
    assert_eq!(again.bytes_freed, 0);
}

#[test]
fn prune_removes_stale_temp_files_but_not_young_blobs() {
    if !python_available("prune_removes_stale_temp_files_but_not_young_blobs") {
        return;
    }
    let home = TestHome::new();
    let layout = home.home.images_dir();
    let old = SystemTime::now() - Duration::from_secs(3600);
    let stale_blob_temp = layout.join("blobs/sha256/.abc.tmp-1-0");
    let stale_index_temp = layout.join(".index.json.tmp-1-1");
    for p in [&stale_blob_temp, &stale_index_temp] {
        fs::write(p, b"half written").unwrap();
        set_mtime(p, old);
    }
    let fresh_temp = layout.join("blobs/sha256/.def.tmp-2-0");
    fs::write(&fresh_temp, b"being written").unwrap();
    set_mtime(&fresh_temp, SystemTime::now() + Duration::from_secs(600));
    let young = sha256_of(b"a writer that takes no lock is adding this");
    let young_path = blob_file(&layout, &young);
    fs::write(&young_path, b"a writer that takes no lock is adding this").unwrap();
    set_mtime(&young_path, SystemTime::now() + Duration::from_secs(600));

    let report = image::prune(&home.home, &ImagePruneOptions::default(), &Monitor::none()).unwrap();
    assert_eq!(report.temp_files_removed, 2);
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(report.blobs_kept_young, 1);
    assert!(!stale_blob_temp.exists() && !stale_index_temp.exists());
    assert!(fresh_temp.exists() && young_path.exists());
    image::resolve(&layout, IMAGE_REF).unwrap();
}

#[test]
fn prune_refuses_when_a_snapshot_pin_cannot_be_read() {
    if !python_available("prune_refuses_when_a_snapshot_pin_cannot_be_read") {
        return;
    }
    let home = TestHome::new();
    let layout = home.home.images_dir();
    let stray = stray_blob(&layout, b"would be removed");
    let broken = home.home.snapshots_dir().join("broken");
    fs::create_dir(&broken).unwrap();
    fs::write(broken.join("manifest.json"), b"{ not json").unwrap();
    let state = layout_state(&layout);
    let msg = expect_code(
        image::prune(&home.home, &ImagePruneOptions::default(), &Monitor::none()),
        ErrorCode::InvalidManifest,
    );
    assert!(msg.contains("broken"), "{msg}");
    assert_eq!(layout_state(&layout), state);
    fs::remove_dir_all(&broken).unwrap();
    let report = image::prune(&home.home, &ImagePruneOptions::default(), &Monitor::none()).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].digest, stray);
}

#[test]
fn prune_waits_for_an_image_use_guard_and_can_be_cancelled_meanwhile() {
    if !python_available("prune_waits_for_an_image_use_guard_and_can_be_cancelled_meanwhile") {
        return;
    }
    let home = TestHome::new();
    let layout = home.home.images_dir();
    let stray = stray_blob(&layout, b"an import is about to name this");
    let guard = ImageUseGuard::acquire(&layout).unwrap();
    let cancel = CancelToken::new();
    let h = home.home.clone();
    let c = cancel.clone();
    let waiting = std::thread::spawn(move || {
        image::prune(&h, &ImagePruneOptions::default(), &Monitor::with_cancel(c))
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !waiting.is_finished(),
        "prune must wait while the guard is held"
    );
    cancel.cancel();
    expect_code(waiting.join().unwrap(), ErrorCode::Cancelled);
    assert!(blob_file(&layout, &stray).exists());
    drop(guard);
    let report = image::prune(&home.home, &ImagePruneOptions::default(), &Monitor::none()).unwrap();
    assert_eq!(report.removed.len(), 1);
}

/// After a prune, skopeo and umoci still read the layout (both are
/// installed by .ci/run; each part skips when its tool is missing).
#[test]
fn layout_stays_valid_for_skopeo_and_umoci_after_prune() {
    let test = "layout_stays_valid_for_skopeo_and_umoci_after_prune";
    if !python_available(test) {
        return;
    }
    let s = scene();
    let layout = s.home.home.images_dir();
    let report = prune(&s, false);
    assert!(!report.removed.is_empty());
    let oci = format!("oci:{}:{IMAGE_REF}", layout.display());
    if on_path("skopeo") {
        let out = Command::new("skopeo")
            .args(["inspect", &oci])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["Digest"], s.tagged.as_str());
        let dest = s.home.outside("copied");
        let out = Command::new("skopeo")
            .args(["copy", &oci, &format!("dir:{}", dest.display())])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(dest.join("manifest.json").is_file());
    } else {
        println!("SKIP {test} (skopeo part): skopeo is not installed");
    }
    if on_path("umoci") {
        let out = Command::new("umoci")
            .args(["ls", "--layout", layout.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), IMAGE_REF);
        let out = Command::new("umoci")
            .args([
                "stat",
                "--image",
                &format!("{}:{IMAGE_REF}", layout.display()),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        println!("SKIP {test} (umoci part): umoci is not installed");
    }
}

const HOME_ENV: &str = "MICROSNAP_TEST_PRUNE_HOME";

/// Helper process: prune the home named by `MICROSNAP_TEST_PRUNE_HOME`
/// (with whatever `MICROSNAP_FAULT` the parent set, which kills it).
#[test]
#[ignore = "helper process for prune_killed_midway_leaves_a_valid_layout"]
fn helper_prune() {
    let Some(root) = std::env::var_os(HOME_ENV) else {
        return;
    };
    let home = microsnap::home::Home::open(Path::new(&root)).unwrap();
    println!("pruning");
    image::prune(&home, &ImagePruneOptions::default(), &Monitor::none()).unwrap();
    println!("pruned");
}

/// SIGKILLed after index.json was rewritten, or between two unlinks: the
/// layout names only blobs that exist, everything needed is there, skopeo
/// still reads it, and the next prune finishes the job.
#[test]
fn prune_killed_midway_leaves_a_valid_layout() {
    if !python_available("prune_killed_midway_leaves_a_valid_layout") {
        return;
    }
    for fault in ["image.prune.after_index:1", "image.prune.remove:3"] {
        let s = scene();
        let layout = s.home.home.images_dir();
        let (gone, needed) = s.expected();
        let root = s.home.home.root().to_string_lossy().into_owned();
        let mut helper = crate::support::spawn_helper(
            "image_prune::helper_prune",
            &[(HOME_ENV, root.as_str()), ("MICROSNAP_FAULT", fault)],
        );
        helper.wait_for("pruning");
        let status = helper.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{fault}: {status:?}");

        let left = all_blobs(&layout);
        assert!(
            needed.is_subset(&left),
            "{fault}: a needed blob was removed"
        );
        let removed = gone.difference(&left).count();
        match fault {
            f if f.starts_with("image.prune.after_index") => assert_eq!(removed, 0, "{fault}"),
            _ => assert_eq!(removed, 2, "{fault}: two unlinks before the kill"),
        }
        // index.json names only complete images, and the unnamed one is gone.
        let index = read_json(&layout.join("index.json"));
        let names: Vec<&str> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["digest"].as_str().unwrap())
            .collect();
        assert_eq!(names, [s.tagged.as_str()], "{fault}");
        assert_eq!(image::list(&layout).unwrap().len(), 1, "{fault}");
        if on_path("skopeo") {
            let oci = format!("oci:{}:{IMAGE_REF}", layout.display());
            let out = Command::new("skopeo")
                .args(["inspect", &oci])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{fault}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let report = prune(&s, false);
        assert_eq!(report.removed.len(), gone.len() - removed, "{fault}");
        assert_eq!(all_blobs(&layout), needed, "{fault}");
    }
}

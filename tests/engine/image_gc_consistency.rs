//! Image prune against layouts and writers that used to leave `index.json`
//! naming missing blobs, or make prune refuse: an entry whose ref name is
//! not a string, `add_ref` racing a prune, a re-added blob that looked old,
//! a corrupt Docker layer; and a dry run on a layout without `blobs/`.
use crate::support::empty_home;
use crate::support::image::{blob_file, read_json, sha256_of};
use microsnap::image::{self, Descriptor, ImagePruneOptions};
use microsnap::progress::Monitor;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

fn add(layout: &Path, media_type: &str, bytes: &[u8]) -> Descriptor {
    let d = Descriptor {
        media_type: media_type.to_string(),
        digest: sha256_of(bytes),
        size: bytes.len() as u64,
    };
    image::add_blob(layout, &d, &mut &bytes[..]).unwrap();
    d
}

/// Store a config, one layer and a manifest of the given media types (not
/// named); returns the manifest's descriptor and the layer's.
fn store_image(
    layout: &Path,
    manifest_type: &str,
    config_type: &str,
    layer_type: &str,
    marker: &str,
) -> (Descriptor, Descriptor) {
    let config = add(
        layout,
        config_type,
        format!(r#"{{"architecture":"amd64","os":"linux","marker":"{marker}"}}"#).as_bytes(),
    );
    let layer = add(
        layout,
        layer_type,
        format!("layer bytes {marker}").as_bytes(),
    );
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config,
        "layers": [layer],
    });
    let manifest = add(
        layout,
        manifest_type,
        &serde_json::to_vec(&manifest).unwrap(),
    );
    (manifest, layer)
}

fn backdate(path: &Path) {
    fs::File::open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

fn backdate_all_blobs(layout: &Path) {
    for e in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        backdate(&e.unwrap().path());
    }
}

fn prune(home: &microsnap::home::Home, dry_run: bool) -> image::ImagePruneReport {
    image::prune(home, &ImagePruneOptions { dry_run }, &Monitor::none()).unwrap()
}

#[test]
fn an_entry_whose_ref_name_is_not_a_string_is_unnamed_to_prune_throughout() {
    let (_dir, home) = empty_home();
    let layout = home.images_dir();
    let (kept, _) = store_image(
        &layout,
        image::OCI_MANIFEST_MEDIA_TYPE,
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar",
        "kept",
    );
    image::add_ref(&layout, "kept:1", &kept).unwrap();
    let (odd, _) = store_image(
        &layout,
        image::OCI_MANIFEST_MEDIA_TYPE,
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar",
        "odd",
    );
    image::add_ref(&layout, "odd:1", &odd).unwrap();
    // Some tool wrote a ref name that is a number: it names nothing.
    let index_path = layout.join("index.json");
    let mut index = read_json(&index_path);
    for e in index["manifests"].as_array_mut().unwrap() {
        if e["digest"] == odd.digest.as_str() {
            e["annotations"][REF_NAME] = serde_json::json!(42);
        }
    }
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    backdate_all_blobs(&layout);

    let report = prune(&home, false);
    assert_eq!(report.untagged_removed, vec![odd.digest.clone()]);
    // Whatever index.json still names is whole.
    let index = read_json(&index_path);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    for e in entries {
        let digest = e["digest"].as_str().unwrap();
        let manifest = blob_file(&layout, digest);
        assert!(manifest.exists(), "index.json names missing {digest}");
        let m = read_json(&manifest);
        let mut needed = vec![m["config"]["digest"].as_str().unwrap().to_string()];
        needed.extend(
            m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string()),
        );
        for d in needed {
            assert!(
                blob_file(&layout, &d).exists(),
                "{digest} needs missing {d}"
            );
        }
    }
    assert!(!blob_file(&layout, &odd.digest).exists());
}

#[test]
fn add_ref_waits_while_prune_holds_the_layout() {
    let (_dir, home) = empty_home();
    let layout = home.images_dir();
    let (manifest, _) = store_image(
        &layout,
        image::OCI_MANIFEST_MEDIA_TYPE,
        "application/vnd.oci.image.config.v1+json",
        "application/vnd.oci.image.layer.v1.tar",
        "late",
    );
    // What prune holds from planning to the last deletion.
    let blobs = fs::File::open(layout.join("blobs")).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(blobs.as_raw_fd(), libc::LOCK_EX) }, 0);

    let (tx, rx) = mpsc::channel();
    let writer = {
        let layout = layout.clone();
        let manifest = manifest.clone();
        std::thread::spawn(move || {
            let r = image::add_ref(&layout, "late:1", &manifest);
            tx.send(()).unwrap();
            r
        })
    };
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "add_ref named a manifest while a prune held the layout"
    );
    drop(blobs);
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(
        image::resolve(&layout, "late:1").unwrap().manifest_digest,
        manifest.digest
    );
}

#[test]
fn add_blob_of_a_blob_already_present_makes_it_young_again() {
    let (_dir, home) = empty_home();
    let layout = home.images_dir();
    let bytes = b"a blob stored twice";
    let d = add(&layout, "application/octet-stream", bytes);
    let path = blob_file(&layout, &d.digest);
    backdate(&path);
    let before_second_add = SystemTime::now() - Duration::from_secs(1);
    image::add_blob(&layout, &d, &mut &bytes[..]).unwrap();
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    assert!(
        mtime >= before_second_add,
        "the re-added blob kept its old mtime, so a running prune may delete it"
    );
}

#[test]
fn prune_does_not_read_docker_layers_so_a_corrupt_one_does_not_stop_it() {
    let (_dir, home) = empty_home();
    let layout = home.images_dir();
    let (manifest, layer) = store_image(
        &layout,
        DOCKER_MANIFEST,
        DOCKER_CONFIG,
        DOCKER_LAYER,
        "docker",
    );
    image::add_ref(&layout, "docker:1", &manifest).unwrap();
    let stray = add(&layout, "application/octet-stream", b"nothing needs this");
    // Bit rot in the layer, to JSON-looking bytes of the same size: prune
    // has no business reading it.
    let layer_path = blob_file(&layout, &layer.digest);
    let mut rotten = br#"{"x":""#.to_vec();
    rotten.resize(layer.size as usize - 2, b'x');
    rotten.extend_from_slice(br#""}"#);
    fs::write(&layer_path, &rotten).unwrap();
    backdate_all_blobs(&layout);

    let report = prune(&home, false);
    let removed: Vec<&str> = report.removed.iter().map(|b| b.digest.as_str()).collect();
    assert_eq!(removed, vec![stray.digest.as_str()]);
    assert!(layer_path.exists());
    assert_eq!(report.blobs_kept, 3);
}

#[test]
fn dry_run_prune_of_a_layout_without_blobs_creates_nothing() {
    let (_dir, home) = empty_home();
    let layout = home.images_dir();
    fs::create_dir_all(&layout).unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    fs::write(
        layout.join("index.json"),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let report = prune(&home, true);
    assert!(report.removed.is_empty());
    assert!(
        !layout.join("blobs").exists(),
        "a dry run created blobs/ in the layout"
    );
}

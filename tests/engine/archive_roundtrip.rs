//! Export then import: sparse and dense, .tar and .tar.zst, with parents,
//! GNU tar interop, cancel and progress.
use crate::support::archive as archive_support;
use archive_support::*;
use microsnap::archive::{self, ExportOptions};
use microsnap::error::{Error, ErrorCode};
use microsnap::progress::{CancelToken, Monitor};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A 256 MiB upper with 3 data extents (~1.1 MiB of data).
fn big_spec() -> SnapSpec<'static> {
    SnapSpec {
        size: 256 << 20,
        data: vec![
            (0, pattern(1, 65536)),
            (100 << 20, pattern(2, 1 << 20)),
            ((256 << 20) - 8192, pattern(3, 4096)),
        ],
        ..SnapSpec::default()
    }
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    Command::new("cmp")
        .arg("-s")
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

#[test]
fn sparse_export_reimports_byte_identical_and_sparse() {
    for plain_tar in [false, true] {
        let (t, src) = new_home();
        let digest = make_artifact(&src.snapshots_dir(), "snap", &big_spec());
        let out = t.path().join(if plain_tar { "a.tar" } else { "a.tar.zst" });
        let opts = ExportOptions {
            plain_tar,
            ..Default::default()
        };
        let report = archive::export(&src, "snap", &out, &opts, &Monitor::none()).unwrap();
        assert_eq!(report.snapshots, vec![digest.clone()]);
        assert_eq!(report.bytes_written, fs::metadata(&out).unwrap().len());
        // Export read only allocated data: the plain tar is about that size.
        if plain_tar {
            assert!(
                report.bytes_written < 2 << 20,
                "{} bytes",
                report.bytes_written
            );
        }
        let (_t2, dst) = new_home();
        let imported = archive::import(&dst, &out, None, &Monitor::none()).unwrap();
        assert_eq!(imported.head.digest, digest);
        let a = src.snapshots_dir().join("snap/upper.ext4");
        let b = imported.head.path.join("upper.ext4");
        assert!(same_bytes(&a, &b));
        let (sa, sb) = (allocated(&a), allocated(&b));
        assert!(sb <= sa + sa / 20, "source {sa} allocated, import {sb}");
    }
}

#[test]
fn gnu_tar_extracts_our_archives_byte_identical_and_sparse() {
    for (file, zstd_flag) in [("a.tar", false), ("a.tar.zst", true)] {
        let (t, home) = new_home();
        let digest = make_artifact(&home.snapshots_dir(), "snap", &big_spec());
        let out = t.path().join(file);
        let opts = ExportOptions {
            plain_tar: !zstd_flag,
            ..Default::default()
        };
        archive::export(&home, "snap", &out, &opts, &Monitor::none()).unwrap();
        let x = t.path().join("x");
        fs::create_dir(&x).unwrap();
        let mut cmd = Command::new("tar");
        if zstd_flag {
            cmd.arg("--zstd");
        }
        let status = cmd.arg("-xf").arg(&out).arg("-C").arg(&x).status().unwrap();
        assert!(status.success(), "GNU tar failed on {file}");
        let prefix = microsnap::manifest::digest_prefix(&digest);
        let restored = x.join(&prefix).join("upper.ext4");
        let original = home.snapshots_dir().join("snap/upper.ext4");
        assert!(same_bytes(&original, &restored), "{file}");
        let (a, b) = (allocated(&original), allocated(&restored));
        assert!(
            b <= a + a / 20,
            "{file}: GNU tar restored {b} allocated bytes, source has {a}"
        );
        assert!(same_bytes(
            &home.snapshots_dir().join("snap/manifest.json"),
            &x.join(&prefix).join("manifest.json")
        ));
    }
}

#[test]
fn dense_export_has_only_plain_entries_and_still_imports_sparse() {
    let (t, home) = new_home();
    let digest = make_artifact(&home.snapshots_dir(), "snap", &SnapSpec::default());
    let out = t.path().join("dense.tar");
    let opts = ExportOptions {
        plain_tar: true,
        dense: true,
        ..Default::default()
    };
    archive::export(&home, "snap", &out, &opts, &Monitor::none()).unwrap();
    // Read with the independent `tar` crate: every entry a plain regular file,
    // names and order as microsandbox writes them.
    let mut ar = tar::Archive::new(fs::File::open(&out).unwrap());
    let prefix = microsnap::manifest::digest_prefix(&digest);
    let mut names = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        assert_eq!(e.header().entry_type(), tar::EntryType::Regular);
        assert!(e.header().as_gnu().is_some());
        names.push(e.path().unwrap().display().to_string());
        if names.len() == 2 {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            assert!(data == fs::read(home.snapshots_dir().join("snap/upper.ext4")).unwrap());
        }
    }
    assert_eq!(
        names,
        vec![
            format!("{prefix}/manifest.json"),
            format!("{prefix}/upper.ext4")
        ]
    );
    let (_t2, dst) = new_home();
    let imported = archive::import(&dst, &out, None, &Monitor::none()).unwrap();
    let up = imported.head.path.join("upper.ext4");
    assert!(
        allocated(&up) < 64 * 1024,
        "dense entry was not restored sparse"
    );
}

#[test]
fn with_parents_writes_the_chain_root_first_and_imports_the_head() {
    let (t, home) = new_home();
    let dir = home.snapshots_dir();
    let root = make_artifact(
        &dir,
        "root",
        &SnapSpec {
            label: "root",
            ..SnapSpec::default()
        },
    );
    let mid = make_artifact(
        &dir,
        "mid",
        &SnapSpec {
            parent: Some(&root),
            label: "mid",
            ..SnapSpec::default()
        },
    );
    let head = make_artifact(
        &dir,
        "head",
        &SnapSpec {
            parent: Some(&mid),
            label: "head",
            ..SnapSpec::default()
        },
    );
    let out = t.path().join("chain.tar.zst");
    let opts = ExportOptions {
        with_parents: true,
        ..Default::default()
    };
    let report = archive::export(&home, "head", &out, &opts, &Monitor::none()).unwrap();
    assert_eq!(
        report.snapshots,
        vec![root.clone(), mid.clone(), head.clone()]
    );
    let (t2, dst) = new_home();
    let explicit = t2.path().join("somewhere");
    let imported = archive::import(&dst, &out, Some(&explicit), &Monitor::none()).unwrap();
    assert_eq!(imported.head.digest, head);
    let order: Vec<_> = imported.imported.iter().map(|a| a.digest.clone()).collect();
    assert_eq!(order, vec![root, mid, head]);
    assert!(imported.head.path.starts_with(&explicit));
    // no staging left in the explicit destination
    let names: Vec<_> = fs::read_dir(&explicit)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn with_parents_fails_clearly_when_an_ancestor_is_missing() {
    let (t, home) = new_home();
    let missing = format!("sha256:{}", "12".repeat(32));
    make_artifact(
        &home.snapshots_dir(),
        "orphan",
        &SnapSpec {
            parent: Some(&missing),
            ..SnapSpec::default()
        },
    );
    let out = t.path().join("x.tar.zst");
    let opts = ExportOptions {
        with_parents: true,
        ..Default::default()
    };
    let err = archive::export(&home, "orphan", &out, &opts, &Monitor::none()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::SnapshotNotFound);
    assert!(err.to_string().contains(&missing), "{err}");
    assert!(!out.exists());
    // Without parents the same snapshot exports fine.
    archive::export(
        &home,
        "orphan",
        &out,
        &ExportOptions::default(),
        &Monitor::none(),
    )
    .unwrap();
}

#[test]
fn export_refuses_a_snapshot_whose_integrity_fails() {
    let (t, home) = new_home();
    make_artifact(&home.snapshots_dir(), "snap", &SnapSpec::default());
    let upper = home.snapshots_dir().join("snap/upper.ext4");
    let f = fs::OpenOptions::new().write(true).open(&upper).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"tampered", 4096).unwrap();
    let out = t.path().join("x.tar.zst");
    let err = archive::export(
        &home,
        "snap",
        &out,
        &ExportOptions::default(),
        &Monitor::none(),
    )
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::IntegrityMismatch);
    assert!(!out.exists());
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn cancelled_export_and_import_leave_nothing_behind() {
    let (t, home) = new_home();
    make_artifact(&home.snapshots_dir(), "snap", &big_spec());
    let outdir = t.path().join("out");
    fs::create_dir(&outdir).unwrap();
    let out = outdir.join("a.tar.zst");
    // Cancel from the progress callback once the export phase is under way.
    let monitor = Monitor::new(
        None,
        Some(Box::new(|phase: &str, done, _| {
            !(phase == "export" && done > 0)
        })),
    );
    let err =
        archive::export(&home, "snap", &out, &ExportOptions::default(), &monitor).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert!(
        dir_names(&outdir).is_empty(),
        "left {:?}",
        dir_names(&outdir)
    );

    archive::export(
        &home,
        "snap",
        &out,
        &ExportOptions::default(),
        &Monitor::none(),
    )
    .unwrap();
    let (_t2, dst) = new_home();
    let before = tree(dst.root());
    let token = CancelToken::new();
    let trigger = token.clone();
    let monitor = Monitor::new(
        Some(token),
        Some(Box::new(move |phase: &str, done, _| {
            if phase == "import" && done > 0 {
                trigger.cancel();
            }
            true
        })),
    );
    let err = archive::import(&dst, &out, None, &monitor).unwrap_err();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(tree(dst.root()), before);
    assert!(index_rows(&dst).is_empty());
}

#[test]
fn progress_covers_the_data_for_both_directions() {
    let (t, home) = new_home();
    make_artifact(&home.snapshots_dir(), "snap", &big_spec());
    let out = t.path().join("a.tar.zst");
    let seen: Arc<Mutex<Vec<(String, u64, u64)>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let monitor = Monitor::new(
        None,
        Some(Box::new(move |p: &str, d, tot| {
            sink.lock().unwrap().push((p.to_string(), d, tot));
            true
        })),
    );
    archive::export(&home, "snap", &out, &ExportOptions::default(), &monitor).unwrap();
    let events = seen.lock().unwrap().clone();
    let export_total = events.iter().find(|e| e.0 == "export").unwrap().2;
    // Only allocated data is read: 64 KiB + 1 MiB + 4 KiB.
    assert_eq!(export_total, 65536 + (1 << 20) + 4096);
    assert!(events
        .iter()
        .any(|e| e.0 == "export" && e.1 == export_total));
    seen.lock().unwrap().clear();
    let (_t2, dst) = new_home();
    let sink = Arc::clone(&seen);
    let monitor = Monitor::new(
        None,
        Some(Box::new(move |p: &str, d, tot| {
            sink.lock().unwrap().push((p.to_string(), d, tot));
            true
        })),
    );
    archive::import(&dst, &out, None, &monitor).unwrap();
    let events = seen.lock().unwrap().clone();
    let archive_len = fs::metadata(&out).unwrap().len();
    let last_import = events.iter().rfind(|e| e.0 == "import").unwrap();
    assert_eq!(last_import.2, archive_len);
    assert_eq!(last_import.1, archive_len);
}

#[test]
fn existing_export_target_is_replaced_atomically_and_no_temp_is_left() {
    let (t, home) = new_home();
    make_artifact(&home.snapshots_dir(), "snap", &SnapSpec::default());
    let out = t.path().join("a.tar.zst");
    fs::write(&out, b"old").unwrap();
    archive::export(
        &home,
        "snap",
        &out,
        &ExportOptions::default(),
        &Monitor::none(),
    )
    .unwrap();
    assert_ne!(fs::read(&out).unwrap(), b"old");
    assert_eq!(
        dir_names(t.path()),
        vec!["a.tar.zst".to_string(), "home".to_string()]
    );
}

use crate::support::image as image_support;

#[test]
fn with_image_ships_the_oci_blobs_and_import_adds_them() {
    if !image_support::python_available("with_image_ships_the_oci_blobs_and_import_adds_them") {
        return;
    }
    let (t, home) = new_home();
    let image_digest = image_support::make_image(&home.images_dir(), "alpine:3.20", &[]);
    let spec = SnapSpec {
        image_digest: Some(image_digest.clone()),
        ..SnapSpec::default()
    };
    make_artifact(&home.snapshots_dir(), "snap", &spec);
    let out = t.path().join("img.tar");
    let opts = ExportOptions {
        with_image: true,
        plain_tar: true,
        ..Default::default()
    };
    archive::export(&home, "snap", &out, &opts, &Monitor::none()).unwrap();
    let shipped = microsnap::image::blobs_of(&home.images_dir(), &image_digest).unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(fs::File::open(&out).unwrap())
        .entries()
        .unwrap()
    {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert!(names.contains(&"oci-image/oci-layout".to_string()));
    assert!(names.contains(&"oci-image/index.json".to_string()));
    for b in &shipped {
        let want = format!("oci-image/blobs/sha256/{}", &b.digest[7..]);
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }

    let (_t2, dst) = new_home();
    let report = archive::import(&dst, &out, None, &Monitor::none()).unwrap();
    assert_eq!(report.images, vec![image_digest.clone()]);
    let pin = microsnap::image::resolve(&dst.images_dir(), "alpine:3.20").unwrap();
    assert_eq!(pin.manifest_digest, image_digest);
    assert_eq!(
        microsnap::image::blobs_of(&dst.images_dir(), &image_digest).unwrap(),
        shipped
    );
    // The imported layout is a real OCI layout to the standard tools.
    let reference = format!("{}:alpine:3.20", dst.images_dir().display());
    if which("skopeo") {
        let o = std::process::Command::new("skopeo")
            .args(["inspect", &format!("oci:{reference}")])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["Digest"], image_digest.as_str());
    } else {
        eprintln!("SKIP skopeo check: skopeo not installed");
    }
    if which("umoci") {
        let bundle = _t2.path().join("bundle");
        let o = std::process::Command::new("umoci")
            .args(["unpack", "--image", &reference])
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "umoci: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(bundle.join("rootfs").is_dir());
    } else {
        eprintln!("SKIP umoci check: umoci not installed");
    }
}

fn which(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Byte ranges of the entries of a plain tar written by our exporter (no
/// long names or sparse extension blocks), then the end-of-archive blocks.
fn tar_entries(tar: &[u8]) -> (Vec<std::ops::Range<usize>>, usize) {
    let mut entries = Vec::new();
    let mut at = 0;
    while tar[at..at + 512].iter().any(|&b| b != 0) {
        let header = &tar[at..at + 512];
        assert!(
            header[156] != b'S' || header[482] == 0,
            "sparse extension blocks"
        );
        let size = std::str::from_utf8(&header[124..135]).unwrap();
        let size = usize::from_str_radix(size.trim_matches(|c| c == '\0' || c == ' '), 8).unwrap();
        let end = at + 512 + size.div_ceil(512) * 512;
        entries.push(at..end);
        at = end;
    }
    (entries, at)
}

/// The same archive with its upper entry before its manifest (as hand-made
/// archives may be): the importer cannot hash the upper on the way in then,
/// since nothing says what to expect yet, and checks it afterwards.
fn upper_first(tar: &[u8]) -> Vec<u8> {
    let (entries, end) = tar_entries(tar);
    assert_eq!(entries.len(), 2, "a manifest and an upper");
    let mut out = tar[entries[1].clone()].to_vec();
    out.extend_from_slice(&tar[entries[0].clone()]);
    out.extend_from_slice(&tar[end..]);
    out
}

#[test]
fn every_integrity_algorithm_is_checked_on_export_and_on_import_in_either_entry_order() {
    use microsnap::integrity::Algorithm;
    for algorithm in Algorithm::ALL {
        let (t, src) = new_home();
        let spec = SnapSpec {
            integrity: Some(algorithm),
            ..SnapSpec::default()
        };
        let digest = make_artifact(&src.snapshots_dir(), "snap", &spec);
        let out = t.path().join("a.tar");
        let plain = ExportOptions {
            plain_tar: true,
            ..Default::default()
        };
        archive::export(&src, "snap", &out, &plain, &Monitor::none()).unwrap();
        let good = fs::read(&out).unwrap();
        let data = pattern(1, 64);
        let at = good
            .windows(data.len())
            .position(|w| w == data.as_slice())
            .expect("upper data in the tar");
        let mut bad = good.clone();
        bad[at + 100] ^= 1;
        let cases = [
            ("manifest first", upper_first(&upper_first(&good)), true),
            ("upper first", upper_first(&good), true),
            ("tampered, manifest first", bad.clone(), false),
            ("tampered, upper first", upper_first(&bad), false),
        ];
        for (case, bytes, intact) in cases {
            let (t2, dst) = new_home();
            let archive_path = t2.path().join("in.tar");
            fs::write(&archive_path, &bytes).unwrap();
            let result = archive::import(&dst, &archive_path, None, &Monitor::none());
            if intact {
                let report = result.unwrap_or_else(|e| panic!("{algorithm} {case}: {e}"));
                assert_eq!(report.head.digest, digest, "{algorithm} {case}");
            } else {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{algorithm} {case} imported"));
                assert_eq!(
                    err.code(),
                    ErrorCode::IntegrityMismatch,
                    "{algorithm} {case}: {err}"
                );
                assert!(
                    dir_names(&dst.snapshots_dir()).is_empty(),
                    "{algorithm} {case}"
                );
                assert!(index_rows(&dst).is_empty(), "{algorithm} {case}");
            }
        }

        // A changed upper is caught on the way out: no archive appears.
        let upper = src.snapshots_dir().join("snap/upper.ext4");
        let f = fs::OpenOptions::new().write(true).open(&upper).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b"tampered", (6 << 20) + 10).unwrap();
        for plain_tar in [false, true] {
            let out = t.path().join(format!("tampered-{plain_tar}"));
            let opts = ExportOptions {
                plain_tar,
                ..Default::default()
            };
            let err = archive::export(&src, "snap", &out, &opts, &Monitor::none()).unwrap_err();
            assert_eq!(
                err.code(),
                ErrorCode::IntegrityMismatch,
                "{algorithm}: {err}"
            );
            assert!(!out.exists(), "{algorithm}");
            assert_eq!(
                dir_names(t.path())
                    .iter()
                    .filter(|n| n.contains("partial"))
                    .count(),
                0
            );
        }
    }
}

#[test]
fn every_compression_level_round_trips() {
    // Level 19's window (8 MiB) is larger than a worker job (4 MiB), and
    // the upper spans several jobs.
    let (t, src) = new_home();
    let spec = SnapSpec {
        size: 64 << 20,
        data: vec![(4096, pattern(5, 9 << 20)), (40 << 20, pattern(6, 3 << 20))],
        ..SnapSpec::default()
    };
    let digest = make_artifact(&src.snapshots_dir(), "snap", &spec);
    for level in [1, 3, 19] {
        let out = t.path().join(format!("l{level}.tar.zst"));
        let opts = ExportOptions {
            level: Some(level),
            ..Default::default()
        };
        archive::export(&src, "snap", &out, &opts, &Monitor::none()).unwrap();
        let (_t2, dst) = new_home();
        let report = archive::import(&dst, &out, None, &Monitor::none()).unwrap();
        assert_eq!(report.head.digest, digest, "level {level}");
        assert!(same_bytes(
            &src.snapshots_dir().join("snap/upper.ext4"),
            &report.head.path.join("upper.ext4")
        ));
    }
}

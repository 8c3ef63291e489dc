//! A realistic upper: a 256 MiB sparse raw ext4 filesystem built by
//! mkfs.ext4 from a tree of real files, adopted, snapshotted with integrity,
//! verified, and booted into a new sandbox whose upper must be byte-identical
//! and a clean filesystem. Skips (saying why) when mkfs.ext4 is absent.
use crate::support as engine_support;

use engine_support::*;
use microsnap::integrity::Algorithm;
use microsnap::manifest::DiskFormat;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, CreateOptions};
use microsnap::sparse::allocated_bytes;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Copy regular files from `from` (recursively) into `to` until `budget`
/// bytes are copied; returns (relative path, bytes) of each file copied.
fn copy_some_files(from: &Path, to: &Path, budget: &mut u64, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(rd) = fs::read_dir(from) else { return };
    let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if *budget == 0 {
            return;
        }
        let Ok(ft) = e.file_type() else { continue };
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            fs::create_dir_all(&dest).unwrap();
            copy_some_files(&e.path(), &dest, budget, out);
        } else if ft.is_file() {
            let Ok(bytes) = fs::read(e.path()) else {
                continue;
            };
            fs::write(&dest, &bytes).unwrap();
            *budget = budget.saturating_sub(bytes.len() as u64);
            out.push((dest, bytes));
        }
    }
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn a_real_ext4_upper_survives_snapshot_verify_and_boot() {
    if Command::new("mkfs.ext4").arg("-V").output().is_err() {
        println!(
            "SKIP a_real_ext4_upper_survives_snapshot_verify_and_boot: mkfs.ext4 is not installed"
        );
        return;
    }
    let t = TestHome::new();
    // A tree of real files: some of /usr/share/doc, plus generated data so
    // there are a few MiB even on a minimal system.
    let tree = t.outside("tree");
    fs::create_dir_all(tree.join("doc")).unwrap();
    let mut files = Vec::new();
    let mut budget = 3 * MIB;
    copy_some_files(
        Path::new("/usr/share/doc"),
        &tree.join("doc"),
        &mut budget,
        &mut files,
    );
    let generated = tree.join("data").join("blob.bin");
    fs::create_dir_all(generated.parent().unwrap()).unwrap();
    fs::write(&generated, pattern(2 * MIB as usize, 42)).unwrap();
    files.push((generated, pattern(2 * MIB as usize, 42)));

    let image = t.outside("rootfs.ext4");
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-d",
            tree.to_str().unwrap(),
            image.to_str().unwrap(),
            "256M",
        ],
    );
    let size = fs::metadata(&image).unwrap().len();
    assert_eq!(size, 256 * MIB);
    assert!(
        allocated_bytes(&image).unwrap() < 128 * MIB,
        "mkfs.ext4 wrote a sparse image"
    );

    let sb = sandbox::create(
        &t.home,
        "rootfs",
        &SandboxSource::Upper {
            path: image.clone(),
            fstype: "ext4".into(),
            image: IMAGE_REF.into(),
        },
        &Monitor::none(),
    )
    .unwrap();
    assert_eq!(sb.format, DiskFormat::Raw);
    assert_eq!(sb.size_bytes, size);

    let opts = CreateOptions {
        record_integrity: true,
        integrity_algorithm: Some(Algorithm::MsbSparseSha256V1),
        ..named("rootfs-snap")
    };
    let art = snapshot::create(&t.home, "rootfs", &opts, &Monitor::none()).unwrap();
    let report = snapshot::verify(&t.home, "rootfs-snap", &Monitor::none()).unwrap();
    assert_eq!(report.upper.kind, "verified");
    assert_eq!(report.upper.algorithm, "msb-sparse-sha256-v1");
    assert_eq!(
        Some(report.upper.digest),
        art.upper_spec()
            .unwrap()
            .integrity
            .clone()
            .map(|i| i.digest)
    );

    let booted = t.sandbox_from("booted", "rootfs-snap").unwrap();
    assert_eq!(booted.from_snapshot.as_deref(), Some(art.digest.as_str()));
    let upper = booted.upper_path.to_str().unwrap();
    // Byte for byte the filesystem mkfs.ext4 made...
    run("cmp", &[image.to_str().unwrap(), upper]);
    assert!(allocated_bytes(&booted.upper_path).unwrap() <= allocated_bytes(&image).unwrap() + MIB);
    // ...a clean filesystem...
    if Command::new("e2fsck").arg("-V").output().is_ok() {
        run("e2fsck", &["-fn", upper]);
    } else {
        println!("note: e2fsck is not installed; filesystem check skipped");
    }
    // ...whose files read back as they were written.
    if Command::new("debugfs").arg("-V").output().is_ok() {
        for (path, bytes) in files.iter().step_by(7).chain(files.last()) {
            let inside = format!("/{}", path.strip_prefix(&tree).unwrap().display());
            let out = run("debugfs", &["-R", &format!("cat \"{inside}\""), upper]);
            assert!(
                out.stdout == *bytes,
                "{inside} differs inside the booted upper"
            );
        }
    } else {
        println!("note: debugfs is not installed; file contents not checked");
    }
}

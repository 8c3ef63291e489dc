//! The dedup figure of issue 15 point 1, on a real filesystem: a 4 GiB raw
//! ext4 upper made by `mkfs.ext4 -d` from a few hundred MiB of real files
//! is pushed to an `oci:` layout; its child (the same image changed in
//! place: 500 scattered 4 KiB writes inside the allocated region and ~30 MiB
//! of new files written with `debugfs -w`) pushes at most 1.2x the zstd-3
//! size of its 64 KiB chunks the parent lacks, plus the chunk index, and
//! pulls the same onto a home that holds the parent, byte for byte.
//!
//! The expected size is computed here independently of the engine: both
//! uppers are read chunk by chunk, and every non-zero child chunk whose
//! bytes are in no parent chunk (nor earlier in the child) is compressed
//! alone at level 3. Skips (saying why) without mkfs.ext4 or debugfs.
use crate::support::*;

use microsnap::distribution::{self, PullOptions, PushOptions};
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, CreateOptions};
use microsnap::sparse::{data_extents, Extent};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const CHUNK: u64 = 64 * 1024;
const GIB: u64 = 1 << 30;
/// Bytes of real files in the parent's filesystem.
const TREE_BYTES: u64 = 256 * MIB;
/// Bytes of new files the child adds.
const NEW_BYTES: u64 = 30 * MIB;
const SCATTERED_WRITES: usize = 500;

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

/// Regular files under `roots` (sorted walk): (path, size).
fn files_under(roots: &[PathBuf], out: &mut Vec<(PathBuf, u64)>) {
    for root in roots {
        let Ok(rd) = fs::read_dir(root) else { continue };
        let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                files_under(&[e.path()], out);
            } else if ft.is_file() {
                if let Ok(meta) = e.metadata() {
                    if meta.len() > 0 {
                        out.push((e.path(), meta.len()));
                    }
                }
            }
        }
    }
}

fn python_stdlib() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig;print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    path.is_dir().then_some(path)
}

/// Place `files` under `tree` keeping their paths (hard links where the
/// filesystem allows, copies otherwise: mkfs.ext4 -d reads them either way).
fn build_tree(tree: &Path, files: &[(PathBuf, u64)]) {
    for (i, (path, _)) in files.iter().enumerate() {
        // A flat name per file: the paths' shapes do not matter, their bytes do.
        let dest = tree.join(format!("d{:03}", i / 200)).join(format!(
            "{i:05}-{}",
            path.file_name().unwrap().to_string_lossy()
        ));
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        if fs::hard_link(path, &dest).is_err() {
            fs::copy(path, &dest).unwrap();
        }
    }
}

/// Non-zero 64 KiB chunks of `path` overlapping its data extents, in
/// order: (chunk number, bytes).
fn for_each_chunk(path: &Path, mut f: impl FnMut(u64, &[u8])) {
    let file = File::open(path).unwrap();
    let size = file.metadata().unwrap().len();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut last: Option<u64> = None;
    for e in data_extents(&file).unwrap() {
        for n in e.offset / CHUNK..e.end().min(size).div_ceil(CHUNK) {
            if last.is_some_and(|l| l >= n) {
                continue;
            }
            last = Some(n);
            let len = CHUNK.min(size - n * CHUNK) as usize;
            file.read_exact_at(&mut buf[..len], n * CHUNK).unwrap();
            if buf[..len].iter().any(|&b| b != 0) {
                f(n, &buf[..len]);
            }
        }
    }
}

/// (new chunks, their zstd-3 bytes): the child's non-zero chunks whose
/// bytes are in no parent chunk, each distinct one compressed alone.
fn new_chunks(parent: &Path, child: &Path) -> (u64, u64) {
    let mut known: HashSet<[u8; 32]> = HashSet::new();
    for_each_chunk(parent, |_, bytes| {
        known.insert(Sha256::digest(bytes).into());
    });
    let (mut count, mut compressed) = (0u64, 0u64);
    for_each_chunk(child, |_, bytes| {
        if known.insert(Sha256::digest(bytes).into()) {
            count += 1;
            compressed += zstd::bulk::compress(bytes, 3).unwrap().len() as u64;
        }
    });
    (count, compressed)
}

/// Byte-for-byte equality of two sparse files: same size, and every data
/// extent of either reads the same in the other (holes read as zeros).
fn assert_same_bytes(a: &Path, b: &Path) {
    let (fa, fb) = (File::open(a).unwrap(), File::open(b).unwrap());
    assert_eq!(
        fa.metadata().unwrap().len(),
        fb.metadata().unwrap().len(),
        "sizes differ"
    );
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (file, other) in [(&fa, &fb), (&fb, &fa)] {
        for e in data_extents(file).unwrap() {
            let mut at = e.offset;
            while at < e.end() {
                let len = (e.end() - at).min(8 * MIB) as usize;
                x.resize(len, 0);
                y.resize(len, 0);
                file.read_exact_at(&mut x, at).unwrap();
                other.read_exact_at(&mut y, at).unwrap();
                assert!(
                    x == y,
                    "{} and {} differ in [{at}, +{len})",
                    a.display(),
                    b.display()
                );
                at += len as u64;
            }
        }
    }
}

/// `count` 4 KiB-aligned offsets inside `extents` (uniform over their bytes).
fn offsets_inside(extents: &[Extent], count: usize, seed: u64) -> Vec<u64> {
    let pages: Vec<(u64, u64)> = extents
        .iter()
        .map(|e| (e.offset.div_ceil(4096), e.end() / 4096))
        .filter(|(s, end)| end > s)
        .collect();
    let total: u64 = pages.iter().map(|(s, e)| e - s).sum();
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let mut pick = (state >> 11) % total;
            for (s, e) in &pages {
                if pick < e - s {
                    return (s + pick) * 4096;
                }
                pick -= e - s;
            }
            unreachable!()
        })
        .collect()
}

fn manifest_of(layout: &Path, tag: &str) -> serde_json::Value {
    let index = crate::support::image::read_json(&layout.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {index}"));
    crate::support::image::read_json(&crate::support::image::blob_file(
        layout,
        entry["digest"].as_str().unwrap(),
    ))
}

#[test]
fn a_child_of_a_4_gib_ext4_upper_moves_only_its_new_chunks_both_ways() {
    for tool in ["mkfs.ext4", "debugfs"] {
        if Command::new(tool).arg("-V").output().is_err() {
            println!("SKIP distribution_dedup: {tool} is not installed");
            return;
        }
    }
    let started = Instant::now();
    let t = TestHome::new();

    // A few hundred MiB of real files for the parent, 30 MiB more for the child.
    let mut roots = vec![
        PathBuf::from("/usr/share/doc"),
        PathBuf::from("/usr/share/perl"),
    ];
    roots.extend(python_stdlib());
    roots.push(PathBuf::from("/usr/lib/x86_64-linux-gnu"));
    let mut files = Vec::new();
    files_under(&roots, &mut files);
    let mut sum = 0;
    let split = files
        .iter()
        .position(|(_, n)| {
            sum += n;
            sum > TREE_BYTES
        })
        .unwrap_or_else(|| panic!("only {sum} bytes of files under {roots:?}"));
    let (old, rest) = files.split_at(split);
    let mut sum = 0;
    let new: Vec<_> = rest
        .iter()
        .filter(|(_, n)| *n <= 8 * MIB)
        .take_while(|(_, n)| {
            sum += n;
            sum <= NEW_BYTES
        })
        .cloned()
        .collect();
    assert!(sum >= NEW_BYTES / 2, "only {sum} bytes of new files");
    let tree = t.outside("tree");
    build_tree(&tree, old);
    let image = t.outside("rootfs.ext4");
    File::create(&image).unwrap().set_len(4 * GIB).unwrap();
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-d",
            tree.to_str().unwrap(),
            image.to_str().unwrap(),
        ],
    );
    fs::remove_dir_all(&tree).unwrap();

    sandbox::create(
        &t.home,
        "parent-sb",
        &SandboxSource::Upper {
            path: image.clone(),
            fstype: "ext4".into(),
            image: IMAGE_REF.into(),
        },
        &Monitor::none(),
    )
    .unwrap();
    fs::remove_file(&image).unwrap();
    let with_integrity = |name: &str| CreateOptions {
        record_integrity: true,
        ..named(name)
    };
    snapshot::create(
        &t.home,
        "parent-sb",
        &with_integrity("parent"),
        &Monitor::none(),
    )
    .unwrap();
    // The snapshot has the upper: the sandbox's copy is not needed.
    sandbox::remove(&t.home, "parent-sb").unwrap();
    let parent_upper = microsnap::artifact::open_dir(&t.home.snapshots_dir().join("parent"))
        .unwrap()
        .upper_path();
    let layout = t.outside("layout");
    let reference = |tag: &str| format!("oci:{}:{tag}", layout.display());
    let pushed_parent = distribution::push(
        &t.home,
        "parent",
        &reference("parent"),
        &PushOptions::default(),
        &Monitor::none(),
    )
    .unwrap();

    // The child: the parent's filesystem changed in place.
    let child_sb = t.sandbox_from("child-sb", "parent").unwrap();
    let allocated = data_extents(&File::open(&child_sb.upper_path).unwrap()).unwrap();
    let mut commands = String::from("mkdir /new\ncd /new\n");
    for (i, (path, _)) in new.iter().enumerate() {
        commands.push_str(&format!(
            "write \"{}\" f{i:04}-{}\n",
            path.display(),
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .replace([' ', '"'], "_")
        ));
    }
    let script = t.outside("debugfs.cmds");
    fs::write(&script, commands).unwrap();
    let out = run(
        "debugfs",
        &[
            "-w",
            "-f",
            script.to_str().unwrap(),
            child_sb.upper_path.to_str().unwrap(),
        ],
    );
    // debugfs reports a failed command on stderr and still exits 0.
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        !errors
            .lines()
            .any(|l| !l.starts_with("debugfs ") && !l.trim().is_empty()),
        "debugfs: {errors}"
    );
    // The scattered writes last: they may land on metadata, which is fine
    // for bytes but would upset debugfs.
    for (i, offset) in offsets_inside(&allocated, SCATTERED_WRITES, 0x5ca7)
        .into_iter()
        .enumerate()
    {
        write_at(
            &child_sb.upper_path,
            offset,
            &pseudo_random(4096, 7000 + i as u64),
        );
    }
    snapshot::create(
        &t.home,
        "child-sb",
        &with_integrity("child"),
        &Monitor::none(),
    )
    .unwrap();
    let child_upper = microsnap::artifact::open_dir(&t.home.snapshots_dir().join("child"))
        .unwrap()
        .upper_path();
    let (new_count, new_compressed) = new_chunks(&parent_upper, &child_upper);

    let pushed = distribution::push(
        &t.home,
        "child",
        &reference("child"),
        &PushOptions::default(),
        &Monitor::none(),
    )
    .unwrap();
    let manifest = manifest_of(&layout, "child");
    let index_size = manifest["layers"][0]["size"].as_u64().unwrap();
    let bound = new_compressed + new_compressed / 5 + index_size;
    println!(
        "dedup: parent pushed {} chunks, {} bytes; child: {} new chunks ({new_compressed} bytes \
         at zstd-3) of {}, index {index_size} bytes; pushed {} chunks, {} bytes (bound {bound})",
        pushed_parent.chunks_uploaded,
        pushed_parent.bytes_uploaded,
        new_count,
        pushed.chunks_total,
        pushed.chunks_uploaded,
        pushed.bytes_uploaded
    );
    assert_eq!(pushed.chunks_uploaded, new_count, "{pushed:?}");
    assert!(
        pushed.bytes_uploaded <= bound,
        "{pushed:?} over the bound {bound}"
    );

    // Onto a host that holds the parent: this home once the child is gone
    // (its sandbox stays, with the child's bytes, to compare against; a
    // sandbox is not a source pull copies chunks from).
    snapshot::remove(&t.home, "child", false).unwrap();
    let (handle, pulled) = distribution::pull(
        &t.home,
        &reference("child"),
        None,
        &PullOptions::default(),
        &Monitor::none(),
    )
    .unwrap();
    println!(
        "dedup: pulled the child with {} chunks, {} bytes downloaded, {} bytes copied locally \
         (bound {bound}); {:.1?} in all",
        pulled.chunks_downloaded,
        pulled.bytes_downloaded,
        pulled.bytes_copied_locally,
        started.elapsed()
    );
    assert_eq!(handle.digest, pushed.snapshot_digest);
    assert!(
        pulled.bytes_downloaded <= bound,
        "{pulled:?} over the bound {bound}"
    );
    let pulled_upper = microsnap::artifact::open_dir(&handle.path)
        .unwrap()
        .upper_path();
    assert_same_bytes(&pulled_upper, &child_sb.upper_path);
}

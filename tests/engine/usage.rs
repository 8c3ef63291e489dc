//! Storage accounting (`usage::usage`) against what stat and du say of real
//! sparse files, and the FIEMAP walker against SEEK_DATA (and, where the
//! filesystem can reflink, against a reflinked copy).
use crate::support::image::{blob_file, make_image, python_available, sha256_of};
use crate::support::{sparse_file, TestHome, MIB};
use microsnap::sparse;
use microsnap::usage::{self, fiemap, Space};
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// What stat says of every regular file under `dir`.
fn stat_space(dir: &Path) -> (u64, u64) {
    let (mut logical, mut allocated) = (0, 0);
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            let (l, a) = stat_space(&p);
            logical += l;
            allocated += a;
        } else if m.is_file() {
            logical += m.len();
            allocated += m.blocks() * 512;
        }
    }
    (logical, allocated)
}

/// `du -B1` of one file (allocated bytes), when du is installed.
fn du_allocated(path: &Path) -> Option<u64> {
    let out = Command::new("du").arg("-B1").arg(path).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Whether `cp --reflink=always` works inside `dir`.
fn can_reflink(dir: &Path) -> bool {
    let probe = tempfile::tempdir_in(dir).unwrap();
    let src = probe.path().join("a");
    fs::write(&src, vec![1u8; 4096]).unwrap();
    Command::new("cp")
        .arg("--reflink=always")
        .arg(&src)
        .arg(probe.path().join("b"))
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn usage_matches_stat_and_du_for_sparse_sandboxes_and_snapshots() {
    if !python_available("usage_matches_stat_and_du_for_sparse_sandboxes_and_snapshots") {
        return;
    }
    let home = TestHome::new();
    let data = vec![0xa5u8; MIB as usize];
    let sb = home.sandbox_with("busy", 64 * MIB, &[(0, &data), (32 * MIB, &data)]);
    home.snapshot("busy", "snap");
    home.sandbox("idle", 64 * MIB);
    let u = usage::usage(&home.home).unwrap();

    assert_eq!(u.sandboxes.len(), 2);
    for row in &u.sandboxes {
        let dir = row.path.as_ref().unwrap();
        let (logical, allocated) = stat_space(dir);
        assert_eq!(row.space.logical_bytes, logical, "{}", row.name);
        assert_eq!(row.space.allocated_bytes, allocated, "{}", row.name);
    }
    let busy = u.sandboxes.iter().find(|r| r.name == "busy").unwrap();
    let idle = u.sandboxes.iter().find(|r| r.name == "idle").unwrap();
    // 64 MiB logical each, but only the busy one holds 2 MiB of data.
    assert!(busy.space.logical_bytes >= 64 * MIB && idle.space.logical_bytes >= 64 * MIB);
    assert!(busy.space.allocated_bytes >= 2 * MIB, "{busy:?}");
    assert!(
        busy.space.allocated_bytes < 8 * MIB,
        "sparse upper counted as dense: {busy:?}"
    );
    assert!(idle.space.allocated_bytes < MIB, "{idle:?}");
    assert_eq!(
        idle.space.shared_bytes, 0,
        "nothing was ever copied from it"
    );
    // Snapshot create reflinks the upper where the filesystem can (XFS,
    // btrfs): then the 2 MiB of data are shared by both; else by nothing.
    let shared = if can_reflink(home.home.root()) {
        2 * MIB
    } else {
        0
    };
    assert_eq!(busy.space.shared_bytes, shared, "{busy:?}");
    if let Some(du) = du_allocated(&sb.upper_path) {
        let upper = usage::file_space(&sb.upper_path).unwrap().unwrap();
        assert_eq!(upper.allocated_bytes, du, "du -B1 of the upper");
    }

    assert_eq!(u.snapshots.len(), 1);
    let snap = &u.snapshots[0];
    assert_eq!(snap.name, "snap");
    let (logical, allocated) = stat_space(snap.path.as_ref().unwrap());
    assert_eq!(
        (snap.space.logical_bytes, snap.space.allocated_bytes),
        (logical, allocated)
    );
    assert!(snap.space.allocated_bytes >= 2 * MIB && snap.space.allocated_bytes < 8 * MIB);
    assert_eq!(snap.space.shared_bytes, shared, "{snap:?}");

    // Totals: every row once, plus every blob of the layout once.
    let (_, layout_allocated) = stat_space(&home.home.images_dir().join("blobs/sha256"));
    let rows_allocated: u64 = u
        .snapshots
        .iter()
        .chain(&u.sandboxes)
        .map(|r| r.space.allocated_bytes)
        .sum();
    // And the cache (leaf lists), when there is one.
    let cache = home.home.root().join("cache");
    let (_, cache_allocated) = if cache.exists() {
        stat_space(&cache)
    } else {
        (0, 0)
    };
    assert_eq!(u.cache.allocated_bytes, cache_allocated);
    assert_eq!(
        u.total.allocated_bytes,
        rows_allocated + layout_allocated + cache_allocated
    );
}

/// The leaf lists in `cache/` are space the home uses: usage counts them,
/// in the total too.
#[test]
fn usage_counts_the_cache() {
    let home = TestHome::new();
    let data = vec![0x5au8; MIB as usize];
    home.sandbox_with("sb", 64 * MIB, &[(0, &data)]);
    let art = microsnap::snapshot::create(
        &home.home,
        "sb",
        &microsnap::snapshot::CreateOptions {
            name: Some("s".into()),
            record_integrity: true,
            integrity_algorithm: Some(microsnap::integrity::Algorithm::MerkleSha256V1),
            ..Default::default()
        },
        &microsnap::progress::Monitor::none(),
    )
    .unwrap();
    let list = home
        .home
        .root()
        .join("cache/leaves")
        .join(art.digest.strip_prefix("sha256:").unwrap());
    // 16 non-zero chunks of 64 KiB: a 24-byte head and 40 bytes each.
    assert_eq!(fs::metadata(&list).unwrap().len(), 24 + 16 * 40);
    let u = usage::usage(&home.home).unwrap();
    let (logical, allocated) = stat_space(&home.home.root().join("cache"));
    assert_eq!(u.cache.logical_bytes, logical);
    assert_eq!(u.cache.allocated_bytes, allocated);
    assert!(u.cache.logical_bytes >= 24 + 16 * 40, "{:?}", u.cache);
    let rows: u64 = u
        .snapshots
        .iter()
        .chain(&u.sandboxes)
        .map(|r| r.space.logical_bytes)
        .sum();
    assert!(
        u.total.logical_bytes >= rows + u.cache.logical_bytes,
        "{:?}",
        u.total
    );
}

#[test]
fn image_usage_counts_blobs_shared_between_images_and_unreferenced_ones() {
    if !python_available("image_usage_counts_blobs_shared_between_images_and_unreferenced_ones") {
        return;
    }
    let home = TestHome::new();
    let layout = home.home.images_dir();
    // Same rootfs, two architectures: two configs and manifests, one layer.
    let rootfs = home.outside("rootfs");
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/os-release"), "ID=shared\n").unwrap();
    let rootfs = rootfs.to_str().unwrap();
    make_image(&layout, "shared:amd64", &["--rootfs", rootfs]);
    let arm = make_image(
        &layout,
        "shared:arm64",
        &["--rootfs", rootfs, "--arch", "arm64"],
    );
    let stray_bytes = b"no image needs this".repeat(100);
    let stray = sha256_of(&stray_bytes);
    fs::write(blob_file(&layout, &stray), &stray_bytes).unwrap();

    let u = usage::usage(&home.home).unwrap();
    let listed = microsnap::image::list(&layout).unwrap();
    assert_eq!(u.images.len(), 3);
    let space_of = |d: &str| usage::file_space(&blob_file(&layout, d)).unwrap().unwrap();
    for row in &u.images {
        let info = listed
            .iter()
            .find(|i| i.reference.as_deref() == Some(row.name.as_str()))
            .unwrap();
        assert_eq!(row.space.logical_bytes, info.total_size, "{}", row.name);
        let blobs: Vec<String> = [info.manifest_digest.clone(), info.config_digest.clone()]
            .into_iter()
            .chain(info.layers.iter().map(|l| l.digest.clone()))
            .collect();
        let allocated: u64 = blobs.iter().map(|d| space_of(d).allocated_bytes).sum();
        assert_eq!(row.space.allocated_bytes, allocated, "{}", row.name);
        // The shared images' one layer is both's: exactly its bytes are
        // shared. alpine:3.20 shares nothing.
        let expected = if row.name.starts_with("shared:") {
            space_of(&info.layers[0].digest).allocated_bytes
        } else {
            0
        };
        assert_eq!(row.space.shared_bytes, expected, "{}", row.name);
    }
    assert!(u
        .images
        .iter()
        .any(|r| r.digest.as_deref() == Some(arm.as_str())));
    assert_eq!(u.unreferenced_images, space_of(&stray));
    // The shared layer counts once in the total.
    let (logical, allocated) = stat_space(&layout.join("blobs/sha256"));
    assert_eq!(u.total.logical_bytes, logical);
    assert_eq!(u.total.allocated_bytes, allocated);
}

/// Runs of FIEMAP extents that hold written data, merged where adjacent.
fn written_runs(extents: &[fiemap::MappedExtent]) -> Vec<sparse::Extent> {
    let mut out: Vec<sparse::Extent> = Vec::new();
    for e in extents.iter().filter(|e| !e.is_unwritten()) {
        match out.last_mut() {
            Some(last) if last.end() == e.logical => last.len += e.length,
            _ => out.push(sparse::Extent {
                offset: e.logical,
                len: e.length,
            }),
        }
    }
    out
}

#[test]
fn fiemap_walker_agrees_with_seek_data_on_a_real_sparse_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sparse");
    let block = vec![0x5au8; 64 * 1024];
    // Many separate extents, more than one FIEMAP batch of 256.
    let writes: Vec<(u64, &[u8])> = (0..300u64).map(|i| (i * 256 * 1024, &block[..])).collect();
    sparse_file(&path, 300 * 256 * 1024 + 4096, &writes);
    let file = File::open(&path).unwrap();
    let Some(extents) = fiemap::mapped_extents(&file).unwrap() else {
        println!("SKIP fiemap_walker_agrees_with_seek_data_on_a_real_sparse_file: no FIEMAP here");
        return;
    };
    let seek = sparse::data_extents(&file).unwrap();
    let runs = written_runs(&extents);
    assert_eq!(runs, seek, "FIEMAP's written extents are SEEK_DATA's data");
    assert_eq!(seek.len(), 300);
    let data: u64 = seek.iter().map(|e| e.len).sum();
    assert_eq!(runs.iter().map(|e| e.len).sum::<u64>(), data);
    assert_eq!(data, 300 * 64 * 1024);
    assert!(extents
        .iter()
        .all(|e| e.logical + e.length <= file.metadata().unwrap().len()));
    assert_eq!(
        fiemap::shared_bytes(&file).unwrap(),
        0,
        "a plain file shares nothing"
    );
}

/// Where `cp --reflink=always` works (XFS, btrfs), a reflinked copy's bytes
/// read as shared in both files, and usage counts them. Elsewhere (ext4,
/// tmpfs) it skips and says so. `MICROSNAP_REFLINK_DIR` may name a
/// directory on such a filesystem.
#[test]
fn fiemap_reports_reflinked_extents_as_shared() {
    let test = "fiemap_reports_reflinked_extents_as_shared";
    let base = std::env::var_os("MICROSNAP_REFLINK_DIR").map(std::path::PathBuf::from);
    let dir = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let src = dir.path().join("src");
    let data = vec![0x11u8; 4 * MIB as usize];
    fs::write(&src, &data).unwrap();
    File::open(&src).unwrap().sync_all().unwrap();
    let dst = dir.path().join("dst");
    let ok = Command::new("cp")
        .arg("--reflink=always")
        .arg(&src)
        .arg(&dst)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!(
            "SKIP {test}: {} cannot reflink (cp --reflink=always failed); set \
             MICROSNAP_REFLINK_DIR to a directory on XFS or btrfs",
            dir.path().display()
        );
        return;
    }
    for p in [&src, &dst] {
        let f = File::open(p).unwrap();
        assert_eq!(
            fiemap::shared_bytes(&f).unwrap(),
            4 * MIB,
            "{}",
            p.display()
        );
    }
    let space = usage::dir_space(dir.path()).unwrap().unwrap();
    assert_eq!(
        space,
        Space {
            logical_bytes: 8 * MIB,
            allocated_bytes: space.allocated_bytes,
            shared_bytes: 8 * MIB,
        }
    );
}

/// On a filesystem that reflinks (`MICROSNAP_REFLINK_DIR`, e.g. a
/// loop-mounted XFS), snapshot create clones the sandbox's upper, so usage
/// reports those extents as shared in both the sandbox and the snapshot.
/// Skips (and says so) without such a directory.
#[test]
fn usage_reports_a_reflinked_snapshot_as_shared_with_its_sandbox() {
    let test = "usage_reports_a_reflinked_snapshot_as_shared_with_its_sandbox";
    let Some(base) = std::env::var_os("MICROSNAP_REFLINK_DIR") else {
        println!("SKIP {test}: MICROSNAP_REFLINK_DIR (a directory on XFS or btrfs) is not set");
        return;
    };
    if !python_available(test) {
        return;
    }
    let dir = tempfile::tempdir_in(base).unwrap();
    let home = microsnap::home::Home::open(&dir.path().join("home")).unwrap();
    make_image(&home.images_dir(), crate::support::IMAGE_REF, &[]);
    let sb = microsnap::sandbox::create(
        &home,
        "sb",
        &microsnap::sandbox::SandboxSource::Image {
            image: crate::support::IMAGE_REF.to_string(),
            size_bytes: Some(64 * MIB),
            fstype: None,
        },
        &microsnap::progress::Monitor::none(),
    )
    .unwrap();
    let data = vec![0x77u8; 4 * MIB as usize];
    crate::support::write_at(&sb.upper_path, 8 * MIB, &data);
    File::open(&sb.upper_path).unwrap().sync_all().unwrap();
    microsnap::snapshot::create(
        &home,
        "sb",
        &crate::support::named("snap"),
        &microsnap::progress::Monitor::none(),
    )
    .unwrap();
    let u = usage::usage(&home).unwrap();
    let (sandbox, snapshot) = (&u.sandboxes[0], &u.snapshots[0]);
    assert_eq!(sandbox.space.shared_bytes, 4 * MIB, "{sandbox:?}");
    assert_eq!(snapshot.space.shared_bytes, 4 * MIB, "{snapshot:?}");
    assert_eq!(u.total.shared_bytes, 8 * MIB);
}

#[test]
fn usage_skips_a_stray_upper_case_name_in_the_blob_directory() {
    let home = TestHome::new();
    let layout = home.home.images_dir();
    let before = usage::usage(&home.home).unwrap();
    // 64 hex digits, but upper case: not a blob name microsnap writes or
    // prune judges, so not a blob to count either.
    fs::write(layout.join("blobs/sha256").join("AB".repeat(32)), b"stray").unwrap();
    let after = usage::usage(&home.home).unwrap();
    assert_eq!(after.total, before.total);
    assert_eq!(after.unreferenced_images, before.unreferenced_images);
}

#[test]
fn usage_counts_a_hard_linked_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::write(tree.join("a"), vec![7u8; 64 * 1024]).unwrap();
    fs::hard_link(tree.join("a"), tree.join("sub/b")).unwrap();
    let one = usage::file_space(&tree.join("a")).unwrap().unwrap();
    let both = usage::dir_space(&tree).unwrap().unwrap();
    assert_eq!(both.logical_bytes, one.logical_bytes);
    assert_eq!(both.allocated_bytes, one.allocated_bytes);
}

//! Helpers shared by the reliability tests: seeded homes with small sparse
//! uppers, child processes that re-exec the test binary, and the invariant
//! checks every crash, concurrency and fault test ends with.
#![allow(dead_code)] // each test crate uses a different subset

use microsnap::archive::{self, ExportOptions};
use microsnap::fuzz_targets::{self, IMAGE_REF};
use microsnap::home::Home;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, CreateOptions};
use microsnap::STAGING_PREFIX;
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Env var that turns a test binary into a child performing one operation.
pub const CHILD_OP_ENV: &str = "RELIABILITY_CHILD_OP";
/// Env var naming the child's home.
pub const CHILD_HOME_ENV: &str = "RELIABILITY_CHILD_HOME";
/// Set (to anything) by `make stress` for the long runs.
pub const STRESS_ENV: &str = "MICROSNAP_STRESS";

/// Logical size of the test uppers and the data written into them.
pub const UPPER_SIZE: u64 = 64 << 20;
pub const DATA_EXTENTS: u64 = 8;
pub const EXTENT_LEN: usize = 256 << 10;

pub fn stress() -> bool {
    std::env::var_os(STRESS_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// A deterministic generator (SplitMix64) so every run is reproducible from
/// its printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        microsnap::fault::splitmix64(self.0)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// Fill `len` bytes from a seed.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The shape of a test upper: its logical size and the data written into it.
#[derive(Clone, Copy, Debug)]
pub struct UpperShape {
    pub size: u64,
    pub extents: u64,
    pub extent_len: usize,
}

/// The usual test upper: 64 MiB sparse with 2 MiB of data.
pub const DEFAULT_SHAPE: UpperShape = UpperShape {
    size: UPPER_SIZE,
    extents: DATA_EXTENTS,
    extent_len: EXTENT_LEN,
};

/// Write scattered data extents into a sandbox's upper (64 MiB sparse).
pub fn scribble(upper: &Path, seed: u64) {
    scribble_shaped(upper, seed, DEFAULT_SHAPE);
}

/// [`scribble`] for an upper of `shape`.
pub fn scribble_shaped(upper: &Path, seed: u64, shape: UpperShape) {
    let f = fs::OpenOptions::new().write(true).open(upper).unwrap();
    for i in 0..shape.extents {
        let offset = i * (shape.size / shape.extents) + 4096 * (seed % 7);
        f.write_all_at(&pattern(seed * 100 + i, shape.extent_len), offset)
            .unwrap();
    }
    f.sync_all().unwrap();
}

pub fn new_sandbox(home: &Home, name: &str, seed: u64) {
    new_sandbox_shaped(home, name, seed, DEFAULT_SHAPE);
}

/// [`new_sandbox`] with an upper of `shape`.
pub fn new_sandbox_shaped(home: &Home, name: &str, seed: u64, shape: UpperShape) {
    sandbox::create(
        home,
        name,
        &SandboxSource::Image {
            image: IMAGE_REF.into(),
            size_bytes: Some(shape.size),
            fstype: None,
        },
        &Monitor::none(),
    )
    .unwrap();
    scribble_shaped(
        &home.sandboxes_dir().join(name).join("upper.ext4"),
        seed,
        shape,
    );
}

/// Create sandbox `name` from `snapshot` (its upper is a copy of the
/// snapshot's; snapshots of it name `snapshot` as their parent).
pub fn fork(home: &Home, snapshot: &str, name: &str) {
    sandbox::create(
        home,
        name,
        &SandboxSource::Snapshot {
            name_or_path: snapshot.into(),
        },
        &Monitor::none(),
    )
    .unwrap();
}

pub fn snap(home: &Home, sandbox: &str, name: &str, algorithm: Option<Algorithm>) -> String {
    snapshot::create(
        home,
        sandbox,
        &CreateOptions {
            name: Some(name.into()),
            record_integrity: algorithm.is_some(),
            integrity_algorithm: algorithm,
            ..Default::default()
        },
        &Monitor::none(),
    )
    .unwrap()
    .digest
}

/// The template every crash iteration starts from:
/// - image `alpine:3.20`; sandbox `sb` (64 MiB, 2 MiB of data, changed
///   after the snapshots were taken, so a new snapshot differs);
/// - snapshots `base` and `victim` (merkle integrity), no children;
/// - `<dir>/chain.tar.zst`: an archive of two snapshots (parent + child)
///   that are not in the home.
pub struct Template {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub archive: PathBuf,
    pub base_digest: String,
    pub victim_digest: String,
    pub archive_digests: Vec<String>,
}

impl Template {
    pub fn build() -> Template {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("template");
        let home = microsnap::open_home(&root).unwrap();
        fuzz_targets::write_test_image(&home.images_dir()).unwrap();
        new_sandbox(&home, "sb", 1);
        let base_digest = snap(&home, "sb", "base", Some(Algorithm::MerkleSha256V1));
        let victim_digest = snap(&home, "sb", "victim", Some(Algorithm::MerkleSha256V1));
        // A two-snapshot chain, exported and then removed from the home.
        new_sandbox(&home, "chain-src", 2);
        let p = snap(
            &home,
            "chain-src",
            "chain-parent",
            Some(Algorithm::MerkleSha256V1),
        );
        fork(&home, "chain-parent", "chain-child-src");
        scribble(&home.sandboxes_dir().join("chain-child-src/upper.ext4"), 3);
        let c = snap(&home, "chain-child-src", "chain-child", None);
        let archive_path = dir.path().join("chain.tar.zst");
        archive::export(
            &home,
            "chain-child",
            &archive_path,
            &ExportOptions {
                with_parents: true,
                ..Default::default()
            },
            &Monitor::none(),
        )
        .unwrap();
        snapshot::remove(&home, "chain-child", false).unwrap();
        snapshot::remove(&home, "chain-parent", false).unwrap();
        sandbox::remove(&home, "chain-child-src").unwrap();
        sandbox::remove(&home, "chain-src").unwrap();
        scribble(&home.sandboxes_dir().join("sb/upper.ext4"), 9);
        drop(home);
        Template {
            home: root,
            archive: archive_path,
            base_digest,
            victim_digest,
            archive_digests: vec![p, c],
            dir,
        }
    }

    /// A fresh copy of the template home at `dest`. The index is keyed by
    /// absolute paths, so the copy's index is rebuilt for its own paths.
    pub fn instantiate(&self, dest: &Path) {
        copy_tree(&self.home, dest);
        // The rows name the template's paths, whose artifacts exist, so a
        // reindex alone would keep them: empty the table first, straight
        // in the file (the engine's tables are not part of its API).
        rusqlite::Connection::open(dest.join(microsnap::home::DB_FILE))
            .and_then(|c| c.execute("DELETE FROM snapshot_index", []))
            .unwrap();
        let home = microsnap::open_home(dest).unwrap();
        snapshot::reindex(&home, None).unwrap();
    }
}

/// Copy a tree keeping holes (uppers are 64 MiB sparse). No fsync: these
/// are scratch copies, and fsync on a busy disk is what makes tests slow.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            copy_file_sparse(&src, &dst);
        }
    }
}

fn copy_file_sparse(src: &Path, dst: &Path) {
    let input = File::open(src).unwrap();
    let output = File::create(dst).unwrap();
    let mut buf = Vec::new();
    for extent in microsnap::sparse::data_extents(&input).unwrap() {
        buf.resize(extent.len as usize, 0);
        input.read_exact_at(&mut buf, extent.offset).unwrap();
        output.write_all_at(&buf, extent.offset).unwrap();
    }
    output.set_len(input.metadata().unwrap().len()).unwrap();
}

// ---------------------------------------------------------------------------
// child processes

/// Start this test binary as a child running only `child_test` with the
/// operation `op` on `home`, with `fault` as `MICROSNAP_FAULT` (if any).
pub fn spawn_child(child_test: &str, op: &str, home: &Path, fault: Option<&str>) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        child_test,
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(CHILD_OP_ENV, op)
    .env(CHILD_HOME_ENV, home)
    .env_remove(microsnap::fault::FAULT_ENV)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    if let Some(f) = fault {
        cmd.env(microsnap::fault::FAULT_ENV, f);
    }
    cmd.spawn().unwrap()
}

/// In a child: the operation and home, when this process is one.
pub fn child_request() -> Option<(String, PathBuf)> {
    let op = std::env::var(CHILD_OP_ENV).ok()?;
    let home = std::env::var_os(CHILD_HOME_ENV)?;
    Some((op, PathBuf::from(home)))
}

// ---------------------------------------------------------------------------
// invariants

/// (path, digest) pairs.
pub type Set = BTreeSet<(PathBuf, String)>;

pub fn indexed(home: &Home) -> Set {
    snapshot::list(home)
        .unwrap()
        .into_iter()
        .map(|h| (h.path, h.digest))
        .collect()
}

/// The invariants that must hold on a home nobody is using, after it has
/// been reopened. Returns the index set (equal to a fresh Reindex's). Each
/// failure names what broke.
pub fn check_home(home: &Home) -> Result<Set, String> {
    // tmp/ holds no stale staging after open (nobody is running).
    let stale: Vec<String> = names(&home.tmp_dir())
        .into_iter()
        .filter(|n| n.starts_with(STAGING_PREFIX))
        .collect();
    if !stale.is_empty() {
        return Err(format!("stale staging after open: {stale:?}"));
    }
    // No half-written directory in snapshots/: every entry opens and verifies.
    for name in names(&home.snapshots_dir()) {
        let path = home.snapshots_dir().join(&name);
        if name.starts_with('.') {
            return Err(format!("hidden entry in snapshots/: {name}"));
        }
        let art = snapshot::open_dir(&path).map_err(|e| format!("snapshots/{name}: {e}"))?;
        snapshot::verify_artifact(&art, &Monitor::none())
            .map_err(|e| format!("snapshots/{name} does not verify: {e}"))?;
    }
    // ListDir agrees.
    let listing = snapshot::list_dir(&home.snapshots_dir()).map_err(|e| e.to_string())?;
    if let Some((p, e)) = listing.skipped.first() {
        return Err(format!("list_dir skipped {}: {e}", p.display()));
    }
    // Every listed handle opens, with the digest the index says.
    let listed = indexed(home);
    for (path, digest) in &listed {
        let art = snapshot::open_dir(path)
            .map_err(|e| format!("listed {} does not open: {e}", path.display()))?;
        if &art.digest != digest {
            return Err(format!(
                "listed {} has digest {} but the index says {digest}",
                path.display(),
                art.digest
            ));
        }
    }
    // The index equals what a fresh Reindex finds.
    snapshot::reindex(home, None).map_err(|e| format!("reindex: {e}"))?;
    let after = indexed(home);
    if after != listed {
        return Err(format!(
            "index differs from Reindex: only in index {:?}, only after reindex {:?}",
            listed.difference(&after).collect::<Vec<_>>(),
            after.difference(&listed).collect::<Vec<_>>()
        ));
    }
    check_sandboxes(home)?;
    Ok(after)
}

/// Every sandbox record has its directory and an upper of the recorded size;
/// every sandbox directory has a record.
pub fn check_sandboxes(home: &Home) -> Result<(), String> {
    let records = sandbox::list(home).map_err(|e| e.to_string())?;
    let mut recorded = BTreeSet::new();
    for sb in &records {
        let meta = fs::metadata(&sb.upper_path)
            .map_err(|e| format!("sandbox {} upper {}: {e}", sb.name, sb.upper_path.display()))?;
        if meta.len() != sb.size_bytes {
            return Err(format!("sandbox {} upper has size {}", sb.name, meta.len()));
        }
        recorded.insert(sb.name.clone());
    }
    for name in names(&home.sandboxes_dir()) {
        if !recorded.contains(&name) {
            return Err(format!("sandboxes/{name} has no record"));
        }
    }
    Ok(())
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Bytes of a file (for comparing uppers before and after).
pub fn file_digest(path: &Path) -> String {
    microsnap::integrity::compute(path, Algorithm::MerkleSha256V1, &Monitor::none()).unwrap()
}

pub fn touch(path: &Path) {
    File::create(path).unwrap();
}

//! Helpers shared by the `engine_*` tests: a temporary home with a real OCI
//! image in it, sandboxes on small sparse uppers, hand-built qcow2 headers, a
//! fingerprint of everything a failing call must leave alone, and helper
//! processes (the test binary re-executed) for crash and race tests.
#![allow(dead_code)] // each test crate uses a different subset

pub mod archive;
pub mod image;
pub mod registry;
pub mod sparse_vectors;
pub mod vector_sets;

use microsnap::error::{ErrorCode, Result};
use microsnap::home::Home;
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, Sandbox, SandboxSource};
use microsnap::snapshot::{self, Artifact, CreateOptions, SnapshotHandle};
use std::collections::hash_map::DefaultHasher;
use std::fs::{self, File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const MIB: u64 = 1 << 20;
pub const IMAGE_REF: &str = "alpine:3.20";
pub use image::make_image;

/// An empty home at `<tempdir>/home`; keep the TempDir alive as long as the home.
pub fn empty_home() -> (tempfile::TempDir, Home) {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = Home::open(&dir.path().join("home")).expect("open home");
    (dir, home)
}

/// A home in a temporary directory with the `alpine:3.20` test image in
/// `<home>/images`. `dir` outlives `home` (fields drop in order).
pub struct TestHome {
    pub home: Home,
    pub image_digest: String,
    pub dir: tempfile::TempDir,
}

impl TestHome {
    pub fn new() -> TestHome {
        let (dir, home) = empty_home();
        let image_digest = make_image(&home.images_dir(), IMAGE_REF, &[]);
        TestHome {
            home,
            image_digest,
            dir,
        }
    }

    /// A scratch path outside the home.
    pub fn outside(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A never-started sandbox on a fresh sparse upper of `size` bytes.
    pub fn sandbox(&self, name: &str, size: u64) -> Sandbox {
        sandbox::create(
            &self.home,
            name,
            &SandboxSource::Image {
                image: IMAGE_REF.to_string(),
                size_bytes: Some(size),
                fstype: None,
            },
            &Monitor::none(),
        )
        .expect("create sandbox from image")
    }

    /// A sandbox with `data` written at each offset of its upper.
    pub fn sandbox_with(&self, name: &str, size: u64, writes: &[(u64, &[u8])]) -> Sandbox {
        let sb = self.sandbox(name, size);
        for (offset, data) in writes {
            write_at(&sb.upper_path, *offset, data);
        }
        sb
    }

    /// Snapshot `sandbox` under the bare name `name`, no integrity.
    pub fn snapshot(&self, sandbox: &str, name: &str) -> Artifact {
        snapshot::create(&self.home, sandbox, &named(name), &Monitor::none())
            .expect("create snapshot")
    }

    /// A sandbox created from the snapshot `reference` (name, digest or path).
    pub fn sandbox_from(&self, name: &str, reference: &str) -> Result<Sandbox> {
        sandbox::create(
            &self.home,
            name,
            &SandboxSource::Snapshot {
                name_or_path: reference.to_string(),
            },
            &Monitor::none(),
        )
    }

    pub fn state(&self, extra_dirs: &[&Path]) -> HomeState {
        home_state(&self.home, extra_dirs)
    }
}

/// Options for a bare-named snapshot.
pub fn named(name: &str) -> CreateOptions {
    CreateOptions {
        name: Some(name.to_string()),
        ..CreateOptions::default()
    }
}

/// Options for a snapshot at an explicit path.
pub fn at_path(path: &Path) -> CreateOptions {
    CreateOptions {
        path: Some(path.to_path_buf()),
        ..CreateOptions::default()
    }
}

/// The error code of a call that must fail.
pub fn code_of<T: std::fmt::Debug>(result: Result<T>) -> ErrorCode {
    match result {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.code(),
    }
}

/// Assert a call fails with `code`; returns the error's message.
#[track_caller]
pub fn expect_code<T: std::fmt::Debug>(result: Result<T>, code: ErrorCode) -> String {
    match result {
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "wrong code for error: {e}");
            e.to_string()
        }
    }
}

/// A sparse file of `size` bytes with `data` written at each offset.
pub fn sparse_file(path: &Path, size: u64, writes: &[(u64, &[u8])]) {
    let f = File::create(path).expect("create sparse file");
    f.set_len(size).expect("set_len");
    for (offset, data) in writes {
        f.write_all_at(data, *offset).expect("write");
    }
    f.sync_all().expect("fsync");
}

pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for write");
    f.write_all_at(data, offset).expect("write");
    f.sync_all().expect("fsync");
}

pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = File::open(path).expect("open for read");
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, offset).expect("read");
    buf
}

/// Invert one byte in place (size and holes elsewhere unchanged).
pub fn flip_byte(path: &Path, offset: u64) {
    let b = read_at(path, offset, 1)[0];
    write_at(path, offset, &[!b]);
}

/// Deterministic bytes (xorshift64), different per seed; zero bytes occur.
/// The one generator of this binary: tests that compare against a reference
/// computation use it directly, tests that need data use [`pattern`].
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// [`pseudo_random`] with the low bit of every byte set, so data never looks
/// like a hole.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = pseudo_random(len, seed);
    for b in &mut bytes {
        *b |= 1;
    }
    bytes
}

/// A qcow2 version-3 header (104 bytes) padded to one 64 KiB cluster, with
/// an optional backing file name stored right after the header, as qemu does.
pub fn qcow2_image(virtual_size: u64, backing: Option<&str>) -> Vec<u8> {
    let mut h = vec![0u8; 65536];
    h[0..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    if let Some(name) = backing {
        h[8..16].copy_from_slice(&104u64.to_be_bytes());
        h[16..20].copy_from_slice(&(name.len() as u32).to_be_bytes());
        h[104..104 + name.len()].copy_from_slice(name.as_bytes());
    }
    h[20..24].copy_from_slice(&16u32.to_be_bytes()); // cluster_bits
    h[24..32].copy_from_slice(&virtual_size.to_be_bytes());
    h[96..100].copy_from_slice(&4u32.to_be_bytes()); // refcount_order
    h[100..104].copy_from_slice(&104u32.to_be_bytes()); // header_length
    h
}

pub fn tool_available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Entries of `dir` (names), sorted; empty if it does not exist.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Every name containing the staging prefix under `dir` (not recursive).
pub fn staging_in(dir: &Path) -> Vec<String> {
    names_in(dir)
        .into_iter()
        .filter(|n| n.starts_with(microsnap::STAGING_PREFIX))
        .collect()
}

/// What a failing call must not change: the index as `list` reports it, the
/// sandbox records, and every file under the home (and `extra_dirs`) with
/// its type, size and content hash. The database files themselves are left
/// out: readers may touch the WAL.
#[derive(Debug, PartialEq)]
pub struct HomeState {
    pub snapshots: Vec<SnapshotHandle>,
    pub sandboxes: Vec<Sandbox>,
    pub files: Vec<(String, String, u64, u64)>,
}

pub fn home_state(home: &Home, extra_dirs: &[&Path]) -> HomeState {
    let mut files = Vec::new();
    walk(home.root(), home.root(), &mut files);
    for d in extra_dirs {
        walk(d, d, &mut files);
    }
    let db = home.root().join(microsnap::home::DB_FILE);
    files.retain(|(p, ..)| !p.starts_with(&*db.to_string_lossy()));
    files.sort();
    HomeState {
        snapshots: snapshot::list(home).expect("list snapshots"),
        sandboxes: sandbox::list(home).expect("list sandboxes"),
        files,
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String, u64, u64)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for entry in rd {
        let entry = entry.expect("dir entry");
        let path = entry.path();
        let rel = format!(
            "{}/{}",
            root.display(),
            path.strip_prefix(root).unwrap_or(&path).display()
        );
        let meta = fs::symlink_metadata(&path).expect("lstat");
        if meta.is_dir() {
            out.push((rel, "dir".into(), 0, 0));
            walk(root, &path, out);
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).expect("readlink");
            out.push((rel, format!("symlink {}", target.display()), 0, 0));
        } else {
            out.push((rel, "file".into(), meta.len(), content_hash(&path, &meta)));
        }
    }
}

/// Content hash of a file; big files (sparse uppers) hash their data only
/// where it is cheap: the first and last MiB plus inode and mtime.
fn content_hash(path: &Path, meta: &fs::Metadata) -> u64 {
    let mut h = DefaultHasher::new();
    let mut f = File::open(path).expect("open");
    if meta.len() <= 8 * MIB {
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).expect("read");
        buf.hash(&mut h);
    } else {
        let head = read_at(path, 0, MIB as usize);
        let tail = read_at(path, meta.len() - MIB, MIB as usize);
        (head, tail, meta.ino(), meta.mtime(), meta.mtime_nsec()).hash(&mut h);
    }
    h.finish()
}

// ---------------------------------------------------------------------------
// Helper processes: the test binary re-executed to run one ignored "helper"
// test, configured through environment variables.

/// A running helper process; killed (SIGKILL) when dropped.
pub struct Helper {
    pub child: Child,
    /// Lines of the helper's stdout, read by a thread so waits can time out.
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

/// How long a helper may take to reach the line a test waits for.
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

/// Re-execute this test binary to run the ignored test `helper` with `envs`.
pub fn spawn_helper(helper: &str, envs: &[(&str, &str)]) -> Helper {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--ignored",
        "--exact",
        helper,
        "--nocapture",
        "--test-threads=1",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn helper process");
    let stdout: ChildStdout = child.stdout.take().expect("helper stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Helper {
        child,
        lines: rx,
        seen: Vec::new(),
    }
}

impl Helper {
    /// Read lines until one contains `prefix`; returns the line from there
    /// on (libtest prints "test NAME ... " before a test's first output, on
    /// the same line). Panics with everything seen if the helper exits first.
    pub fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(HELPER_TIMEOUT) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(at) = line.find(prefix) {
                        return line[at..].to_string();
                    }
                }
                Err(e) => panic!(
                    "helper did not print {prefix:?} ({e}); output: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill helper");
        let status = self.child.wait().expect("wait helper");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

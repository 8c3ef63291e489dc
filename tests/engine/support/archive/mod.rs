//! Helpers shared by the archive tests: temporary homes, hand-built
//! artifacts with real sparse uppers, and listings of a directory tree and
//! of the index to prove a failed import changed nothing.
#![allow(dead_code)]
pub mod corpus;
pub mod truncation;
use microsnap::home::Home;
use microsnap::integrity::{self, Algorithm};
use microsnap::manifest::{DiskFormat, ImagePin, Manifest, Upper, UpperIntegrity};
use microsnap::progress::Monitor;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A file of the microsandbox v0.6.3 vector set (`tests/vectors/msb-0.6.3`).
pub fn vectors(rel: &str) -> PathBuf {
    crate::support::vector_sets::v063(rel)
}

pub use crate::support::empty_home as new_home;

/// Write a sparse file of `size` with `data` at each offset.
pub fn sparse_file(path: &Path, size: u64, data: &[(u64, Vec<u8>)]) {
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (offset, bytes) in data {
        f.write_all_at(bytes, *offset).unwrap();
    }
    f.sync_all().unwrap();
}

/// A recognisable, incompressible-ish block of `len` bytes.
pub fn pattern(seed: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut h = Sha256::digest([seed]).to_vec();
    while out.len() < len {
        out.extend_from_slice(&h);
        h = Sha256::digest(&h).to_vec();
    }
    out.truncate(len);
    out
}

pub struct SnapSpec<'a> {
    pub size: u64,
    pub data: Vec<(u64, Vec<u8>)>,
    pub parent: Option<&'a str>,
    pub integrity: Option<Algorithm>,
    pub label: &'a str,
    /// The pinned image's manifest digest (a fixed fake one by default).
    pub image_digest: Option<String>,
}

impl Default for SnapSpec<'_> {
    fn default() -> Self {
        SnapSpec {
            size: 8 << 20,
            data: vec![(4096, pattern(1, 8192)), (6 << 20, pattern(2, 4096))],
            parent: None,
            integrity: Some(Algorithm::MerkleSha256V1),
            label: "x",
            image_digest: None,
        }
    }
}

/// Build an artifact directory `<dir>/<name>` by hand (upper first, then the
/// manifest, as create does) and return its digest.
pub fn make_artifact(dir: &Path, name: &str, spec: &SnapSpec) -> String {
    let art = dir.join(name);
    fs::create_dir_all(&art).unwrap();
    let upper = art.join("upper.ext4");
    sparse_file(&upper, spec.size, &spec.data);
    let integrity = spec.integrity.map(|a| UpperIntegrity {
        algorithm: a.name().to_string(),
        digest: integrity::compute(&upper, a, &Monitor::none()).unwrap(),
    });
    let manifest = Manifest {
        schema: 1,
        format: DiskFormat::Raw,
        fstype: "ext4".into(),
        image: ImagePin {
            reference: "alpine:3.20".into(),
            manifest_digest: spec
                .image_digest
                .clone()
                .unwrap_or_else(|| format!("sha256:{}", "ab".repeat(32))),
        },
        parent: spec.parent.map(str::to_string),
        created_at: "2026-05-01T12:00:00.5+00:00".into(),
        labels: BTreeMap::from([("k".to_string(), spec.label.to_string())]),
        upper: Upper {
            file: "upper.ext4".into(),
            size_bytes: spec.size,
            integrity,
        },
        source_sandbox: Some("sb".into()),
    };
    manifest.write_to(&art).unwrap();
    manifest.digest()
}

/// Every path under `root` with its kind, size and a content hash, sorted:
/// two equal listings mean nothing was added, removed or changed.
pub fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            out.push(format!("{rel}/"));
            walk(root, &p, out);
        } else {
            let hash = hex(&Sha256::digest(fs::read(&p).unwrap()));
            out.push(format!("{rel} {} {hash}", md.len()));
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The index as (path, digest) pairs, sorted (what a listing reads).
pub fn index_rows(home: &Home) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = microsnap::snapshot::list(home)
        .unwrap()
        .into_iter()
        .map(|h| (h.path.to_string_lossy().into_owned(), h.digest))
        .collect();
    rows.sort();
    rows
}

pub fn allocated(path: &Path) -> u64 {
    microsnap::sparse::allocated_bytes(path).unwrap()
}

//! The inputs the rows measure, built once into the cache: the F1/F2/F3
//! disks, a home of many indexed snapshots, and the Go list program.
use crate::shell::{q, rm, sh, sh_out};
use crate::{Res, GIB, MIB, REPO};
use microsnap::home::Home;
use microsnap::snapshot::{self, Artifact};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const TREE_CAP: u64 = 400 * MIB;

pub struct Fixture {
    pub id: &'static str,
    pub path: PathBuf,
}

fn xorshift_fill(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_exact_mut(8) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
}

fn write_random(file: &File, offset: u64, len: u64, seed: &mut u64) -> Res<()> {
    let mut buf = vec![0u8; (8 * MIB) as usize];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(buf.len() as u64) as usize;
        xorshift_fill(&mut buf[..n], seed);
        file.write_all_at(&buf[..n], offset + at)?;
        at += n as u64;
    }
    Ok(())
}

/// Build `path` with `make` under a temporary name unless it exists.
/// Returns true if it was already there (warm).
pub fn cached(path: &Path, make: impl FnOnce(&Path) -> Res<()>) -> Res<bool> {
    if path.exists() {
        return Ok(true);
    }
    let tmp = path.with_extension("partial");
    rm(&tmp);
    make(&tmp)?;
    fs::rename(&tmp, path)?;
    Ok(false)
}

pub fn build_f1(out: &Path, cache: &Path) -> Res<()> {
    let tree = cache.join("f1-tree");
    rm(&tree);
    fs::create_dir_all(&tree)?;
    let stdlib = sh_out("python3 -c 'import sysconfig;print(sysconfig.get_paths()[\"stdlib\"])'");
    if stdlib.is_empty() {
        return Err("python3 is needed to locate the standard library for F1".into());
    }
    let (python, doc) = (tree.join("python"), tree.join("doc"));
    fs::create_dir_all(&python)?;
    fs::create_dir_all(&doc)?;
    sh(&format!(
        "tar -C {} --exclude=site-packages -cf - . | tar -C {} -xf -",
        q(Path::new(&stdlib)),
        q(&python)
    ))?;
    sh(&format!(
        "tar -C /usr/share/doc -cf - . | tar -C {} -xf -",
        q(&doc)
    ))?;
    // Cap the tree: drop the largest files until it fits.
    let size: u64 = sh_out(&format!("du -sb {} | cut -f1", q(&tree)))
        .parse()
        .unwrap_or(0);
    if size > TREE_CAP {
        let mut excess = size - TREE_CAP;
        let list = sh_out(&format!(
            "find {} -type f -printf '%s %p\\n' | sort -rn",
            q(&tree)
        ));
        for line in list.lines() {
            if excess == 0 {
                break;
            }
            if let Some((n, p)) = line.split_once(' ') {
                let n: u64 = n.parse().unwrap_or(0);
                let _ = fs::remove_file(p);
                excess = excess.saturating_sub(n);
            }
        }
    }
    File::create(out)?.set_len(4 * GIB)?;
    sh(&format!("mkfs.ext4 -q -F -d {} {}", q(&tree), q(out)))?;
    rm(&tree);
    Ok(())
}

pub fn build_f2(out: &Path) -> Res<()> {
    let f = File::create(out)?;
    f.set_len(4 * GIB)?;
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    for i in 0..16u64 {
        // 4 MiB extents spread over the disk, not aligned to anything special.
        write_random(&f, i * (250 * MIB) + 12345 * 4096, 4 * MIB, &mut seed)?;
    }
    f.sync_all()?;
    Ok(())
}

pub fn build_f3(out: &Path) -> Res<()> {
    let f = File::create(out)?;
    let mut seed = 0x2545_f491_4f6c_dd1d;
    write_random(&f, 0, GIB, &mut seed)?;
    f.sync_all()?;
    Ok(())
}

/// A home holding `count` real artifacts (tiny sparse uppers, distinct
/// manifests), indexed with reindex.
pub fn home_with_snapshots(root: &Path, template: &Artifact, count: usize) -> Res<Home> {
    rm(root);
    let home = Home::open(root)?;
    let snaps = home.snapshots_dir();
    for i in 0..count {
        let dir = snaps.join(format!("s-{i:05}"));
        fs::create_dir_all(&dir)?;
        let mut m = template.manifest().expect("a v0.6.3 template").clone();
        m.labels = BTreeMap::from([("seq".to_string(), i.to_string())]);
        m.upper.size_bytes = MIB;
        m.upper.integrity = None;
        m.parent = None;
        fs::write(dir.join("manifest.json"), m.canonical_bytes())?;
        File::create(dir.join(&m.upper.file))?.set_len(MIB)?;
    }
    let n = snapshot::reindex(&home, None)?;
    if n as usize != count {
        return Err(format!("reindex found {n} of {count} artifacts").into());
    }
    Ok(home)
}

/// Build tools/bench-go-list against the binding at `binding`, linked to
/// this release build's library through a generated pkg-config file.
pub fn build_go_list(binding: &Path, work: &Path) -> Res<PathBuf> {
    let release = Path::new(REPO).join("target/release");
    let lib = release.join("libmicrosnap.so");
    if !lib.exists() {
        return Err(format!(
            "{} is missing: run `cargo build --release --lib`",
            lib.display()
        )
        .into());
    }
    let soname = release.join("libmicrosnap.so.0");
    if !soname.exists() {
        std::os::unix::fs::symlink("libmicrosnap.so", &soname)?;
    }
    let include = binding.join("../../include");
    let dir = work.join("go-list");
    fs::create_dir_all(&dir)?;
    fs::copy(
        Path::new(REPO).join("tools/bench-go-list/main.go"),
        dir.join("main.go"),
    )?;
    fs::write(
        dir.join("go.mod"),
        format!(
            "module benchgolist\n\ngo 1.24\n\nrequire github.com/microsnap/microsnap/bindings/go v0.0.0\n\n\
             replace github.com/microsnap/microsnap/bindings/go => {}\n",
            fs::canonicalize(binding)?.display()
        ),
    )?;
    fs::write(
        dir.join("microsnap.pc"),
        format!(
            "Name: microsnap\nDescription: bench build\nVersion: 0\nCflags: -I{}\n\
             Libs: -L{} -lmicrosnap -Wl,-rpath,{}\n",
            fs::canonicalize(include)?.display(),
            release.display(),
            release.display()
        ),
    )?;
    // The binding's own dependencies: their checksums from its go.sum, and
    // -mod=mod lets go add their requirements (and the go version they
    // need) to this generated go.mod.
    fs::copy(binding.join("go.sum"), dir.join("go.sum"))?;
    let out = Command::new("go")
        .args([
            "build",
            "-mod=mod",
            "-tags",
            "microsnap_pkgconfig",
            "-o",
            "bench-go-list",
            ".",
        ])
        .current_dir(&dir)
        .env("PKG_CONFIG_PATH", &dir)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "go build of bench-go-list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(dir.join("bench-go-list"))
}

//! Shell commands and file helpers shared by the fixtures and the rows.
use crate::Res;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run a shell pipeline, timed; fails loudly if it fails.
pub fn sh(cmd: &str) -> Res<Duration> {
    let start = Instant::now();
    let out = Command::new("sh").arg("-c").arg(cmd).output()?;
    let elapsed = start.elapsed();
    if !out.status.success() {
        return Err(format!(
            "`{cmd}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(elapsed)
}

pub fn sh_out(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "'\\''"))
}

pub fn allocated(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.blocks() * 512).unwrap_or(0)
}

pub fn rm(p: &Path) {
    if p.is_dir() {
        let _ = fs::remove_dir_all(p);
    } else {
        let _ = fs::remove_file(p);
    }
}

/// The copy rows' peer, timed: `cp --sparse=always --reflink=auto SRC DST &&
/// sync DST` into a fresh `dst`, removed again afterwards.
pub fn cp_durable(src: &Path, dst: &Path) -> Res<Duration> {
    rm(dst);
    let d = sh(&format!(
        "cp --sparse=always --reflink=auto {} {} && sync {}",
        q(src),
        q(dst),
        q(dst)
    ))?;
    rm(dst);
    Ok(d)
}

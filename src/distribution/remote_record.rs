//! Where this home pushed each snapshot: `<home>/cache/remotes/<hex>`, one
//! `HOST/REPOSITORY` line per registry repository. A child pushed to
//! another repository of the same registry finds its parent's index there
//! and mounts the parent's packs instead of uploading them (DESIGN.md
//! "Push", step 1).
//!
//! Derived data, like the leaf lists: written atomically, ignored when
//! unreadable, and never trusted: what a recorded repository holds is
//! fetched and checked as any basis is.
use crate::error::{IoContext, Result};
use crate::home::Home;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

/// Most repositories remembered per snapshot (the newest are kept).
const MAX_PLACES: usize = 16;

fn file_for(home: &Home, digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| home.root().join("cache").join("remotes").join(hex))
}

/// The `HOST/REPOSITORY` places snapshot `digest` was pushed to.
pub fn places(home: &Home, digest: &str) -> Vec<String> {
    file_for(home, digest)
        .and_then(|path| fs::read_to_string(path).ok())
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Remember that `digest` is now in `host/repository` (best effort).
pub fn record(home: &Home, digest: &str, host: &str, repository: &str) {
    let _ = try_record(home, digest, &format!("{host}/{repository}"));
}

fn try_record(home: &Home, digest: &str, place: &str) -> Result<()> {
    let Some(path) = file_for(home, digest) else {
        return Ok(());
    };
    let mut lines: Vec<String> = places(home, digest)
        .into_iter()
        .filter(|p| p != place)
        .collect();
    lines.push(place.to_string());
    let keep = lines.len().saturating_sub(MAX_PLACES);
    let dir = path.parent().expect("a file under cache/remotes");
    fs::create_dir_all(dir).ctx("create", dir)?;
    // Unique per call: two pushes in one process may record at once.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp-{}-{n}", std::process::id()));
    let written = (|| -> Result<()> {
        let mut f = fs::File::create(&tmp).ctx("create", &tmp)?;
        for line in &lines[keep..] {
            writeln!(f, "{line}").ctx("write", &tmp)?;
        }
        f.sync_all().ctx("sync", &tmp)?;
        fs::rename(&tmp, &path).ctx("rename into place", &path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

//! Where the interop vector sets live: `tests/vectors/msb-0.6.3` and
//! `tests/vectors/msb-0.6.14`, copied into the repository (their README says
//! where from) so a fresh clone runs every test on its own.
//!
//! The two big v0.6.3 exports (`archives/single.tar`, 8 MiB, and
//! `archives/chain-with-parents.tar`, 6 MiB, almost all zeros) are stored
//! only in their `.tar.zst` form, which decompresses to the very same bytes
//! (`heads.tsv` records both digests). `v063` writes the plain `.tar` under
//! the target directory when a test asks for it.
#![allow(dead_code)]
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

pub const MSB_V063: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/msb-0.6.3");
pub const MSB_V0614: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/msb-0.6.14");

/// A file of the v0.6.3 set. A `.tar` stored only as `.tar.zst` is
/// decompressed into the target directory first.
pub fn v063(rel: &str) -> PathBuf {
    file_of(MSB_V063, rel)
}

/// A file of the v0.6.14 set (same rule as `v063`).
pub fn v0614(rel: &str) -> PathBuf {
    file_of(MSB_V0614, rel)
}

fn file_of(set: &str, rel: &str) -> PathBuf {
    let stored = Path::new(set).join(rel);
    let compressed = Path::new(set).join(format!("{rel}.zst"));
    if stored.exists() || !rel.ends_with(".tar") || !compressed.exists() {
        // Missing files stay missing: the caller's open names the path.
        return stored;
    }
    let set_name = Path::new(set).file_name().unwrap();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("vectors")
        .join(set_name)
        .join(rel);
    decompress(&compressed, &out)
        .unwrap_or_else(|e| panic!("decompressing {}: {e}", compressed.display()));
    out
}

/// Always rewritten (a few milliseconds), so a stale copy can never stand in
/// for the stored bytes; written under a unique name and renamed, so tests
/// running at the same time each see a whole file.
fn decompress(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to.parent().unwrap())?;
    let tmp = to.with_extension(format!(
        "tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut out = File::create(&tmp)?;
    zstd::stream::copy_decode(File::open(from)?, &mut out)?;
    out.sync_all()?;
    fs::rename(&tmp, to)
}

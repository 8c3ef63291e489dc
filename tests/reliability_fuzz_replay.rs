//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`)
//! through the same target bodies the nightly fuzzer runs
//! (`microsnap::fuzz_targets`), on stable, so `cargo test` proves that no
//! input the fuzzer ever kept crashes, hangs or panics.
//!
//! One test function: the ffi target needs the current directory to be a
//! scratch directory (fuzzed relative paths land there), and the current
//! directory is per process.
use std::path::{Path, PathBuf};
use std::time::Instant;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus");

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(CORPUS).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
    let files = corpus(target);
    assert!(!files.is_empty(), "no corpus for {target}");
    let t = Instant::now();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data)));
        if let Err(p) = outcome {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{target}: {} fails: {what}", file.display());
        }
    }
    println!(
        "fuzz replay: {target}: {} inputs in {:.1?}",
        files.len(),
        t.elapsed()
    );
    files.len()
}

#[test]
fn replay_every_corpus_file() {
    let scratch = tempfile::tempdir().unwrap();
    std::env::set_current_dir(scratch.path()).unwrap();
    let manifests = replay("manifest", microsnap::fuzz_targets::manifest);
    let archives = replay("archive_import", |d| {
        microsnap::fuzz_targets::archive_import(scratch.path(), d)
    });
    let args = replay("ffi_json", |d| {
        microsnap::fuzz_targets::ffi_json(scratch.path(), d)
    });
    assert!(manifests >= 20 && archives >= 20 && args >= 20);
}

/// The seeds are real: the vectors the corpus was seeded from import the
/// way their TSV says (a replay that never reached the importer would prove
/// nothing).
#[test]
fn archive_seeds_reach_the_importer() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("h");
    let home = microsnap::open_home(&root).unwrap();
    let single = Path::new(CORPUS).join("archive_import/single.tar.zst");
    let report =
        microsnap::archive::import(&home, &single, None, &microsnap::progress::Monitor::none())
            .unwrap();
    assert_eq!(report.imported.len(), 1);
}

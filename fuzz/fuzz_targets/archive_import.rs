//! Archive importer: tar and tar.zst bytes into a fresh home; Ok or a typed
//! error, never a panic, and nothing left behind on failure.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("microsnap-fuzz-import-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create scratch dir");
        d
    })
}

fuzz_target!(|data: &[u8]| microsnap::fuzz_targets::archive_import(scratch(), data));

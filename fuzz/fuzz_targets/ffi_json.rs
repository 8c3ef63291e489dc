//! C ABI JSON arguments: every export called with the fuzzed argument string
//! on a seeded home; known status codes only, valid JSON out-strings.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("microsnap-fuzz-ffi-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create scratch dir");
        // Relative names in fuzzed arguments (an export's "out") land here.
        std::env::set_current_dir(&d).expect("enter scratch dir");
        d
    })
}

fuzz_target!(|data: &[u8]| microsnap::fuzz_targets::ffi_json(scratch(), data));

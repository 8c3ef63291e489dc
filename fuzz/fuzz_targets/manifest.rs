//! Manifest parser: strict parse never panics; accepted input has a stable
//! canonical form and digest.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| microsnap::fuzz_targets::manifest(data));

//! The C ABI tests as one binary: golden JSON results, the generated header
//! and docs/abi.md against the library (the 100,000-snapshot listing is a
//! unit test, src/ffi/scale_tests.rs).

mod abi_doc;
mod golden;
mod header;

//! The C ABI tests as one binary: golden JSON results, scale, the generated
//! header and docs/abi.md against the library.

mod abi_doc;
mod golden;
mod header;
mod scale;

//! Export and import of snapshot archives (`.tar.zst`, `.tar`).
pub mod entry_check;
pub mod sparse_entry;
pub mod tar_format;
pub mod tar_reader;
pub mod tar_writer;

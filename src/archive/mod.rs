//! Export and import of snapshot archives (`.tar.zst` by default, `.tar`).
//!
//! Layout (microsandbox v0.6.3, SPEC-NOTES §8): one top-level directory per
//! snapshot named `digest_prefix(digest)`, its `manifest.json` first, then its
//! upper; ancestors first and the head last. `WithImage` adds an OCI layout
//! subset under `oci-image/`. Uppers are GNU sparse entries unless `dense`.
//! v0.6.14 snapshots use v0.6.14's members (`snapshots/<hex>/snapshot.json`,
//! `files/<hex>/<upper>`); the `msb-v0.6.14` format writes v0.6.14's whole
//! layout with `archive.json` (docs/engine.md, "Export formats").
//!
//! | file | concept |
//! |---|---|
//! | `tar_format.rs` | one 512-byte header (tar-rs's `Header`): strict numbers, checksum, long names |
//! | `sparse_entry.rs` | GNU old-sparse maps and their validation |
//! | `tar_reader.rs` / `tar_writer.rs` | streaming tar framing |
//! | `compression.rs` | zstd/plain detection, encoder and decoder settings |
//! | `entry_check.rs` | path safety, entry types, the layout rules |
//! | `layout_v0614.rs` | v0.6.14's member grammar |
//! | `inventory.rs` | v0.6.14's `archive.json` and its checks |
//! | `transport_digest.rs` | v0.6.14's BLAKE3 member transport digest |
//! | `layout_plan.rs` | what export writes per snapshot and format, v0.6.14's upper encoding |
//! | `image_subset.rs` | the `oci-image/` subtree both ways |
//! | `export.rs` / `import.rs` | the two operations |
pub mod compression;
pub mod entry_check;
mod export;
mod image_subset;
mod import;
pub mod inventory;
pub mod layout_plan;
pub mod layout_v0614;
pub mod sparse_entry;
pub mod tar_format;
pub mod tar_reader;
pub mod tar_writer;
pub mod transport_digest;

use crate::artifact::Artifact;
use std::path::PathBuf;

pub(crate) use export::chain_of;
pub use export::export;
pub use import::{import, import_named};

/// How to write an archive. `Default` is a sparse `.tar.zst` of the snapshot
/// alone at the measured default level and worker count.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Also write every ancestor (root first), found through the index or
    /// the snapshots directory. Fails if one is missing.
    pub with_parents: bool,
    /// Also write the pinned image's OCI blobs under `oci-image/`.
    pub with_image: bool,
    /// Write an uncompressed tar.
    pub plain_tar: bool,
    /// Write uppers as plain regular entries (holes as zeros) for readers that
    /// take nothing else, such as microsandbox v0.6.3.
    pub dense: bool,
    /// zstd level (1..=22); `None` = [`compression::DEFAULT_LEVEL`].
    pub level: Option<i32>,
    /// zstd worker threads; `None` = [`compression::default_threads`].
    pub threads: Option<u32>,
    /// The archive's layout: microsandbox v0.6.3's (default) or v0.6.14's.
    pub format: crate::artifact::ArtifactFormat,
}

#[derive(Clone, Debug)]
pub struct ExportReport {
    pub path: PathBuf,
    /// Digests of the exported snapshots, in archive order (head last).
    pub snapshots: Vec<String>,
    /// Bytes of the archive file.
    pub bytes_written: u64,
}

#[derive(Debug)]
pub struct ImportReport {
    /// `archive.json`'s head when there is one; else the snapshot no other
    /// imported snapshot names as parent (for a v0.6.3-only archive, the
    /// last-listed such one).
    pub head: Artifact,
    /// Every snapshot of the archive, in archive order, as now installed
    /// (already present identical ones included).
    pub imported: Vec<Artifact>,
    /// Image manifest digests added to `<home>/images`.
    pub images: Vec<String>,
    /// Members read and checked but not installed: the image cache files of
    /// a microsandbox v0.6.14 archive (`images/…`), which have no place in
    /// microsnap's OCI image store.
    pub skipped: Vec<String>,
}

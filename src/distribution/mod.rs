//! Push and pull of snapshots through OCI registries and OCI image layouts
//! (DESIGN.md "Distribution through OCI registries"; the byte-level
//! encodings are in docs/registry.md).
//!
//! One OCI image manifest per snapshot: its config is the snapshot's
//! descriptor bytes (so the config digest is the snapshot's identity), its
//! first layer the chunk index, the rest the packs of zstd-framed 64 KiB
//! chunks the index points into. Chunks are the leaves of
//! `microsnap-merkle-sha256-v1`, so dedup and end-to-end checks need no
//! extra pass.
//!
//! | file | concept |
//! |---|---|
//! | `reference.rs` | `HOST[:PORT]/REPO[:TAG\|@DIGEST]`, `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` |
//! | `media_types.rs` | media types and annotation keys |
//! | `chunk_index.rs` | the chunk index blob: encode, decode, merkle root |
//! | `packer.rs` | cutting an upper into chunks and new chunks into packs |
//! | `chunk_transfer.rs` | pull's chunks into place: local copies and Range fetches on workers, written in order |
//! | `objects.rs` | the image manifest of a snapshot, both ways |
//! | `store.rs` | `Store`: what push and pull need of a place that holds blobs and manifests |
//! | `layout.rs` / `oci_archive.rs` | the `oci:` and `oci-archive:` stores |
//! | `registry/` | the registry store: HTTP, auth, TLS, uploads |
//! | `leaf_cache.rs` | the home's leaf lists of local snapshots (pull copies chunks locally) |
//! | `remote_record.rs` | which registry repositories this home pushed each snapshot to (cross-repository mounts) |
//! | `push.rs` / `pull.rs` | the two operations |
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub mod chunk_index;
mod chunk_transfer;
pub mod layout;
pub mod leaf_cache;
pub mod media_types;
pub mod objects;
pub mod oci_archive;
pub mod packer;
mod pull;
mod push;
pub mod reference;
pub mod registry;
mod remote_record;
pub mod store;

pub use pull::pull;
pub use push::push;
pub use reference::Reference;

/// How to reach a registry. Shared by push and pull; ignored by the local
/// `oci:` and `oci-archive:` transports.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteOptions {
    /// Speak plain HTTP instead of HTTPS. Never implied.
    pub plain_http: bool,
    /// Explicit credentials; both or neither. They win over docker's config.
    pub username: Option<String>,
    pub password: Option<String>,
    /// A PEM file of CA certificates to verify the registry's TLS
    /// certificate against, instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// docker's `config.json` to take credentials from; `None` =
    /// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
    /// Requests in flight at once (uploads or downloads); `None` = 4.
    pub max_in_flight: Option<usize>,
    /// Seconds without progress after which a request fails with
    /// `registry_error`; `None` = 30.
    pub timeout_seconds: Option<u64>,
}

impl RemoteOptions {
    pub const DEFAULT_IN_FLIGHT: usize = 4;
    pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;

    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .unwrap_or(Self::DEFAULT_IN_FLIGHT)
            .clamp(1, 64)
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.timeout_seconds
                .unwrap_or(Self::DEFAULT_TIMEOUT_SECONDS)
                .max(1),
        )
    }
}

/// How to push.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushOptions {
    /// Push every ancestor too, root first, each tagged
    /// `sha256-<hex of its snapshot digest>`.
    pub with_parents: bool,
    /// Only for `oci-archive:`: write only what this local snapshot (a name,
    /// path or digest; an ancestor of the one pushed) does not already hold.
    pub since: Option<String>,
    #[serde(flatten)]
    pub remote: RemoteOptions,
}

/// How to pull.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullOptions {
    /// Pull every ancestor too (each from its `sha256-<hex>` tag in the same
    /// repository), root first, and record the lineage. Without it a parent
    /// that is not local is no obstacle: the head's manifest names every
    /// pack it needs.
    pub with_parents: bool,
    /// The head's directory name in the destination; `None` = the
    /// reference's tag, or the digest form when there is none.
    pub name: Option<String>,
    #[serde(flatten)]
    pub remote: RemoteOptions,
}

/// One snapshot a push sent (the head, and with `with_parents` each
/// ancestor, root first).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PushedSnapshot {
    pub snapshot_digest: String,
    pub manifest_digest: String,
    /// The tags it was given.
    pub tags: Vec<String>,
}

/// What a push did. Field names are the same in every language.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PushReport {
    pub reference: String,
    /// The head's image manifest digest.
    pub manifest_digest: String,
    pub snapshot_digest: String,
    /// Non-zero chunks of every snapshot pushed.
    pub chunks_total: u64,
    /// Chunks compressed into packs that were uploaded.
    pub chunks_uploaded: u64,
    /// Chunks the target already held (through a parent's index or a pack
    /// it already had).
    pub chunks_reused: u64,
    /// Blob bytes sent (packs, indexes, configs, manifests).
    pub bytes_uploaded: u64,
    /// Compressed bytes of the reused chunks.
    pub bytes_reused: u64,
    /// Root first, the head last.
    pub snapshots: Vec<PushedSnapshot>,
}

/// What a pull did. Field names are the same in every language.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PullReport {
    pub reference: String,
    pub manifest_digest: String,
    pub snapshot_digest: String,
    /// Non-zero chunks of every snapshot pulled.
    pub chunks_total: u64,
    pub chunks_downloaded: u64,
    /// Chunks not downloaded: copied from a local artifact.
    pub chunks_reused: u64,
    /// Blob bytes received (pack ranges, indexes, configs, manifests).
    pub bytes_downloaded: u64,
    /// Compressed bytes of the chunks not downloaded.
    pub bytes_reused: u64,
    /// Uncompressed bytes copied from local artifacts instead.
    pub bytes_copied_locally: u64,
    /// The snapshot was already in the destination: nothing was written.
    pub already_present: bool,
    /// Where the head is.
    pub path: String,
}

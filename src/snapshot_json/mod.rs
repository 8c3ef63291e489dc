//! `snapshot.json`: the snapshot descriptor of microsandbox v0.6.14
//! (vectors/msb-0.6.14/SPEC-NOTES.md §1–§6), the format current microsandbox
//! reads and writes in place of v0.6.3's `manifest.json` (`crate::manifest`).
//!
//! Parsing is v0.6.14's, step by step (§3): a pre-pass refusing duplicate
//! keys at any depth, a BOM and trailing characters (`duplicate_keys`);
//! typed decoding with unknown members refused at every level and nullable
//! members required; then `created_at` normalized (`timestamp`), extension
//! objects sorted (`extension_values`) and the checks of §1 in their order
//! (`validation`). Messages are microsandbox's, after their
//! `manifest parse error: ` prefix: `snapshot descriptor: …`.
//!
//! Identity is the SHA-256 of the canonical re-serialization of the parsed
//! and normalized value (§4), as for v0.6.3, but over the normalized
//! `created_at`, so one instant has one identity however it is spelled.
//! Extension numbers follow serde_json's `Value` model and we match
//! microsandbox even where its float parsing is not correctly rounded
//! (nc14; see `extension_values`).
//!
//! `translate` converts between this format and v0.6.3's manifest, with
//! v0.6.14's own migration and downgrade rules (§14).
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::manifest::{DiskFormat, ImagePin};

mod duplicate_keys;
mod extension_values;
mod fields;
#[cfg(test)]
mod parse_tests;
mod timestamp;
mod translate;
#[cfg(test)]
mod translate_tests;
mod validation;
#[cfg(test)]
mod vector_tests;

pub use validation::{ARTIFACT_KIND, MAX_JSON_SAFE_INTEGER, MERKLE_LEAF_SIZE, SCHEMA_VERSION};

/// The descriptor's file name inside an artifact directory.
pub const DESCRIPTOR_FILE: &str = "snapshot.json";

/// Names an upper file may not have (§1): the descriptors of both formats
/// and microsandbox's migration leftovers.
pub const RESERVED_NAMES: [&str; 4] = [
    "snapshot.json",
    "manifest.json",
    ".manifest.json.legacy",
    ".snapshot-migration.lock",
];

/// What the snapshot captures: disk only, or a resumable checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Disk,
    Resumable,
}

/// The recorded integrity of a file-state upper: a closed set (§1). The
/// variants are in v0.6.14's order, which its `unknown variant` message lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "algorithm", deny_unknown_fields)]
pub enum Integrity {
    /// Plain SHA-256 of the file: legacy only, never written by create.
    #[serde(rename = "sha256")]
    Sha256 { digest: String },
    /// v0.6.3's algorithm (`crate::integrity`'s sparse SHA-256).
    #[serde(rename = "msb-sparse-sha256-v1")]
    SparseSha256 { digest: String },
    /// What v0.6.14's create records.
    #[serde(rename = "msb-file-merkle-blake3-v1")]
    MerkleBlake3 {
        root: String,
        logical_size: u64,
        /// A u32 in v0.6.14: larger values are a parse error there too.
        #[serde(deserialize_with = "fields::leaf_size")]
        leaf_size: u64,
    },
}

impl Integrity {
    /// The algorithm name as written in `algorithm`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Integrity::MerkleBlake3 { .. } => "msb-file-merkle-blake3-v1",
            Integrity::SparseSha256 { .. } => "msb-sparse-sha256-v1",
            Integrity::Sha256 { .. } => "sha256",
        }
    }

    /// The recorded value: the merkle root (`blake3:…`) or the digest
    /// (`sha256:…`), in the form the integrity engine computes.
    pub fn value(&self) -> &str {
        match self {
            Integrity::MerkleBlake3 { root, .. } => root,
            Integrity::SparseSha256 { digest } | Integrity::Sha256 { digest } => digest,
        }
    }
}

/// `state.upper` of a file-state descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpper {
    pub file: String,
    pub size_bytes: u64,
    #[serde(deserialize_with = "fields::required_option")]
    pub integrity: Option<Integrity>,
}

/// `state`: what the artifact's payload is (internally tagged by `kind`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum State {
    /// A disk image file beside the descriptor.
    File {
        format: DiskFormat,
        fstype: String,
        upper: FileUpper,
    },
    /// A checkpoint kept elsewhere; the artifact has no payload of its own.
    Checkpoint {
        checkpoint_id: String,
        manifest: String,
    },
}

/// `snapshot.json`. Field order is the canonical serialization order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotDescriptor {
    pub schema: u32,
    pub artifact: String,
    pub scope: Scope,
    /// Normalized RFC 3339 (§5) once parsed.
    pub created_at: String,
    #[serde(deserialize_with = "fields::required_option")]
    pub parent: Option<String>,
    pub image: ImagePin,
    #[serde(deserialize_with = "fields::required_option")]
    pub source_sandbox: Option<String>,
    pub state: State,
    pub labels: BTreeMap<String, String>,
    pub extensions: BTreeMap<String, serde_json::Value>,
    pub requires: Vec<String>,
}

impl SnapshotDescriptor {
    /// Strictly parse `snapshot.json` bytes as v0.6.14 does (§3), normalize
    /// and validate. Errors are `InvalidManifest("snapshot descriptor: …")`.
    pub fn parse(bytes: &[u8]) -> Result<SnapshotDescriptor> {
        duplicate_keys::check(bytes).map_err(|e| invalid(format!("parse failed: {e}")))?;
        let d: SnapshotDescriptor =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("parse failed: {e}")))?;
        d.normalized()
    }

    /// The checks of §1 in their order; the first failure wins.
    pub fn validate(&self) -> Result<()> {
        validation::validate(self)
    }

    /// The value as v0.6.14 hashes and writes it: `created_at` normalized
    /// (§5), extension objects sorted, then validated. The normalization
    /// comes first, as in v0.6.14, so a bad `created_at` is reported before
    /// the other checks of §1.
    pub fn normalized(&self) -> Result<SnapshotDescriptor> {
        let mut d = self.clone();
        d.created_at = timestamp::normalize(&d.created_at)
            .map_err(|e| invalid(format!("created_at is not RFC 3339: {e}")))?;
        d.extensions
            .values_mut()
            .for_each(extension_values::normalize);
        d.validate()?;
        Ok(d)
    }

    /// Compact serde_json of the normalized value (§2). A `created_at` that
    /// is not RFC 3339 (only possible in a value built in code, never in a
    /// parsed one; `write_to` refuses it) is written as it is.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut d = self.clone();
        if let Ok(created_at) = timestamp::normalize(&d.created_at) {
            d.created_at = created_at;
        }
        d.extensions
            .values_mut()
            .for_each(extension_values::normalize);
        // Cannot fail: every map key is a String, and a serde_json Value
        // holds no NaN or infinity.
        serde_json::to_vec(&d).expect("a SnapshotDescriptor always serializes to JSON")
    }

    /// The snapshot identity: `"sha256:"` + hex SHA-256 of the canonical bytes.
    pub fn digest(&self) -> String {
        crate::manifest::sha256_digest(&self.canonical_bytes())
    }

    /// Read and parse an open `snapshot.json` (`path` names it in errors);
    /// returns the descriptor, its digest and the bytes as read.
    pub fn read_file(file: &File, path: &Path) -> Result<(SnapshotDescriptor, String, Vec<u8>)> {
        let bytes = crate::manifest::read_capped(file, path)?;
        let d = SnapshotDescriptor::parse(&bytes).map_err(|e| match e {
            Error::InvalidManifest(msg) => {
                Error::InvalidManifest(format!("{}: {msg}", path.display()))
            }
            other => other,
        })?;
        let digest = d.digest();
        Ok((d, digest, bytes))
    }

    /// Write the canonical bytes to `<dir>/snapshot.json` crash-safely (via
    /// `snapshot.json.tmp`, as microsandbox does). Refuses an invalid value.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        self.validate()?;
        crate::manifest::write_file_atomically(
            dir,
            "snapshot.json.tmp",
            DESCRIPTOR_FILE,
            &self.canonical_bytes(),
        )
    }

    /// The `requires` keys microsnap cannot honour: all of them, since it
    /// knows no extension (v0.6.14 knows none either).
    pub fn unsupported_requires(&self) -> &[String] {
        &self.requires
    }

    /// The file-state upper, or `None` for checkpoint state.
    pub fn file_upper(&self) -> Option<&FileUpper> {
        match &self.state {
            State::File { upper, .. } => Some(upper),
            State::Checkpoint { .. } => None,
        }
    }
}

/// `InvalidManifest("snapshot descriptor: <msg>")`, v0.6.14's wording.
fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidManifest(format!("snapshot descriptor: {}", msg.into()))
}

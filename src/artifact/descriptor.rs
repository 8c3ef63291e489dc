//! An artifact's descriptor in either on-disk format, and the facts every
//! operation reads from it whatever the format.
//!
//! - `msb-v0.6.3`: `manifest.json` ([`Manifest`]), what microsandbox v0.6.3
//!   (the reference page's version) reads and writes, and microsnap's default.
//! - `msb-v0.6.14`: `snapshot.json` ([`SnapshotDescriptor`]), what current
//!   microsandbox reads and writes.
//!
//! A directory holding `snapshot.json` is read as v0.6.14 even if a
//! `manifest.json` is beside it: that is what v0.6.14 itself does (a crash in
//! its in-place migration leaves both), and microsnap never migrates or
//! otherwise writes a directory it only reads.
use crate::error::{Error, Result};
use crate::manifest::{DiskFormat, ImagePin, Manifest, Upper, UpperIntegrity, MANIFEST_FILE};
use crate::snapshot_json::{Integrity, SnapshotDescriptor, State, DESCRIPTOR_FILE};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The on-disk format of an artifact (and of an archive's members).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ArtifactFormat {
    /// `manifest.json`, microsandbox v0.6.3.
    #[default]
    MsbV063,
    /// `snapshot.json`, microsandbox v0.6.14.
    MsbV0614,
}

impl ArtifactFormat {
    pub const ALL: [ArtifactFormat; 2] = [ArtifactFormat::MsbV063, ArtifactFormat::MsbV0614];

    /// The option value naming the format in every binding.
    pub fn name(self) -> &'static str {
        match self {
            ArtifactFormat::MsbV063 => "msb-v0.6.3",
            ArtifactFormat::MsbV0614 => "msb-v0.6.14",
        }
    }

    /// The descriptor's file name in an artifact directory.
    pub fn descriptor_file(self) -> &'static str {
        match self {
            ArtifactFormat::MsbV063 => MANIFEST_FILE,
            ArtifactFormat::MsbV0614 => DESCRIPTOR_FILE,
        }
    }
}

impl fmt::Display for ArtifactFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ArtifactFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<ArtifactFormat> {
        ArtifactFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown artifact format {s:?} (expected \"msb-v0.6.3\" or \"msb-v0.6.14\")"
                ))
            })
    }
}

/// The descriptor files an artifact directory may hold, in the order they
/// are looked for.
pub const DESCRIPTOR_FILES: [(ArtifactFormat, &str); 2] = [
    (ArtifactFormat::MsbV0614, DESCRIPTOR_FILE),
    (ArtifactFormat::MsbV063, MANIFEST_FILE),
];

/// Whether `dir` holds a descriptor file of either format: what tells an
/// artifact directory (perhaps a malformed one) from any other directory.
pub fn has_descriptor(dir: &std::path::Path) -> bool {
    DESCRIPTOR_FILES
        .iter()
        .any(|(_, name)| dir.join(name).is_file())
}

/// A parsed descriptor of either format.
#[derive(Clone, Debug, PartialEq)]
pub enum Descriptor {
    Manifest(Manifest),
    Snapshot(SnapshotDescriptor),
}

impl Descriptor {
    /// Parse `bytes` as the descriptor of `format`; returns it and its digest.
    pub fn parse(format: ArtifactFormat, bytes: &[u8]) -> Result<(Descriptor, String)> {
        Ok(match format {
            ArtifactFormat::MsbV063 => {
                let m = Manifest::parse(bytes)?;
                let digest = m.digest();
                (Descriptor::Manifest(m), digest)
            }
            ArtifactFormat::MsbV0614 => {
                let d = SnapshotDescriptor::parse(bytes)?;
                let digest = d.digest();
                (Descriptor::Snapshot(d), digest)
            }
        })
    }

    /// The canonical bytes, whose SHA-256 is the snapshot's identity (a
    /// file on disk may hold another serialization of the same object).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        match self {
            Descriptor::Manifest(m) => m.canonical_bytes(),
            Descriptor::Snapshot(s) => s.canonical_bytes(),
        }
    }

    pub fn format(&self) -> ArtifactFormat {
        match self {
            Descriptor::Manifest(_) => ArtifactFormat::MsbV063,
            Descriptor::Snapshot(_) => ArtifactFormat::MsbV0614,
        }
    }

    pub fn schema(&self) -> u32 {
        match self {
            Descriptor::Manifest(m) => m.schema,
            Descriptor::Snapshot(d) => d.schema,
        }
    }

    pub fn image(&self) -> &ImagePin {
        match self {
            Descriptor::Manifest(m) => &m.image,
            Descriptor::Snapshot(d) => &d.image,
        }
    }

    pub fn parent(&self) -> Option<&str> {
        match self {
            Descriptor::Manifest(m) => m.parent.as_deref(),
            Descriptor::Snapshot(d) => d.parent.as_deref(),
        }
    }

    pub fn created_at(&self) -> &str {
        match self {
            Descriptor::Manifest(m) => &m.created_at,
            Descriptor::Snapshot(d) => &d.created_at,
        }
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        match self {
            Descriptor::Manifest(m) => &m.labels,
            Descriptor::Snapshot(d) => &d.labels,
        }
    }

    pub fn source_sandbox(&self) -> Option<&str> {
        match self {
            Descriptor::Manifest(m) => m.source_sandbox.as_deref(),
            Descriptor::Snapshot(d) => d.source_sandbox.as_deref(),
        }
    }

    /// The upper's disk format; `None` for a checkpoint-state snapshot.
    pub fn disk_format(&self) -> Option<DiskFormat> {
        match self {
            Descriptor::Manifest(m) => Some(m.format),
            Descriptor::Snapshot(d) => match &d.state {
                State::File { format, .. } => Some(*format),
                State::Checkpoint { .. } => None,
            },
        }
    }

    /// The filesystem inside the upper; `None` for a checkpoint-state snapshot.
    pub fn fstype(&self) -> Option<&str> {
        match self {
            Descriptor::Manifest(m) => Some(&m.fstype),
            Descriptor::Snapshot(d) => match &d.state {
                State::File { fstype, .. } => Some(fstype),
                State::Checkpoint { .. } => None,
            },
        }
    }

    /// The upper file as both formats describe it (v0.6.14's BLAKE3 record
    /// as algorithm + root; its `logical_size` and `leaf_size` were checked
    /// against the file's size and 64 KiB when it was parsed). `None` for a
    /// checkpoint-state snapshot, which has no payload in its directory.
    pub fn upper(&self) -> Option<Upper> {
        match self {
            Descriptor::Manifest(m) => Some(m.upper.clone()),
            Descriptor::Snapshot(d) => d.file_upper().map(|u| Upper {
                file: u.file.clone(),
                size_bytes: u.size_bytes,
                integrity: u.integrity.as_ref().map(|i| UpperIntegrity {
                    algorithm: i.algorithm().to_string(),
                    digest: i.value().to_string(),
                }),
            }),
        }
    }

    /// What restoring a sandbox from this snapshot would need that microsnap
    /// does not have, as v0.6.14's restore gates say it (§6): a checkpoint,
    /// a non-disk scope, or a must-understand extension. `None` when a
    /// sandbox can be made from it.
    pub fn restore_blocker(&self) -> Option<String> {
        let Descriptor::Snapshot(d) = self else {
            return None;
        };
        if let State::Checkpoint { checkpoint_id, .. } = &d.state {
            return Some(format!(
                "it is a checkpoint-state snapshot (checkpoint {checkpoint_id:?}), which needs the VM state microsandbox keeps; microsnap restores disk snapshots only"
            ));
        }
        if d.scope != crate::snapshot_json::Scope::Disk {
            return Some("its scope is not \"disk\"".into());
        }
        let unsupported = d.unsupported_requires();
        if !unsupported.is_empty() {
            return Some(format!(
                "snapshot requires unsupported runtime capabilities: {}",
                unsupported.join(", ")
            ));
        }
        None
    }
}

/// v0.6.14's closed integrity set, as a recorded value of microsnap's
/// algorithm names: for writing a descriptor of that format.
pub fn integrity_for_v0614(rec: &UpperIntegrity, size_bytes: u64) -> Result<Integrity> {
    Ok(match rec.algorithm.as_str() {
        "msb-file-merkle-blake3-v1" => Integrity::MerkleBlake3 {
            root: rec.digest.clone(),
            logical_size: size_bytes,
            leaf_size: crate::integrity::MERKLE_LEAF_SIZE,
        },
        "msb-sparse-sha256-v1" => Integrity::SparseSha256 {
            digest: rec.digest.clone(),
        },
        "sha256" => Integrity::Sha256 {
            digest: rec.digest.clone(),
        },
        other => {
            return Err(Error::Unsupported(format!(
                "integrity algorithm {other} cannot be recorded in a msb-v0.6.14 snapshot.json \
                 (it knows msb-file-merkle-blake3-v1, msb-sparse-sha256-v1 and sha256)"
            )))
        }
    })
}

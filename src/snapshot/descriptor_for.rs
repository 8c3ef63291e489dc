//! The descriptor a new snapshot gets, in the format asked for: v0.6.3's
//! `manifest.json` (the default, the reference page's format) or v0.6.14's
//! `snapshot.json`, written the way current microsandbox's create writes it
//! (SPEC-NOTES §7) so that it reads it without migrating anything.
use crate::artifact::{integrity_for_v0614, ArtifactFormat};
use crate::error::Result;
use crate::integrity::Algorithm;
use crate::manifest::{Manifest, Upper};
use crate::sandbox::Sandbox;
use crate::snapshot_json::{FileUpper, Scope, SnapshotDescriptor, State};
use crate::timefmt;
use std::collections::BTreeMap;
use std::path::Path;

/// The integrity algorithm a snapshot of `format` records: the one asked
/// for, which must be one the format can carry, or the format's default
/// (microsnap's SHA-256 merkle for v0.6.3; BLAKE3 merkle, the only one
/// v0.6.14's create writes, for v0.6.14). Checked before any byte is copied.
pub(super) fn integrity_algorithm(
    format: ArtifactFormat,
    requested: Option<Algorithm>,
) -> Result<Algorithm> {
    match format {
        ArtifactFormat::MsbV063 => Ok(requested.unwrap_or(Algorithm::DEFAULT)),
        ArtifactFormat::MsbV0614 => {
            let algorithm = requested.unwrap_or(Algorithm::MerkleBlake3V1);
            // Fails for an algorithm v0.6.14's closed set lacks.
            integrity_for_v0614(
                &crate::manifest::UpperIntegrity {
                    algorithm: algorithm.name().to_string(),
                    digest: String::new(),
                },
                0,
            )?;
            Ok(algorithm)
        }
    }
}

/// Write the descriptor of a snapshot of `sb` whose upper (already in `dir`)
/// is `upper`, in `format`, into `dir`.
pub(super) fn write_descriptor(
    format: ArtifactFormat,
    sb: &Sandbox,
    labels: &BTreeMap<String, String>,
    upper: Upper,
    dir: &Path,
) -> Result<()> {
    match format {
        ArtifactFormat::MsbV063 => Manifest {
            schema: 1,
            format: sb.format,
            fstype: sb.fstype.clone(),
            image: sb.image.clone(),
            parent: sb.from_snapshot.clone(),
            created_at: timefmt::now_rfc3339(),
            labels: labels.clone(),
            upper,
            source_sandbox: Some(sb.name.clone()),
        }
        .write_to(dir),
        ArtifactFormat::MsbV0614 => {
            let integrity = match &upper.integrity {
                Some(rec) => Some(integrity_for_v0614(rec, upper.size_bytes)?),
                None => None,
            };
            SnapshotDescriptor {
                schema: 1,
                artifact: "snapshot".into(),
                scope: Scope::Disk,
                // Normalized (UTC, `Z`, trimmed fraction) when serialized.
                created_at: timefmt::now_rfc3339(),
                // microsandbox's create never sets one; microsnap keeps the
                // lineage of a sandbox made from a snapshot, as for v0.6.3.
                parent: sb.from_snapshot.clone(),
                image: sb.image.clone(),
                source_sandbox: Some(sb.name.clone()),
                state: State::File {
                    format: sb.format,
                    fstype: sb.fstype.clone(),
                    upper: FileUpper {
                        file: upper.file,
                        size_bytes: upper.size_bytes,
                        integrity,
                    },
                },
                labels: labels.clone(),
                extensions: BTreeMap::new(),
                requires: Vec::new(),
            }
            .write_to(dir)
        }
    }
}

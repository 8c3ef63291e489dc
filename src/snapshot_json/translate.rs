//! Conversion between v0.6.3's `manifest.json` and v0.6.14's `snapshot.json`
//! with v0.6.14's own rules (SPEC-NOTES §14): forward as its migrator
//! (`translate_v066_forward` plus the stricter checks it applies first),
//! backward as its downgrade (`translate_v066_reverse`). v0.6.14 calls the
//! v0.6.3 format "v0.6.6" (same files).
//!
//! Both directions are pure: the caller has read the payload's size, maps
//! parents to their identity in the other format, and computes an
//! integrity projection when one is needed. microsnap never converts a
//! directory in place; archive and create code writes the result elsewhere.
//!
//! Errors name v0.6.14's reason code, then the detail:
//! * `Unsupported`: a valid v0.6.3 manifest that v0.6.14 refuses to migrate
//!   (`unsupported_legacy_schema`, `unsupported_legacy_layout`,
//!   `legacy_descriptor_malformed`: lax digests, an algorithm outside
//!   `sha256`/`msb-sparse-sha256-v1`, a non-RFC 3339 `created_at`, a
//!   reserved `upper.file`; a size past 2^53-1), and a descriptor the v0.6.3
//!   format cannot hold (`snapshot_downgrade_unrepresentable`,
//!   `legacy_integrity_unsupported`).
//! * `InvalidManifest`: the artifact contradicts itself — its payload is not
//!   the size the manifest records (`legacy_payload_size_mismatch`), or
//!   `upper.file` can name no regular file (`legacy_payload_missing`).
//! * `InvalidArgument`: the caller's parent or projection does not fit.
use std::collections::BTreeMap;

use super::validation::{is_strict_digest, single_component};
use super::{timestamp, FileUpper, Integrity, Scope, SnapshotDescriptor, State, RESERVED_NAMES};
use crate::error::{Error, Result};
use crate::manifest::{DiskFormat, Manifest, Upper, UpperIntegrity};

/// v0.6.14's name of the v0.6.3 sparse SHA-256 algorithm.
const SPARSE_SHA256: &str = "msb-sparse-sha256-v1";
/// Plain SHA-256 of the file.
const PLAIN_SHA256: &str = "sha256";

impl SnapshotDescriptor {
    /// The `snapshot.json` v0.6.14's migrator writes for `manifest`:
    /// disk scope, file state with the manifest's format, fstype, upper file
    /// and integrity (unchanged and not checked: migration does not read the
    /// payload), `size_bytes = payload_size`, `extensions {}`, `requires []`,
    /// normalized `created_at`.
    ///
    /// `payload_size` is the upper file's apparent size as the caller found
    /// it; it must equal `upper.size_bytes`. `parent` is the parent's identity
    /// in the new lineage: the v0.6.14 identity of the converted parent (what
    /// v0.6.14 writes), or the parent's own identity when it stays a v0.6.3
    /// artifact. It must be given exactly when the manifest has a parent.
    pub fn from_v063(
        manifest: &Manifest,
        payload_size: u64,
        parent: Option<String>,
    ) -> Result<SnapshotDescriptor> {
        check_forward(manifest)?;
        // The payload checks of v0.6.14's discovery, after the manifest's.
        let file = &manifest.upper.file;
        if single_component(file) != Some(file.as_str()) {
            return Err(Error::InvalidManifest(forward_msg(
                "legacy_payload_missing",
                &format!("upper.file {file:?} can name no regular file"),
            )));
        }
        if manifest.upper.size_bytes != payload_size {
            return Err(Error::InvalidManifest(forward_msg(
                "legacy_payload_size_mismatch",
                &format!(
                    "descriptor={}, file={payload_size}",
                    manifest.upper.size_bytes
                ),
            )));
        }
        // Then the parent graph (their planning step).
        match (&manifest.parent, &parent) {
            (Some(legacy), None) => {
                return Err(Error::InvalidArgument(forward_msg(
                    "legacy_parent_missing",
                    &format!("parent {legacy} is not available (no identity given for it)"),
                )))
            }
            (None, Some(given)) => {
                return Err(Error::InvalidArgument(format!(
                    "parent {given} given for a v0.6.3 manifest without a parent"
                )))
            }
            (_, Some(given)) if !is_strict_digest("sha256:", given) => {
                return Err(Error::InvalidArgument(format!(
                    "parent identity is not sha256: + 64 lowercase hex digits: {given}"
                )))
            }
            _ => {}
        }
        let integrity = match &manifest.upper.integrity {
            None => None,
            Some(i) if i.algorithm == PLAIN_SHA256 => Some(Integrity::Sha256 {
                digest: i.digest.clone(),
            }),
            Some(i) => Some(Integrity::SparseSha256 {
                digest: i.digest.clone(),
            }),
        };
        let descriptor = SnapshotDescriptor {
            schema: super::SCHEMA_VERSION,
            artifact: super::ARTIFACT_KIND.to_owned(),
            scope: Scope::Disk,
            created_at: manifest.created_at.clone(),
            parent,
            image: manifest.image.clone(),
            source_sandbox: manifest.source_sandbox.clone(),
            state: State::File {
                format: manifest.format,
                fstype: manifest.fstype.clone(),
                upper: FileUpper {
                    file: file.clone(),
                    size_bytes: payload_size,
                    integrity,
                },
            },
            labels: manifest.labels.clone(),
            extensions: BTreeMap::new(),
            requires: Vec::new(),
        };
        // What the checks above do not cover is the descriptor's own rules
        // (a size past 2^53-1): v0.6.14 fails there too.
        descriptor.normalized().map_err(|e| match e {
            Error::InvalidManifest(msg) => Error::Unsupported(format!(
                "v0.6.3 manifest cannot become a v0.6.14 snapshot.json: {msg}"
            )),
            other => other,
        })
    }

    /// The v0.6.3 `manifest.json` v0.6.14's downgrade writes for this
    /// descriptor, keeping the parent reference as it is (right when the
    /// parent stays in its own format; when it is converted too, give its
    /// v0.6.3 identity to [`to_v063_with`](Self::to_v063_with)). A BLAKE3
    /// merkle integrity has no v0.6.3 form: that needs `to_v063_with` and
    /// the payload's `msb-sparse-sha256-v1` digest.
    pub fn to_v063(&self) -> Result<Manifest> {
        self.to_v063_with(self.parent.clone(), None)
    }

    /// [`to_v063`](Self::to_v063) with the parent's identity in the v0.6.3
    /// lineage (`None`: the result has no parent, whatever this descriptor
    /// names) and, for a descriptor with BLAKE3 merkle integrity, the
    /// `msb-sparse-sha256-v1` digest computed from its payload (recorded in
    /// its place, as v0.6.14's downgrade does). Only disk scope, raw ext4
    /// file state without extensions or requires is representable.
    pub fn to_v063_with(
        &self,
        parent: Option<String>,
        sparse_sha256: Option<&str>,
    ) -> Result<Manifest> {
        let d = self.normalized()?;
        if d.scope != Scope::Disk {
            return Err(unrepresentable("scope is not disk"));
        }
        if !d.requires.is_empty() || !d.extensions.is_empty() {
            return Err(unrepresentable(
                "extensions are not representable in v0.6.6 (the v0.6.3 manifest.json format)",
            ));
        }
        let State::File {
            format,
            fstype,
            upper,
        } = &d.state
        else {
            return Err(unrepresentable(
                "checkpoint state is not supported by v0.6.6 (the v0.6.3 manifest.json format)",
            ));
        };
        if *format != DiskFormat::Raw || fstype != "ext4" {
            return Err(unrepresentable("only raw ext4 file state is supported"));
        }
        if let Some(p) = &parent {
            if !is_strict_digest("sha256:", p) {
                return Err(Error::InvalidArgument(format!(
                    "parent identity is not sha256: + 64 lowercase hex digits: {p}"
                )));
            }
        }
        let integrity = match (&upper.integrity, sparse_sha256) {
            (Some(Integrity::MerkleBlake3 { .. }), None) => {
                return Err(Error::Unsupported(format!(
                    "{}: legacy_integrity_unsupported: msb-file-merkle-blake3-v1 has no v0.6.3 \
                     form; the payload's msb-sparse-sha256-v1 digest must be computed and \
                     given in its place",
                    REVERSE_CONTEXT
                )))
            }
            (Some(Integrity::MerkleBlake3 { .. }), Some(projection)) => {
                if !is_strict_digest("sha256:", projection) {
                    return Err(Error::InvalidArgument(format!(
                        "msb-sparse-sha256-v1 projection is not sha256: + 64 lowercase hex \
                         digits: {projection}"
                    )));
                }
                Some(legacy_integrity(SPARSE_SHA256, projection))
            }
            // A projection equal to what is recorded changes nothing.
            (Some(Integrity::SparseSha256 { digest }), None) => {
                Some(legacy_integrity(SPARSE_SHA256, digest))
            }
            (Some(Integrity::SparseSha256 { digest }), Some(p)) if p == digest => {
                Some(legacy_integrity(SPARSE_SHA256, digest))
            }
            (Some(Integrity::Sha256 { digest }), None) => {
                Some(legacy_integrity(PLAIN_SHA256, digest))
            }
            (None, None) => None,
            (_, Some(projection)) => {
                return Err(Error::InvalidArgument(format!(
                    "invalid v0.6.6 integrity projection {projection}: only a \
                     msb-file-merkle-blake3-v1 integrity is replaced"
                )))
            }
        };
        let manifest = Manifest {
            schema: crate::manifest::SCHEMA_VERSION,
            format: *format,
            fstype: fstype.clone(),
            image: d.image.clone(),
            parent,
            created_at: d.created_at.clone(),
            labels: d.labels.clone(),
            upper: Upper {
                file: upper.file.clone(),
                size_bytes: upper.size_bytes,
                integrity,
            },
            source_sandbox: d.source_sandbox.clone(),
        };
        manifest.validate()?;
        Ok(manifest)
    }
}

/// The checks v0.6.14 applies to a v0.6.3 manifest before translating it,
/// in its order. Its typed parse of the manifest comes first, and that parse
/// already refuses an integrity algorithm outside its closed set.
fn check_forward(m: &Manifest) -> Result<()> {
    let malformed = |detail: String| {
        Err(Error::Unsupported(forward_msg(
            "legacy_descriptor_malformed",
            &detail,
        )))
    };
    if let Some(i) = &m.upper.integrity {
        if i.algorithm != PLAIN_SHA256 && i.algorithm != SPARSE_SHA256 {
            return malformed(format!(
                "upper.integrity.algorithm {:?} is not one v0.6.14 reads ({PLAIN_SHA256} or \
                 {SPARSE_SHA256})",
                i.algorithm
            ));
        }
    }
    if m.schema != 1 {
        return Err(Error::Unsupported(forward_msg(
            "unsupported_legacy_schema",
            &format!("expected schema 1, found {}", m.schema),
        )));
    }
    if m.format != DiskFormat::Raw || m.fstype != "ext4" {
        return Err(Error::Unsupported(forward_msg(
            "unsupported_legacy_layout",
            &format!(
                "expected raw ext4 payload, found {} {}",
                m.format.as_str(),
                m.fstype
            ),
        )));
    }
    if m.image.reference.is_empty() {
        return malformed("empty image.ref".to_owned());
    }
    let mut digests = vec![("image.manifest_digest", m.image.manifest_digest.as_str())];
    if let Some(parent) = &m.parent {
        digests.push(("parent", parent));
    }
    for (field, value) in digests {
        if !is_strict_digest("sha256:", value) {
            return malformed(format!(
                "{field} is not sha256: + 64 lowercase hex digits: {value}"
            ));
        }
    }
    let file = &m.upper.file;
    if single_component(file).is_none() {
        return malformed(format!("upper.file is not confined: {file}"));
    }
    if RESERVED_NAMES.contains(&file.as_str()) {
        return malformed(format!("upper.file uses a reserved name: {file}"));
    }
    if let Some(i) = &m.upper.integrity {
        if !is_strict_digest("sha256:", &i.digest) {
            return malformed(format!(
                "upper.integrity.digest is not sha256: + 64 lowercase hex digits: {}",
                i.digest
            ));
        }
    }
    if let Err(e) = timestamp::normalize(&m.created_at) {
        return malformed(format!("created_at is not RFC3339: {e}"));
    }
    Ok(())
}

fn forward_msg(code: &str, detail: &str) -> String {
    format!("v0.6.3 manifest cannot become a v0.6.14 snapshot.json: {code}: {detail}")
}

const REVERSE_CONTEXT: &str = "snapshot.json cannot become a v0.6.3 manifest.json";

fn unrepresentable(detail: &str) -> Error {
    Error::Unsupported(format!(
        "{REVERSE_CONTEXT}: snapshot_downgrade_unrepresentable: {detail}"
    ))
}

fn legacy_integrity(algorithm: &str, digest: &str) -> UpperIntegrity {
    UpperIntegrity {
        algorithm: algorithm.to_owned(),
        digest: digest.to_owned(),
    }
}

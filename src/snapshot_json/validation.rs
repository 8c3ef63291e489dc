//! The semantic checks of v0.6.14's `Manifest::validate` (SPEC-NOTES §1), in
//! its order: the first failure wins, with its message.
use std::path::{Component, Path};

use super::{invalid, timestamp, Integrity, Scope, SnapshotDescriptor, State, RESERVED_NAMES};
use crate::error::Result;

/// The only schema version v0.6.14 knows.
pub const SCHEMA_VERSION: u32 = 1;
/// The only `artifact` value.
pub const ARTIFACT_KIND: &str = "snapshot";
/// The leaf size `msb-file-merkle-blake3-v1` is defined with.
pub const MERKLE_LEAF_SIZE: u64 = 64 * 1024;
/// 2^53 - 1: the largest integer every JSON consumer reads exactly.
pub const MAX_JSON_SAFE_INTEGER: u64 = 9_007_199_254_740_991;

pub(super) fn validate(d: &SnapshotDescriptor) -> Result<()> {
    if d.schema != SCHEMA_VERSION {
        return Err(invalid(format!(
            "unsupported schema version {} (expected {SCHEMA_VERSION})",
            d.schema
        )));
    }
    if d.artifact != ARTIFACT_KIND {
        return Err(invalid(format!(
            "unsupported artifact kind {} (expected {ARTIFACT_KIND})",
            d.artifact
        )));
    }
    if d.image.reference.is_empty() {
        return Err(invalid("empty image.ref"));
    }
    check_digest("image.manifest_digest", "sha256:", &d.image.manifest_digest)?;
    if let Some(parent) = &d.parent {
        check_digest("parent", "sha256:", parent)?;
    }
    if let Err(e) = timestamp::normalize(&d.created_at) {
        return Err(invalid(format!("created_at is not RFC 3339: {e}")));
    }
    match &d.state {
        State::File { fstype, upper, .. } => {
            if d.scope != Scope::Disk {
                return Err(invalid("state.kind=file requires scope=disk"));
            }
            if fstype.is_empty() {
                return Err(invalid("empty state.fstype"));
            }
            check_upper_file(&upper.file)?;
            if upper.size_bytes > MAX_JSON_SAFE_INTEGER {
                return Err(invalid(format!(
                    "state.upper.size_bytes exceeds JSON safe-integer limit: {}",
                    upper.size_bytes
                )));
            }
            if let Some(integrity) = &upper.integrity {
                check_integrity(integrity, upper.size_bytes)?;
            }
        }
        State::Checkpoint {
            checkpoint_id,
            manifest,
        } => {
            if checkpoint_id.is_empty() {
                return Err(invalid("empty state.checkpoint_id"));
            }
            check_digest("state.manifest", "sha256:", manifest)?;
        }
    }
    check_requires(d)
}

fn check_integrity(integrity: &Integrity, size_bytes: u64) -> Result<()> {
    match integrity {
        Integrity::Sha256 { digest } | Integrity::SparseSha256 { digest } => {
            check_digest("state.upper.integrity.digest", "sha256:", digest)
        }
        Integrity::MerkleBlake3 {
            root,
            logical_size,
            leaf_size,
        } => {
            check_digest("state.upper.integrity.root", "blake3:", root)?;
            if *logical_size != size_bytes {
                return Err(invalid(format!(
                    "state.upper.integrity.logical_size {logical_size} does not match \
                     state.upper.size_bytes {size_bytes}"
                )));
            }
            if *leaf_size != MERKLE_LEAF_SIZE {
                return Err(invalid(format!(
                    "state.upper.integrity.leaf_size must be {MERKLE_LEAF_SIZE}: {leaf_size}"
                )));
            }
            Ok(())
        }
    }
}

/// `requires`: non-empty keys of `extensions`, strictly increasing byte-wise.
fn check_requires(d: &SnapshotDescriptor) -> Result<()> {
    let mut previous: Option<&str> = None;
    for key in &d.requires {
        if key.is_empty() {
            return Err(invalid("empty requires entry"));
        }
        if !d.extensions.contains_key(key) {
            return Err(invalid(format!(
                "requires names '{key}' but extensions has no such key"
            )));
        }
        if previous.is_some_and(|p| p >= key.as_str()) {
            return Err(invalid(format!(
                "requires must be sorted and unique (at '{key}')"
            )));
        }
        previous = Some(key);
    }
    Ok(())
}

/// `<prefix>` then exactly 64 characters of `0-9a-f`.
pub(super) fn is_strict_digest(prefix: &str, value: &str) -> bool {
    value.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

fn check_digest(field: &str, prefix: &str, value: &str) -> Result<()> {
    if !value.starts_with(prefix) {
        return Err(invalid(format!("{field} must use {prefix} {value}")));
    }
    if !is_strict_digest(prefix, value) {
        return Err(invalid(format!(
            "{field} must contain 64 lowercase hexadecimal digits: {value}"
        )));
    }
    Ok(())
}

/// The one normal component `name` consists of by `Path::components`
/// rules (`upper.ext4/` gives `upper.ext4`), or `None`.
pub(super) fn single_component(name: &str) -> Option<&str> {
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(c)), None) => c.to_str(),
        _ => None,
    }
}

/// One normal component by `Path::components` rules, so `upper.ext4/` and
/// `upper.ext4/.` pass as in v0.6.14 (their trailing parts are not
/// components); the reserved names are compared with the raw string, so
/// `snapshot.json/` passes too (descriptors/20, 21).
fn check_upper_file(name: &str) -> Result<()> {
    if single_component(name).is_none() {
        return Err(invalid(format!(
            "state.upper.file must be one relative normal filename: {name}"
        )));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(invalid(format!(
            "state.upper.file uses reserved filename: {name}"
        )));
    }
    Ok(())
}

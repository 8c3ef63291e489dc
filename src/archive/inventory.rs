//! `archive.json`: the inventory microsandbox v0.6.14 writes last in every
//! archive (vectors/msb-0.6.14/SPEC-NOTES.md §10), and its checks on import
//! in v0.6.14's order (§11.4).
//!
//! The struct is the inventory member for member, in serialization order, so
//! its compact serde_json is the canonical form: import refuses an inventory
//! whose bytes are not that (h12), and export writes exactly that.
//!
//! The checks that need only the inventory run in [`Inventory::parse`]; the
//! ones against the members ([`Inventory::check_members`]) run after the
//! stream, on what the importer recorded of each member while unpacking it.
use super::transport_digest;
use crate::error::{Error, Result};
use crate::snapshot_json::Integrity;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The inventory's member name, at the top of the archive.
pub const INVENTORY_FILE: &str = "archive.json";
/// Largest inventory read (v0.6.14's limit).
pub const MAX_INVENTORY_BYTES: u64 = 4 * 1024 * 1024;

pub const KIND_DESCRIPTOR: &str = "snapshot-descriptor";
pub const KIND_PAYLOAD: &str = "file-payload";
pub const KIND_IMAGE_METADATA: &str = "image-metadata";
pub const KIND_IMAGE_OBJECT: &str = "image-object";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub schema: u32,
    pub artifact: String,
    pub head: String,
    pub suggested_name: Option<String>,
    pub completeness: String,
    pub with_parents: bool,
    pub with_image: bool,
    pub snapshots: Vec<InventorySnapshot>,
    pub entries: Vec<InventoryEntry>,
    pub protection_requirements: Vec<serde_json::Value>,
    pub extensions: BTreeMap<String, serde_json::Value>,
    pub requires: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySnapshot {
    pub snapshot_id: String,
    pub descriptor: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryEntry {
    pub path: String,
    pub owner_snapshot: Option<String>,
    pub kind: String,
    pub included: bool,
    pub encoded_size: u64,
    pub apparent_size: u64,
    pub integrity: Option<Integrity>,
    /// Absent in inventories written before transport digests existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_integrity: Option<TransportIntegrity>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportIntegrity {
    pub algorithm: String,
    pub digest: String,
}

/// What the importer saw of one staged member of the archive.
#[derive(Clone, Debug)]
pub struct MemberFacts {
    pub path: String,
    pub kind: &'static str,
    pub encoded_size: u64,
    pub apparent_size: u64,
    pub transport_digest: String,
    /// `sha256:<hex>` of the restored bytes, for members whose inventory
    /// entry may carry a sha256 integrity (descriptors and image files).
    pub sha256: Option<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidArchive(msg.into())
}

/// `snapshots/<hex>/snapshot.json` for a `sha256:<hex>` identity.
pub fn descriptor_path(digest: &str) -> String {
    format!("snapshots/{}/snapshot.json", hex_of(digest))
}

/// `files/<hex>/<file>` for a `sha256:<hex>` identity.
pub fn payload_path(digest: &str, file: &str) -> String {
    format!("files/{}/{file}", hex_of(digest))
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn is_strict_sha256(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(super::entry_check::is_sha256_hex)
}

impl Inventory {
    /// Parse and check on its own, in v0.6.14's order: canonical bytes,
    /// schema and artifact, completeness, requires, suggested name, the
    /// snapshot list, the head, the entry order.
    pub fn parse(bytes: &[u8]) -> Result<Inventory> {
        let inv: Inventory = serde_json::from_slice(bytes).map_err(|e| {
            bad(format!(
                "{INVENTORY_FILE}: not a snapshot archive inventory: {e}"
            ))
        })?;
        if inv.canonical_bytes() != bytes {
            return Err(bad(format!(
                "archive inventory is not canonical: {INVENTORY_FILE} differs from its compact \
                 re-serialization (microsandbox v0.6.14 refuses it too)"
            )));
        }
        inv.validate()?;
        Ok(inv)
    }

    /// The compact serde_json of the value, as v0.6.14 writes it.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Inventory always serializes to JSON")
    }

    fn validate(&self) -> Result<()> {
        if self.schema != 1 {
            return Err(bad(format!(
                "{INVENTORY_FILE}: unsupported schema {} (expected 1)",
                self.schema
            )));
        }
        if self.artifact != "snapshot-archive" {
            return Err(bad(format!(
                "{INVENTORY_FILE}: artifact is {:?}, not \"snapshot-archive\"",
                self.artifact
            )));
        }
        if self.completeness != "boot-complete" {
            return Err(Error::Unsupported(format!(
                "{INVENTORY_FILE}: archive completeness {:?} is not supported (only boot-complete)",
                self.completeness
            )));
        }
        let known = self.requires.is_empty()
            || (self.requires.len() == 1 && self.requires[0] == transport_digest::ALGORITHM);
        if !known {
            return Err(Error::Unsupported(format!(
                "snapshot archive requires unsupported extensions: {:?} (microsnap knows only {:?})",
                self.requires,
                transport_digest::ALGORITHM
            )));
        }
        if !self.protection_requirements.is_empty() {
            return Err(Error::Unsupported(format!(
                "{INVENTORY_FILE}: protection requirements are not supported: {}",
                serde_json::Value::Array(self.protection_requirements.clone())
            )));
        }
        if let Some(name) = &self.suggested_name {
            if name.is_empty() || name.len() > 255 || name.contains(['/', '\\']) {
                return Err(bad(format!(
                    "{INVENTORY_FILE}: suggested_name {name:?} is not a file name"
                )));
            }
        }
        for pair in self.snapshots.windows(2) {
            if pair[0].snapshot_id >= pair[1].snapshot_id {
                return Err(bad(format!(
                    "{INVENTORY_FILE}: snapshots are not strictly sorted (at {:?})",
                    pair[1].snapshot_id
                )));
            }
        }
        for s in &self.snapshots {
            if !is_strict_sha256(&s.snapshot_id) || s.descriptor != descriptor_path(&s.snapshot_id)
            {
                return Err(bad(format!(
                    "{INVENTORY_FILE}: snapshot {:?} has descriptor path {:?}; expected \
                     snapshots/<64 hex of its id>/snapshot.json",
                    s.snapshot_id, s.descriptor
                )));
            }
        }
        if !self.snapshots.iter().any(|s| s.snapshot_id == self.head) {
            return Err(bad(format!(
                "archive head is not exactly one listed snapshot: {INVENTORY_FILE} names head {:?} \
                 but lists {:?}",
                self.head,
                self.snapshots
                    .iter()
                    .map(|s| &s.snapshot_id)
                    .collect::<Vec<_>>()
            )));
        }
        for pair in self.entries.windows(2) {
            if pair[0].path.as_bytes() >= pair[1].path.as_bytes() {
                return Err(bad(format!(
                    "{INVENTORY_FILE}: entries are not strictly sorted by path (at {:?})",
                    pair[1].path
                )));
            }
        }
        Ok(())
    }

    /// The checks against what was staged (§11.4, after the stream):
    /// included entries present, excluded ones absent, sizes, transport
    /// digests, sha256 integrities, nothing staged that is not listed, a
    /// descriptor entry for every snapshot.
    pub fn check_members(&self, members: &[MemberFacts]) -> Result<()> {
        let by_path: BTreeMap<&str, &MemberFacts> =
            members.iter().map(|m| (m.path.as_str(), m)).collect();
        let transport_required = !self.requires.is_empty();
        for e in &self.entries {
            let found = by_path.get(e.path.as_str());
            if !e.included {
                if found.is_some() {
                    return Err(bad(format!(
                        "archive entry {:?} is marked not included in {INVENTORY_FILE} but is present",
                        e.path
                    )));
                }
                continue;
            }
            let m =
                found.ok_or_else(|| bad(format!("inventoried entry is missing: {:?}", e.path)))?;
            if e.kind != m.kind {
                return Err(bad(format!(
                    "archive entry kind mismatch: {:?}: {INVENTORY_FILE} says {:?}, the member is a {}",
                    e.path, e.kind, m.kind
                )));
            }
            if e.encoded_size != m.encoded_size || e.apparent_size != m.apparent_size {
                return Err(bad(format!(
                    "archive entry size mismatch: {:?}: {INVENTORY_FILE} says {} stored / {} apparent \
                     bytes, the member has {} / {}",
                    e.path, e.encoded_size, e.apparent_size, m.encoded_size, m.apparent_size
                )));
            }
            match &e.transport_integrity {
                Some(t) if t.algorithm != transport_digest::ALGORITHM => {
                    return Err(Error::Unsupported(format!(
                        "archive entry {:?}: transport integrity algorithm {:?} is not supported",
                        e.path, t.algorithm
                    )))
                }
                Some(t) if t.digest != m.transport_digest => {
                    return Err(Error::IntegrityMismatch {
                        path: format!("archive member transport integrity mismatch: {:?}", e.path),
                        expected: t.digest.escape_debug().to_string(),
                        actual: m.transport_digest.clone(),
                    })
                }
                Some(_) => {}
                None if transport_required => {
                    return Err(bad(format!(
                        "archive entry {:?} has no transport integrity although {INVENTORY_FILE} \
                         requires {}",
                        e.path,
                        transport_digest::ALGORITHM
                    )))
                }
                None => {}
            }
            if e.kind != KIND_PAYLOAD {
                if let Some(Integrity::Sha256 { digest }) = &e.integrity {
                    if m.sha256.as_deref() != Some(digest.as_str()) {
                        return Err(Error::IntegrityMismatch {
                            path: format!("archive entry integrity mismatch: {:?}", e.path),
                            expected: digest.escape_debug().to_string(),
                            actual: m.sha256.clone().unwrap_or_default(),
                        });
                    }
                }
            }
        }
        let listed: BTreeSet<&str> = self.entries.iter().map(|e| e.path.as_str()).collect();
        if let Some(m) = members.iter().find(|m| !listed.contains(m.path.as_str())) {
            return Err(bad(format!(
                "archive contains a non-inventoried file: {:?}",
                m.path
            )));
        }
        let descriptors: BTreeSet<&str> = self
            .entries
            .iter()
            .filter(|e| e.kind == KIND_DESCRIPTOR && e.included)
            .map(|e| e.path.as_str())
            .collect();
        for s in &self.snapshots {
            if !descriptors.contains(s.descriptor.as_str()) {
                return Err(bad(format!(
                    "{INVENTORY_FILE}: snapshot {:?} has no descriptor entry",
                    s.snapshot_id
                )));
            }
        }
        Ok(())
    }

    /// After the descriptors are parsed: the snapshots staged are the ones
    /// listed, each payload entry belongs to its descriptor's upper with the
    /// descriptor's integrity, image entries have no owner and a sha256.
    pub fn check_snapshots(&self, staged: &[StagedSnapshot<'_>]) -> Result<()> {
        let listed: BTreeSet<&str> = self
            .snapshots
            .iter()
            .map(|s| s.snapshot_id.as_str())
            .collect();
        let by_digest: BTreeMap<&str, &StagedSnapshot<'_>> =
            staged.iter().map(|s| (s.digest, s)).collect();
        let got: BTreeSet<&str> = by_digest.keys().copied().collect();
        if listed != got {
            return Err(bad(format!(
                "{INVENTORY_FILE} lists snapshots {listed:?} but the archive holds {got:?}"
            )));
        }
        for e in self.entries.iter().filter(|e| e.included) {
            match e.kind.as_str() {
                KIND_DESCRIPTOR => {
                    let owner = e.owner_snapshot.as_deref().unwrap_or_default();
                    if e.path != descriptor_path(owner) || !got.contains(owner) {
                        return Err(bad(format!(
                            "{INVENTORY_FILE}: descriptor entry {:?} is not owned by its snapshot",
                            e.path
                        )));
                    }
                }
                KIND_PAYLOAD => {
                    let owner = e.owner_snapshot.as_deref().unwrap_or_default();
                    let s = by_digest.get(owner).ok_or_else(|| {
                        bad(format!(
                            "{INVENTORY_FILE}: payload entry {:?} names no staged snapshot",
                            e.path
                        ))
                    })?;
                    let Some((file, integrity)) = s.upper else {
                        return Err(bad(format!(
                            "{INVENTORY_FILE}: payload entry {:?} belongs to a snapshot without an upper",
                            e.path
                        )));
                    };
                    if e.path != payload_path(owner, file) || e.integrity.as_ref() != integrity {
                        return Err(bad(format!(
                            "{INVENTORY_FILE}: payload entry {:?} does not match its descriptor's \
                             upper file {file:?} and integrity",
                            e.path
                        )));
                    }
                }
                _ => {
                    if e.owner_snapshot.is_some()
                        || !matches!(e.integrity, Some(Integrity::Sha256 { .. }))
                    {
                        return Err(bad(format!(
                            "{INVENTORY_FILE}: image entry {:?} must have no owner and a sha256 integrity",
                            e.path
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A staged snapshot as [`Inventory::check_snapshots`] sees it.
pub struct StagedSnapshot<'a> {
    pub digest: &'a str,
    /// The upper's file name and recorded integrity (file state only).
    pub upper: Option<(&'a str, Option<&'a Integrity>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SINGLE: &str = concat!(
        r#"{"schema":1,"artifact":"snapshot-archive","head":"sha256:"#,
        "1111111111111111111111111111111111111111111111111111111111111111",
        r#"","suggested_name":"x","completeness":"boot-complete","with_parents":false,"with_image":false,"snapshots":[{"snapshot_id":"sha256:"#,
        "1111111111111111111111111111111111111111111111111111111111111111",
        r#"","descriptor":"snapshots/"#,
        "1111111111111111111111111111111111111111111111111111111111111111",
        r#"/snapshot.json"}],"entries":[],"protection_requirements":[],"extensions":{},"requires":["msb-archive-member-blake3-v1"]}"#
    );

    #[test]
    fn a_canonical_inventory_parses_and_reserializes_to_its_bytes() {
        let inv = Inventory::parse(SINGLE.as_bytes()).unwrap();
        assert_eq!(inv.canonical_bytes(), SINGLE.as_bytes());
    }

    #[test]
    fn whitespace_unknown_fields_and_bad_values_are_refused() {
        let pretty =
            serde_json::to_vec_pretty(&serde_json::from_str::<serde_json::Value>(SINGLE).unwrap())
                .unwrap();
        let e = Inventory::parse(&pretty).unwrap_err().to_string();
        assert!(e.contains("not canonical"), "{e}");
        let extra = SINGLE.replacen("{\"schema\":1,", "{\"schema\":1,\"x\":1,", 1);
        assert!(Inventory::parse(extra.as_bytes()).is_err());
        let future = SINGLE.replace(
            "\"requires\":[\"msb-archive-member-blake3-v1\"]",
            "\"requires\":[\"msb-archive-member-blake3-v1\",\"msb-future\"]",
        );
        let e = Inventory::parse(future.as_bytes()).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
        let head = SINGLE.replacen("sha256:1111", "sha256:2222", 1);
        let e = Inventory::parse(head.as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains("archive head is not exactly one listed snapshot"),
            "{e}"
        );
        let partial = SINGLE.replace("boot-complete", "partial");
        let e = Inventory::parse(partial.as_bytes()).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)), "{e}");
    }

    /// Paths and kinds come from the archive: errors show them quoted and
    /// escaped, so a newline or a terminal escape in one cannot forge or
    /// hide part of the message.
    #[test]
    fn attacker_strings_are_printed_escaped() {
        let mut inv = Inventory::parse(SINGLE.as_bytes()).unwrap();
        let hex = "1".repeat(64);
        inv.entries.push(InventoryEntry {
            path: "files/x\n\u{1b}[2Kok".into(),
            owner_snapshot: Some(format!("sha256:{hex}")),
            kind: "file-payload\n".into(),
            included: true,
            encoded_size: 1,
            apparent_size: 1,
            integrity: None,
            transport_integrity: None,
        });
        let member = MemberFacts {
            path: inv.entries[0].path.clone(),
            kind: KIND_PAYLOAD,
            encoded_size: 1,
            apparent_size: 1,
            transport_digest: String::new(),
            sha256: None,
        };
        for members in [vec![], vec![member]] {
            let e = inv.check_members(&members).unwrap_err().to_string();
            assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e}");
            assert!(e.contains(r"files/x\n\u{1b}[2Kok"), "{e}");
        }
        inv.entries[0].included = false;
        let member = MemberFacts {
            path: inv.entries[0].path.clone(),
            kind: KIND_PAYLOAD,
            encoded_size: 1,
            apparent_size: 1,
            transport_digest: String::new(),
            sha256: None,
        };
        let e = inv.check_members(&[member]).unwrap_err().to_string();
        assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e}");
    }
}

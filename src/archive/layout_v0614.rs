//! The member grammar of microsandbox v0.6.14 archives
//! (vectors/msb-0.6.14/SPEC-NOTES.md §9, §11.3), beside v0.6.3's
//! `<dir>/<file>` (`entry_check`):
//!
//! * `archive.json` (the inventory, `inventory.rs`);
//! * `snapshots/<64 lowercase hex>/snapshot.json` (a descriptor);
//! * `files/<64 hex>/<name>` (its upper; that the name is the descriptor's
//!   upper is checked once the descriptor is known);
//! * `images/<manifests|layers|fsmeta|vmdk>/<name>` (their image cache);
//! * the directories `snapshots`, `files`, `images`, `snapshots|files/<hex>`,
//!   `images/<kind>`, with an empty body; they are skipped.
//!
//! Anything else under these names is `unsupported path`. Members of this
//! grammar may not come with a GNU long name or a PAX header: v0.6.14's
//! reader refuses those records (h15, h26), and a name that needs one cannot
//! be in the grammar anyway except for an overlong upper name.
use super::entry_check::{is_sha256_hex, ImageKind, Place};
use super::inventory::INVENTORY_FILE;
use crate::error::{Error, Result};
use crate::snapshot_json::DESCRIPTOR_FILE;

/// Top-level names that belong to this grammar. `archive.json` as a first
/// component is one even with more after it, so `archive.json/manifest.json`
/// is an unsupported path, not a v0.6.3 directory of that name (§11.3: the
/// layout's names are not legacy prefixes; `cache/` has its own grammar in
/// `entry_check`, which admits neither legacy file name).
pub fn is_current_top(parts: &[&str]) -> bool {
    matches!(parts[0], "snapshots" | "files" | "images" | INVENTORY_FILE)
}

fn unsupported(name: &str) -> Error {
    Error::InvalidArchive(format!(
        "archive contains unsupported path: {name} (outside the microsandbox v0.6.14 archive layout)"
    ))
}

/// Classify a member whose first component passed [`is_current_top`].
pub fn classify(parts: &[&str], is_dir: bool, body: u64, name: &str) -> Result<Place> {
    if is_dir {
        let ok = match parts {
            ["snapshots" | "files" | "images"] => true,
            ["snapshots" | "files", hex] => is_sha256_hex(hex),
            ["images", kind] => image_kind(kind).is_some(),
            _ => false,
        };
        if !ok {
            return Err(unsupported(name));
        }
        if body != 0 {
            return Err(Error::InvalidArchive(format!(
                "archive directory has a non-empty body: {name} ({body} bytes)"
            )));
        }
        return Ok(Place::CurrentDir);
    }
    match parts {
        [INVENTORY_FILE] => Ok(Place::Inventory),
        ["snapshots", hex, DESCRIPTOR_FILE] if is_sha256_hex(hex) => {
            Ok(Place::CurrentDescriptor(hex.to_string()))
        }
        ["files", hex, file] if is_sha256_hex(hex) => Ok(Place::CurrentFile {
            hex: hex.to_string(),
            file: file.to_string(),
        }),
        ["images", kind, file] => match image_kind(kind) {
            Some(k) if file.ends_with(k.suffix()) && file.len() > k.suffix().len() => {
                Ok(Place::CurrentImage(k))
            }
            _ => Err(unsupported(name)),
        },
        _ => Err(unsupported(name)),
    }
}

fn image_kind(s: &str) -> Option<ImageKind> {
    Some(match s {
        "manifests" => ImageKind::Manifests,
        "layers" => ImageKind::Layers,
        "fsmeta" => ImageKind::Fsmeta,
        "vmdk" => ImageKind::Vmdk,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, is_dir: bool) -> Result<Place> {
        let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
        classify(&parts, is_dir, 0, name)
    }

    #[test]
    fn the_grammar() {
        let hex = "a".repeat(64);
        assert_eq!(c("archive.json", false).unwrap(), Place::Inventory);
        assert_eq!(
            c(&format!("snapshots/{hex}/snapshot.json"), false).unwrap(),
            Place::CurrentDescriptor(hex.clone())
        );
        assert_eq!(
            c(&format!("files/{hex}/upper.ext4"), false).unwrap(),
            Place::CurrentFile {
                hex: hex.clone(),
                file: "upper.ext4".into()
            }
        );
        assert_eq!(
            c("images/layers/sha256_00.erofs", false).unwrap(),
            Place::CurrentImage(ImageKind::Layers)
        );
        assert_eq!(c(&format!("files/{hex}"), true).unwrap(), Place::CurrentDir);
        for bad in [
            format!("snapshots/{}/snapshot.json", hex.to_uppercase()),
            format!("snapshots/{hex}/other.json"),
            format!("files/{hex}/a/b"),
            "images/layers/x.tar".to_string(),
            "images/other/x.json".to_string(),
            "snapshots/abc/snapshot.json".to_string(),
            "files".to_string(),
        ] {
            let e = c(&bad, false).unwrap_err().to_string();
            assert!(e.contains("unsupported path"), "{bad}: {e}");
        }
        let e = classify(&["snapshots"], true, 1, "snapshots")
            .unwrap_err()
            .to_string();
        assert!(e.contains("non-empty body"), "{e}");
    }
}

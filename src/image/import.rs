//! Importing images from another OCI layout (one written by skopeo, umoci, ...).
use super::oci::{
    kind_of, parse_index, parse_manifest, Descriptor, IndexEntry, Kind, MAX_INDEX_DEPTH,
};
use super::reference::{available_names, entries_named, is_valid_ref_name, pick_entry};
use super::resolve::{expect_image, resolve_descriptor};
use super::store::{blob_path, load_index, not_found, read_json_blob};
use super::write::{add_blob, ensure_layout, upsert_index_entry, ImageUseGuard};
use super::ImagePin;
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::Path;

/// Copy images from another OCI layout (one written by skopeo, umoci, ...)
/// into ours, checking every blob's digest and size as it is copied.
///
/// - `reference: None`: every `index.json` entry of the source, under its own
///   ref name (entries without one are added unnamed).
/// - `reference: Some(r)`: the source image that `r` names (same matching
///   rules as [`resolve`](fn@super::resolve)); if none does and the source
///   holds exactly one entry, that one. Either way it is stored under the
///   name `r`.
///
/// For a multi-arch entry the whole index is copied, with every platform
/// manifest the source holds; the host's platform must be complete. Names
/// are added only after every selected image copied and resolved, so a failed
/// import names nothing (blobs already copied are content-addressed and harmless).
/// Returns one pin per imported entry (an unnamed one is pinned under its digest).
pub fn import_layout(
    images_dir: &Path,
    source_layout: &Path,
    reference: Option<&str>,
) -> Result<Vec<ImagePin>> {
    if let Some(r) = reference.filter(|r| !is_valid_ref_name(r)) {
        return Err(Error::InvalidArgument(format!(
            "{r:?} is not a valid OCI image ref name"
        )));
    }
    let source = load_index(source_layout)?;
    let selected: Vec<(Option<String>, IndexEntry)> = match reference {
        Some(r) => {
            let named = entries_named(&source.manifests, r);
            let entry = if !named.is_empty() {
                pick_entry(&named, r, source_layout)?
            } else if let [only] = source.manifests.as_slice() {
                only
            } else {
                return Err(not_found(
                    r,
                    source_layout,
                    &format!(
                        "no image with that name, and the layout holds {} images, not one ({})",
                        source.manifests.len(),
                        available_names(&source.manifests)
                    ),
                ));
            };
            vec![(Some(r.to_string()), entry.clone())]
        }
        None => select_all(&source.manifests, source_layout)?,
    };

    ensure_layout(images_dir)?;
    // Blobs copied here are unreferenced until named below: keep prune away.
    let _in_use = ImageUseGuard::acquire(images_dir)?;
    let mut copied = BTreeSet::new();
    for (_, entry) in &selected {
        copy_closure(
            source_layout,
            images_dir,
            &entry.descriptor(),
            0,
            &mut copied,
        )?;
    }
    let mut pins = Vec::with_capacity(selected.len());
    for (name, entry) in &selected {
        let label = name.as_deref().unwrap_or(&entry.digest);
        // Blobs the source lacks were skipped while copying; say where they
        // were missing from.
        let resolved = resolve_descriptor(
            images_dir,
            Some(&entry.media_type),
            &entry.digest,
            Some(entry.size),
            0,
        )
        .map_err(|e| match e {
            Error::ImageNotFound(why) => Error::ImageNotFound(format!(
                "cannot import {label} from {}: {why}",
                source_layout.display()
            )),
            other => other,
        })?;
        let (manifest_digest, _, _) = expect_image(resolved, label, source_layout)?;
        pins.push(ImagePin {
            reference: label.to_string(),
            manifest_digest,
        });
    }
    for (name, entry) in &selected {
        upsert_index_entry(images_dir, name.as_deref(), &entry.descriptor())?;
    }
    Ok(pins)
}

/// Every entry of a source index, one per name (several entries sharing a
/// name collapse to the one [`resolve`](fn@super::resolve) would pick);
/// unnamed entries as they are.
fn select_all(
    entries: &[IndexEntry],
    source_layout: &Path,
) -> Result<Vec<(Option<String>, IndexEntry)>> {
    let mut selected = Vec::new();
    let mut names_done = BTreeSet::new();
    for entry in entries {
        match entry.ref_name() {
            None => selected.push((None, entry.clone())),
            Some(name) => {
                if !names_done.insert(name.to_string()) {
                    continue;
                }
                if !is_valid_ref_name(name) {
                    return Err(Error::InvalidArgument(format!(
                        "source layout {} names an image {name:?}, not a valid OCI ref name",
                        source_layout.display()
                    )));
                }
                let same_name: Vec<&IndexEntry> = entries
                    .iter()
                    .filter(|e| e.ref_name() == Some(name))
                    .collect();
                let chosen = pick_entry(&same_name, name, source_layout)?;
                selected.push((Some(name.to_string()), chosen.clone()));
            }
        }
    }
    Ok(selected)
}

/// Copy a blob and everything it references (an index's manifests, a
/// manifest's config and layers). Blobs the source lacks are skipped — the
/// OCI layout spec lets a layout omit blobs (e.g. other platforms); the
/// resolve that follows the copy insists on what the host needs.
fn copy_closure(
    source_layout: &Path,
    images_dir: &Path,
    blob: &Descriptor,
    depth: usize,
    copied: &mut BTreeSet<String>,
) -> Result<()> {
    if !copied.insert(blob.digest.clone()) {
        return Ok(());
    }
    let source_path = blob_path(source_layout, &blob.digest)?;
    let mut file = match File::open(&source_path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("open", &source_path, e)),
    };
    add_blob(images_dir, blob, &mut file)?;
    let children = match kind_of(&blob.media_type) {
        Kind::Manifest => {
            let bytes = read_json_blob(images_dir, &blob.digest, Some(blob.size))?;
            let manifest = parse_manifest(&blob.digest, &bytes.unwrap_or_default())?;
            std::iter::once(manifest.config)
                .chain(manifest.layers)
                .collect()
        }
        Kind::Index if depth < MAX_INDEX_DEPTH => {
            let bytes = read_json_blob(images_dir, &blob.digest, Some(blob.size))?;
            let index = parse_index(&blob.digest, &bytes.unwrap_or_default())?;
            index.manifests.iter().map(IndexEntry::descriptor).collect()
        }
        _ => Vec::new(),
    };
    for child in &children {
        copy_closure(source_layout, images_dir, child, depth + 1, copied)?;
    }
    Ok(())
}

//! Resolving a reference or digest to an image manifest, listing the layout's
//! images, and the blobs an image consists of.
use super::oci::{
    host_architecture, kind_of, parse_index, parse_manifest, sniff_kind, Descriptor, ImageIndex,
    ImageManifest, IndexEntry, Kind, MAX_INDEX_DEPTH, OCI_MANIFEST_MEDIA_TYPE,
};
use super::reference::{available_names, entries_named, pick_entry};
use super::store::{
    blob_path, check_image_complete, is_sha256_digest, load_index, load_index_if_present,
    not_found, read_json_blob,
};
use super::ImagePin;
use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// One image of the layout, as [`list`] reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    /// The `index.json` ref name; `None` for an unnamed entry.
    pub reference: Option<String>,
    /// The platform image manifest (for a multi-arch entry, the host's one).
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: Vec<Descriptor>,
    /// Bytes of every blob the image needs: manifest, config and layers (what
    /// an export ships; a layer listed twice counts once).
    pub total_size: u64,
}

/// What a descriptor in the layout turned out to be.
pub(super) enum Resolved {
    /// An image manifest (the host's one, for an index), with its blob size.
    Image {
        digest: String,
        size: u64,
        manifest: ImageManifest,
    },
    /// An image index with no `linux/<host arch>` manifest; lists what it has.
    NoHostPlatform(Vec<String>),
    /// Neither a manifest nor an index (an artifact, a config, a layer...).
    NotAnImage(String),
}

/// Follow a descriptor to the image manifest the host would run. Checks every
/// blob read against its digest, and that the image's config and layers exist
/// with their declared sizes.
pub(super) fn resolve_descriptor(
    images_dir: &Path,
    media_type: Option<&str>,
    digest: &str,
    size: Option<u64>,
    depth: usize,
) -> Result<Resolved> {
    let Some(bytes) = read_json_blob(images_dir, digest, size)? else {
        return Err(Error::ImageNotFound(format!(
            "blob {digest} is missing from image layout {}",
            images_dir.display()
        )));
    };
    let kind = media_type.map_or_else(|| sniff_kind(&bytes), kind_of);
    match kind {
        Kind::Manifest => {
            let manifest = parse_manifest(digest, &bytes)?;
            check_image_complete(images_dir, digest, &manifest)?;
            Ok(Resolved::Image {
                digest: digest.to_string(),
                size: bytes.len() as u64,
                manifest,
            })
        }
        Kind::Index if depth < MAX_INDEX_DEPTH => {
            let index = parse_index(digest, &bytes)?;
            match index.manifests.iter().find(|e| e.is_for_host()) {
                Some(child) => resolve_descriptor(
                    images_dir,
                    Some(&child.media_type),
                    &child.digest,
                    Some(child.size),
                    depth + 1,
                ),
                None => Ok(Resolved::NoHostPlatform(
                    index
                        .manifests
                        .iter()
                        .filter_map(|e| e.platform.as_ref())
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                        .collect(),
                )),
            }
        }
        Kind::Index => Err(Error::ImageNotFound(format!(
            "image index {digest} nests more than {MAX_INDEX_DEPTH} levels deep"
        ))),
        Kind::Other => Ok(Resolved::NotAnImage(
            media_type.unwrap_or("unknown media type").to_string(),
        )),
    }
}

/// Turn a [`Resolved`] into the manifest the caller asked for, or the error
/// that says why there is none.
pub(super) fn expect_image(
    resolved: Resolved,
    reference: &str,
    images_dir: &Path,
) -> Result<(String, u64, ImageManifest)> {
    match resolved {
        Resolved::Image {
            digest,
            size,
            manifest,
        } => Ok((digest, size, manifest)),
        Resolved::NoHostPlatform(available) => Err(not_found(
            reference,
            images_dir,
            &format!(
                "the image index has no linux/{} manifest (it has: {})",
                host_architecture(),
                if available.is_empty() {
                    "none with a platform".to_string()
                } else {
                    available.join(", ")
                }
            ),
        )),
        Resolved::NotAnImage(media_type) => Err(not_found(
            reference,
            images_dir,
            &format!("the entry is not an image manifest or index ({media_type})"),
        )),
    }
}

/// Resolve a reference or a `sha256:` manifest digest to a pinned image (see
/// the module docs for the rules). Never touches the network.
pub fn resolve(images_dir: &Path, ref_or_digest: &str) -> Result<ImagePin> {
    if ref_or_digest.is_empty() {
        return Err(Error::InvalidArgument(
            "image reference is empty".to_string(),
        ));
    }
    let index = load_index(images_dir)?;
    if is_sha256_digest(ref_or_digest) {
        return resolve_digest(images_dir, &index, ref_or_digest);
    }
    let candidates = entries_named(&index.manifests, ref_or_digest);
    if candidates.is_empty() {
        return Err(not_found(
            ref_or_digest,
            images_dir,
            &format!(
                "no image with that name ({})",
                available_names(&index.manifests)
            ),
        ));
    }
    let entry = pick_entry(&candidates, ref_or_digest, images_dir)?;
    let resolved = resolve_descriptor(
        images_dir,
        Some(&entry.media_type),
        &entry.digest,
        Some(entry.size),
        0,
    )?;
    let (manifest_digest, _, _) = expect_image(resolved, ref_or_digest, images_dir)?;
    Ok(ImagePin {
        reference: entry.ref_name().unwrap_or(ref_or_digest).to_string(),
        manifest_digest,
    })
}

fn resolve_digest(images_dir: &Path, index: &ImageIndex, digest: &str) -> Result<ImagePin> {
    // The name a digest gets: a top-level entry with that digest (preferring a
    // named one), else a named multi-arch entry that lists it, else itself.
    let top_level: Vec<&IndexEntry> = index
        .manifests
        .iter()
        .filter(|e| e.digest == digest)
        .collect();
    let named = top_level
        .iter()
        .find(|e| e.ref_name().is_some())
        .or(top_level.first());
    let (reference, media_type) = match named {
        Some(entry) => (
            entry.ref_name().unwrap_or(digest).to_string(),
            Some(entry.media_type.as_str()),
        ),
        None => (
            parent_index_name(images_dir, index, digest)?.unwrap_or_else(|| digest.to_string()),
            None,
        ),
    };
    if !blob_path(images_dir, digest)?.exists() {
        return Err(not_found(digest, images_dir, "no blob with that digest"));
    }
    let resolved = resolve_descriptor(images_dir, media_type, digest, None, 0)?;
    let (manifest_digest, _, _) = expect_image(resolved, digest, images_dir)?;
    Ok(ImagePin {
        reference,
        manifest_digest,
    })
}

/// The ref name of an `index.json` image index that lists `digest` as one of
/// its platform manifests.
fn parent_index_name(
    images_dir: &Path,
    index: &ImageIndex,
    digest: &str,
) -> Result<Option<String>> {
    for entry in &index.manifests {
        let Some(name) = entry.ref_name() else {
            continue;
        };
        if kind_of(&entry.media_type) != Kind::Index || !is_sha256_digest(&entry.digest) {
            continue;
        }
        let Some(bytes) = read_json_blob(images_dir, &entry.digest, Some(entry.size))? else {
            continue;
        };
        let child_index = parse_index(&entry.digest, &bytes)?;
        if child_index.manifests.iter().any(|c| c.digest == digest) {
            return Ok(Some(name.to_string()));
        }
    }
    Ok(None)
}

/// Every image of the layout, in `index.json` order; empty when there is no
/// layout yet. Entries that are not images (artifacts) and multi-arch entries
/// without a manifest for this host are left out; a corrupt or incomplete
/// image is an error rather than silently missing.
pub fn list(images_dir: &Path) -> Result<Vec<ImageInfo>> {
    let Some(index) = load_index_if_present(images_dir)? else {
        return Ok(Vec::new());
    };
    let mut images = Vec::new();
    for entry in &index.manifests {
        let resolved = resolve_descriptor(
            images_dir,
            Some(&entry.media_type),
            &entry.digest,
            Some(entry.size),
            0,
        )?;
        let Resolved::Image {
            digest,
            size,
            manifest,
        } = resolved
        else {
            continue;
        };
        let blobs = unique_blobs(&digest, size, &manifest);
        images.push(ImageInfo {
            reference: entry.ref_name().map(str::to_string),
            manifest_digest: digest,
            config_digest: manifest.config.digest.clone(),
            total_size: blobs.iter().map(|b| b.size).sum(),
            layers: manifest.layers,
        });
    }
    Ok(images)
}

/// Manifest, config, then layers, each digest once.
fn unique_blobs(digest: &str, size: u64, manifest: &ImageManifest) -> Vec<Descriptor> {
    let own = Descriptor {
        media_type: manifest
            .media_type
            .clone()
            .unwrap_or_else(|| OCI_MANIFEST_MEDIA_TYPE.to_string()),
        digest: digest.to_string(),
        size,
    };
    let mut seen = BTreeSet::new();
    std::iter::once(own)
        .chain(std::iter::once(manifest.config.clone()))
        .chain(manifest.layers.iter().cloned())
        .filter(|d| seen.insert(d.digest.clone()))
        .collect()
}

/// The blobs an image consists of: the manifest blob itself first, then its
/// config, then its layers in order (a layer listed twice appears once, so an
/// export never writes the same file twice). All must be present.
pub fn blobs_of(images_dir: &Path, manifest_digest: &str) -> Result<Vec<Descriptor>> {
    let Some(bytes) = read_json_blob(images_dir, manifest_digest, None)? else {
        return Err(not_found(
            manifest_digest,
            images_dir,
            "no manifest blob with that digest",
        ));
    };
    if sniff_kind(&bytes) == Kind::Index {
        return Err(Error::InvalidArgument(format!(
            "{manifest_digest} is an image index, not an image manifest; resolve it first"
        )));
    }
    let manifest = parse_manifest(manifest_digest, &bytes)?;
    check_image_complete(images_dir, manifest_digest, &manifest)?;
    Ok(unique_blobs(manifest_digest, bytes.len() as u64, &manifest))
}

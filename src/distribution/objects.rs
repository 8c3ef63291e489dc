//! The OCI image manifest of one snapshot, both ways (DESIGN.md "Objects").
//!
//! Built with `oci-spec`'s types; serialized through `serde_json::Value`,
//! whose maps are sorted, so that the same snapshot over the same blobs is
//! the same manifest bytes (oci-spec keeps annotations in a `HashMap`).
use super::media_types as mt;
use crate::artifact::{Artifact, ArtifactFormat};
use crate::error::{Error, Result};
use oci_spec::image::{Descriptor, Digest, ImageManifest, ImageManifestBuilder, MediaType};
use std::collections::HashMap;
use std::str::FromStr;

/// Largest manifest accepted (distribution refuses more than 4 MiB).
pub const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
/// Largest config accepted: a descriptor file.
pub const MAX_CONFIG: u64 = 1024 * 1024;

/// A blob a manifest names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub digest: String,
    pub size: u64,
}

/// What a snapshot's image manifest says, checked for shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotManifest {
    pub config: Blob,
    pub index: Blob,
    pub packs: Vec<Blob>,
    pub snapshot_digest: String,
    pub parent: Option<String>,
    /// `dev.microsnap.since`: the ancestor whose packs the store may lack.
    pub since: Option<String>,
    pub merkle_root: String,
    pub upper_size: u64,
    pub format: ArtifactFormat,
}

/// The facts of a snapshot that go into its manifest besides the blobs.
pub struct ManifestInput<'a> {
    pub artifact: &'a Artifact,
    /// Length of the config: the descriptor's canonical bytes.
    pub config_len: u64,
    pub upper_size: u64,
    pub merkle_root: &'a str,
    pub index: &'a Blob,
    pub packs: &'a [Blob],
    /// The ancestor a `since` push left out.
    pub since: Option<&'a str>,
}

/// The manifest bytes of a snapshot.
pub fn build(input: &ManifestInput) -> Result<Vec<u8>> {
    let art = input.artifact;
    let descriptor = |media_type: &str, blob: &Blob| -> Result<Descriptor> {
        let digest = Digest::from_str(&blob.digest)
            .map_err(|e| Error::Internal(format!("digest {}: {e}", blob.digest)))?;
        Ok(Descriptor::new(
            MediaType::from(media_type),
            blob.size,
            digest,
        ))
    };
    let config = Blob {
        digest: art.digest.clone(),
        size: input.config_len,
    };
    let mut layers = vec![descriptor(mt::CHUNK_INDEX, input.index)?];
    for pack in input.packs {
        layers.push(descriptor(mt::PACK, pack)?);
    }
    let d = &art.descriptor;
    let mut annotations: HashMap<String, String> = HashMap::new();
    let mut put = |k: &str, v: &str| annotations.insert(k.to_string(), v.to_string());
    put(mt::ANNOTATION_SNAPSHOT_DIGEST, &art.digest);
    if let Some(parent) = d.parent() {
        put(mt::ANNOTATION_PARENT, parent);
    }
    if let Some(since) = input.since {
        put(mt::ANNOTATION_SINCE, since);
    }
    put(mt::ANNOTATION_MERKLE_ROOT, input.merkle_root);
    put(mt::ANNOTATION_UPPER_SIZE, &input.upper_size.to_string());
    put(mt::ANNOTATION_IMAGE_REF, &d.image().reference);
    put(
        mt::ANNOTATION_IMAGE_MANIFEST_DIGEST,
        &d.image().manifest_digest,
    );
    put(mt::ANNOTATION_ARTIFACT_FORMAT, art.format().name());
    put(mt::ANNOTATION_CREATED, d.created_at());
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(mt::ARTIFACT_TYPE))
        .config(descriptor(mt::CONFIG, &config)?)
        .layers(layers)
        .annotations(annotations)
        .build()
        .map_err(|e| Error::Internal(format!("build the image manifest: {e}")))?;
    let value = serde_json::to_value(&manifest)
        .map_err(|e| Error::Internal(format!("serialize the image manifest: {e}")))?;
    serde_json::to_vec(&value)
        .map_err(|e| Error::Internal(format!("serialize the image manifest: {e}")))
}

/// Parse and check the manifest of a snapshot; anything else (another kind
/// of image, a missing annotation, a wrong media type) is `InvalidArchive`.
pub fn parse(bytes: &[u8]) -> Result<SnapshotManifest> {
    let bad = |why: String| Error::InvalidArchive(format!("image manifest: {why}"));
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(bad(format!("larger than {MAX_MANIFEST} bytes")));
    }
    let manifest: ImageManifest = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("not an OCI image manifest: {e}")))?;
    if manifest.schema_version() != 2 {
        return Err(bad(format!("schemaVersion {}", manifest.schema_version())));
    }
    if manifest.media_type().as_ref() != Some(&MediaType::ImageManifest) {
        return Err(bad(format!("mediaType is not {}", mt::IMAGE_MANIFEST)));
    }
    if manifest
        .artifact_type()
        .as_ref()
        .map(|m| m.to_string())
        .as_deref()
        != Some(mt::ARTIFACT_TYPE)
    {
        return Err(bad(format!(
            "artifactType is not {} (not a microsnap snapshot)",
            mt::ARTIFACT_TYPE
        )));
    }
    let blob = |d: &Descriptor, media_type: &str, what: &str| -> Result<Blob> {
        if d.media_type().to_string() != media_type {
            return Err(bad(format!(
                "{what} has mediaType {}, not {media_type}",
                d.media_type()
            )));
        }
        let digest = d.digest().to_string();
        if super::chunk_index::sha256_bytes(&digest).is_none() {
            return Err(bad(format!(
                "{what} digest {digest:?} is not sha256:<64 hex>"
            )));
        }
        Ok(Blob {
            digest,
            size: d.size(),
        })
    };
    let config = blob(manifest.config(), mt::CONFIG, "config")?;
    if config.size > MAX_CONFIG {
        return Err(bad(format!("config is {} bytes", config.size)));
    }
    let layers = manifest.layers();
    let Some((first, rest)) = layers.split_first() else {
        return Err(bad("no layers (the chunk index is layers[0])".into()));
    };
    let index = blob(first, mt::CHUNK_INDEX, "layers[0]")?;
    let packs = rest
        .iter()
        .enumerate()
        .map(|(i, d)| blob(d, mt::PACK, &format!("layers[{}]", i + 1)))
        .collect::<Result<Vec<_>>>()?;
    let empty = HashMap::new();
    let annotations = manifest.annotations().as_ref().unwrap_or(&empty);
    let annotation = |key: &str| -> Result<String> {
        annotations
            .get(key)
            .cloned()
            .ok_or_else(|| bad(format!("annotation {key} is missing")))
    };
    let snapshot_digest = annotation(mt::ANNOTATION_SNAPSHOT_DIGEST)?;
    if snapshot_digest != config.digest {
        return Err(bad(format!(
            "annotation {} is {snapshot_digest:?} but the config is {}",
            mt::ANNOTATION_SNAPSHOT_DIGEST,
            config.digest
        )));
    }
    let upper_size_text = annotation(mt::ANNOTATION_UPPER_SIZE)?;
    let upper_size = upper_size_text
        .parse::<u64>()
        .ok()
        .filter(|_| upper_size_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            bad(format!(
                "annotation {} is {upper_size_text:?}",
                mt::ANNOTATION_UPPER_SIZE
            ))
        })?;
    let format_name = annotation(mt::ANNOTATION_ARTIFACT_FORMAT)?;
    let format = ArtifactFormat::ALL
        .into_iter()
        .find(|f| f.name() == format_name)
        .ok_or_else(|| Error::Unsupported(format!("snapshot artifact format {format_name:?}")))?;
    Ok(SnapshotManifest {
        config,
        index,
        packs,
        snapshot_digest,
        parent: annotations.get(mt::ANNOTATION_PARENT).cloned(),
        since: match annotations.get(mt::ANNOTATION_SINCE) {
            Some(since) if super::chunk_index::sha256_bytes(since).is_none() => {
                return Err(bad(format!(
                    "annotation {} is {since:?}, not a sha256 digest",
                    mt::ANNOTATION_SINCE
                )))
            }
            since => since.cloned(),
        },
        merkle_root: annotation(mt::ANNOTATION_MERKLE_ROOT)?,
        upper_size,
        format,
    })
}

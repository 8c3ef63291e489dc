//! The OCI JSON shapes microsnap reads (serde ignores unknown fields, as OCI
//! requires), the media types it knows, and telling a manifest from an index.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The annotation OCI tools use to name an `index.json` entry.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The ref name of one raw `index.json` entry: its
/// [`REF_NAME_ANNOTATION`] when that is a string. Every reader and writer
/// of raw entries (prune, usage, `add_ref`) decides "named" with this one
/// function, so an entry one of them calls unnamed is unnamed to all (an
/// annotation that is not a string names nothing).
pub(crate) fn entry_name(entry: &serde_json::Value) -> Option<&str> {
    entry
        .get("annotations")
        .and_then(|a| a.get(REF_NAME_ANNOTATION))
        .and_then(serde_json::Value::as_str)
}
/// Image indexes may nest; real ones are one level deep. The limit stops cycles.
pub(super) const MAX_INDEX_DEPTH: usize = 4;

/// An OCI content descriptor (the fields microsnap uses; others are ignored).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// The `oci-layout` marker file.
#[derive(Deserialize)]
pub(super) struct LayoutMarker {
    #[serde(rename = "imageLayoutVersion")]
    pub(super) image_layout_version: String,
}

/// One descriptor of `index.json` or of an image index.
#[derive(Clone, Deserialize)]
pub(super) struct IndexEntry {
    #[serde(rename = "mediaType")]
    pub(super) media_type: String,
    pub(super) digest: String,
    pub(super) size: u64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(super) platform: Option<Platform>,
}

impl IndexEntry {
    pub(super) fn ref_name(&self) -> Option<&str> {
        self.annotations
            .as_ref()
            .and_then(|a| a.get(REF_NAME_ANNOTATION))
            .map(String::as_str)
    }
    pub(super) fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
        }
    }
    pub(super) fn is_for_host(&self) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == host_architecture())
    }
}

/// The platform an image index entry is for.
#[derive(Clone, Deserialize)]
pub(super) struct Platform {
    pub(super) architecture: String,
    pub(super) os: String,
}

/// An image index, and the shape of `index.json`.
#[derive(Deserialize)]
pub(super) struct ImageIndex {
    pub(super) manifests: Vec<IndexEntry>,
}

/// An image manifest: its config and layers.
#[derive(Deserialize)]
pub(super) struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub(super) media_type: Option<String>,
    pub(super) config: Descriptor,
    pub(super) layers: Vec<Descriptor>,
}

/// What a media type says a blob is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Manifest,
    Index,
    Other,
}

pub(super) fn kind_of(media_type: &str) -> Kind {
    match media_type {
        OCI_MANIFEST_MEDIA_TYPE | DOCKER_MANIFEST_MEDIA_TYPE => Kind::Manifest,
        OCI_INDEX_MEDIA_TYPE | DOCKER_LIST_MEDIA_TYPE => Kind::Index,
        _ => Kind::Other,
    }
}

/// The OCI (GOARCH) name of the host CPU architecture.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// Tell a manifest from an index when no descriptor says which (a bare digest):
/// by its own `mediaType`, else by its shape.
pub(super) fn sniff_kind(bytes: &[u8]) -> Kind {
    #[derive(Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        layers: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Shape>(bytes) {
        Ok(Shape {
            media_type: Some(m),
            ..
        }) => kind_of(&m),
        Ok(Shape {
            manifests: Some(_), ..
        }) => Kind::Index,
        Ok(Shape {
            layers: Some(_), ..
        }) => Kind::Manifest,
        _ => Kind::Other,
    }
}

pub(super) fn parse_manifest(digest: &str, bytes: &[u8]) -> Result<ImageManifest> {
    let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|e| {
        Error::ImageNotFound(format!("blob {digest} is not a valid image manifest: {e}"))
    })?;
    if manifest.schema_version != 2 {
        return Err(Error::ImageNotFound(format!(
            "blob {digest} is an image manifest with schemaVersion {} (only 2 is supported)",
            manifest.schema_version
        )));
    }
    Ok(manifest)
}

pub(super) fn parse_index(digest: &str, bytes: &[u8]) -> Result<ImageIndex> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::ImageNotFound(format!("blob {digest} is not a valid image index: {e}")))
}

//! The local OCI image layout (`<home>/images`).
//!
//! The layout is a plain OCI image layout
//! (<https://github.com/opencontainers/image-spec/blob/main/image-layout.md>):
//! an `oci-layout` marker, an `index.json` listing manifest descriptors, and
//! content-addressed blobs under `blobs/sha256/<hex>`. Any OCI tool can fill it
//! (`skopeo copy docker://alpine:3.20 oci:<home>/images:alpine:3.20`), and
//! microsnap never reaches a network: an image is either in the layout or it
//! is not found.
//!
//! # How a reference resolves
//!
//! 1. `sha256:<64 lowercase hex>` is a digest. It resolves through the blob
//!    store: an `index.json` entry with that digest (its ref name becomes the
//!    pin's reference), else a manifest listed inside an indexed image index
//!    (the parent entry's ref name), else any blob that parses as an image
//!    manifest or index (the digest itself becomes the reference).
//! 2. Anything else is a reference, matched against the
//!    `org.opencontainers.image.ref.name` annotations of `index.json`:
//!    first **exactly**, then, only if nothing matched exactly, after docker's
//!    familiar-name normalization of both sides: a missing registry means
//!    `docker.io`, a one-component name on `docker.io` gets `library/`, and a
//!    missing tag (with no `@digest`) means `:latest`. So `alpine:3.20`,
//!    `library/alpine:3.20` and `docker.io/library/alpine:3.20` all find an
//!    image stored as any one of them, while `ghcr.io/x/alpine:3.20` never
//!    finds `alpine:3.20`. The pin's reference is the name as stored in the
//!    layout, so it does not depend on how the caller spelled it.
//! 3. An entry that is an image index (multi-arch) resolves to the manifest
//!    for `linux/<host architecture>` inside it: sandboxes are Linux guests
//!    whatever the host OS, and they run on the host's CPU.
//!
//! Every manifest and index read from the store is checked against its digest
//! before it is trusted; the config and layer blobs of a resolved image must be
//! present with their declared sizes.
//!
//! Errors: a missing or malformed layout and an unknown reference are
//! [`Error::ImageNotFound`]; a malformed digest or reference passed by the
//! caller is [`Error::InvalidArgument`]; a blob whose bytes do not match its
//! name is [`Error::IntegrityMismatch`]; a blob offered to [`add_blob`] that
//! differs from its descriptor is [`Error::InvalidArchive`].
use crate::error::{Error, IoContext, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use crate::manifest::ImagePin;

/// The annotation OCI tools use to name an `index.json` entry.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const EMPTY_INDEX_CONTENT: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
/// Manifests, indexes and index.json are small; refusing anything larger keeps
/// a hostile layout from making us read gigabytes into memory.
const MAX_JSON_BYTES: u64 = 16 << 20;
/// Image indexes may nest; real ones are one level deep. The limit stops cycles.
const MAX_INDEX_DEPTH: usize = 4;
const MAX_REFERENCE_LEN: usize = 4096;

/// An OCI content descriptor (the fields microsnap uses; others are ignored).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

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

// ---------------------------------------------------------------------------
// On-disk JSON shapes. serde ignores unknown fields, as OCI requires.

#[derive(Deserialize)]
struct LayoutMarker {
    #[serde(rename = "imageLayoutVersion")]
    image_layout_version: String,
}

#[derive(Clone, Deserialize)]
struct IndexEntry {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    platform: Option<Platform>,
}

impl IndexEntry {
    fn ref_name(&self) -> Option<&str> {
        self.annotations
            .as_ref()
            .and_then(|a| a.get(REF_NAME_ANNOTATION))
            .map(String::as_str)
    }
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
        }
    }
    fn is_for_host(&self) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == host_architecture())
    }
}

#[derive(Clone, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct ImageIndex {
    manifests: Vec<IndexEntry>,
}

#[derive(Deserialize)]
struct ImageManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Manifest,
    Index,
    Other,
}

fn kind_of(media_type: &str) -> Kind {
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

// ---------------------------------------------------------------------------
// Digests and paths

/// `sha256:` followed by exactly 64 lowercase hex digits.
fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn sha256_digest_of(hasher: Sha256) -> String {
    let mut out = String::with_capacity(71);
    out.push_str("sha256:");
    for byte in hasher.finalize() {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Where the blob `digest` lives in the layout. The digest must be
/// `sha256:<64 lowercase hex>`; anything else (another algorithm, `..`, `/`)
/// is refused, so a digest taken from untrusted JSON can never name a path
/// outside `blobs/sha256/`.
pub fn blob_path(images_dir: &Path, digest: &str) -> Result<PathBuf> {
    if !is_sha256_digest(digest) {
        return Err(Error::InvalidArgument(format!(
            "blob digest {digest:?} is not sha256:<64 lowercase hex digits>"
        )));
    }
    Ok(blobs_dir(images_dir).join(&digest["sha256:".len()..]))
}

fn blobs_dir(images_dir: &Path) -> PathBuf {
    images_dir.join("blobs").join("sha256")
}

// ---------------------------------------------------------------------------
// Reading the layout

fn not_found(reference: &str, images_dir: &Path, why: &str) -> Error {
    Error::ImageNotFound(format!(
        "{reference} in image layout {}: {why}",
        images_dir.display()
    ))
}

fn malformed_layout(images_dir: &Path, why: impl std::fmt::Display) -> Error {
    Error::ImageNotFound(format!(
        "image layout {} is malformed: {why}",
        images_dir.display()
    ))
}

/// Read a whole small file, refusing one larger than [`MAX_JSON_BYTES`].
/// `Ok(None)` when it does not exist.
fn read_small_file(path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", path, e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut bytes)
        .ctx("read", path)?;
    if bytes.len() as u64 > MAX_JSON_BYTES {
        // In a layout this is a layer where a manifest was expected, or a
        // corrupt index.json: either way no usable image.
        return Err(Error::ImageNotFound(format!(
            "{} is larger than {MAX_JSON_BYTES} bytes, so it is not an OCI manifest, index \
             or index.json",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

/// The layout's index, or `None` when there is no layout there yet (no
/// directory, or a directory with neither `oci-layout` nor `index.json`).
fn load_index_if_present(images_dir: &Path) -> Result<Option<ImageIndex>> {
    let marker = read_small_file(&images_dir.join(OCI_LAYOUT_FILE))?;
    let index = read_small_file(&images_dir.join(INDEX_FILE))?;
    match (marker, index) {
        (None, None) => Ok(None),
        (_, None) => Err(malformed_layout(images_dir, "index.json is missing")),
        (marker, Some(index)) => {
            if let Some(marker) = marker {
                check_layout_marker(images_dir, &marker)?;
            }
            let index: ImageIndex = serde_json::from_slice(&index)
                .map_err(|e| malformed_layout(images_dir, format!("index.json: {e}")))?;
            Ok(Some(index))
        }
    }
}

fn check_layout_marker(images_dir: &Path, bytes: &[u8]) -> Result<()> {
    let marker: LayoutMarker = serde_json::from_slice(bytes)
        .map_err(|e| malformed_layout(images_dir, format!("oci-layout: {e}")))?;
    if !marker.image_layout_version.starts_with("1.") {
        return Err(malformed_layout(
            images_dir,
            format!(
                "oci-layout: unsupported imageLayoutVersion {:?}",
                marker.image_layout_version
            ),
        ));
    }
    Ok(())
}

fn load_index(images_dir: &Path) -> Result<ImageIndex> {
    load_index_if_present(images_dir)?.ok_or_else(|| {
        Error::ImageNotFound(format!(
            "image layout {} does not exist (no oci-layout or index.json); fill it with \
             `skopeo copy ... oci:{}:REF` or `microsnap image import`",
            images_dir.display(),
            images_dir.display()
        ))
    })
}

/// Read a JSON blob (manifest or index) and check its bytes against its digest
/// (and size, when known). `Ok(None)` when the blob is absent.
fn read_json_blob(
    images_dir: &Path,
    digest: &str,
    expected_size: Option<u64>,
) -> Result<Option<Vec<u8>>> {
    let path = blob_path(images_dir, digest)?;
    let Some(bytes) = read_small_file(&path)? else {
        return Ok(None);
    };
    let mut hasher = Sha256::new();
    hasher.update(&bytes);
    let actual = sha256_digest_of(hasher);
    if actual != digest {
        return Err(Error::IntegrityMismatch {
            path: path.display().to_string(),
            expected: digest.to_string(),
            actual,
        });
    }
    if let Some(size) = expected_size.filter(|&s| s != bytes.len() as u64) {
        return Err(Error::IntegrityMismatch {
            path: path.display().to_string(),
            expected: format!("{size} bytes"),
            actual: format!("{} bytes", bytes.len()),
        });
    }
    Ok(Some(bytes))
}

/// Tell a manifest from an index when no descriptor says which (a bare digest):
/// by its own `mediaType`, else by its shape.
fn sniff_kind(bytes: &[u8]) -> Kind {
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

fn parse_manifest(digest: &str, bytes: &[u8]) -> Result<ImageManifest> {
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

fn parse_index(digest: &str, bytes: &[u8]) -> Result<ImageIndex> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::ImageNotFound(format!("blob {digest} is not a valid image index: {e}")))
}

/// What a descriptor in the layout turned out to be.
enum Resolved {
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
fn resolve_descriptor(
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

fn check_image_complete(images_dir: &Path, digest: &str, manifest: &ImageManifest) -> Result<()> {
    for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let path = blob_path(images_dir, &blob.digest)?;
        let present = match fs::metadata(&path) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("stat", &path, e)),
        };
        if present != Some(blob.size) {
            let why = present.map_or("missing".to_string(), |n| {
                format!("{n} bytes, manifest says {}", blob.size)
            });
            return Err(Error::ImageNotFound(format!(
                "image {digest} in layout {} is incomplete: blob {} is {why}",
                images_dir.display(),
                blob.digest
            )));
        }
    }
    Ok(())
}

/// Turn a [`Resolved`] into the manifest the caller asked for, or the error
/// that says why there is none.
fn expect_image(
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

// ---------------------------------------------------------------------------
// Reference matching

/// Docker's familiar-name normalization: `alpine` → `docker.io/library/alpine:latest`.
/// `None` for a string that has no name part.
fn normalize_reference(reference: &str) -> Option<String> {
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_and_tag[..last_slash + i],
            Some(&name_and_tag[last_slash + i + 1..]),
        ),
        None => (name_and_tag, None),
    };
    if name.is_empty() {
        return None;
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_string())
        }
        _ => ("docker.io", name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => out.push_str(&format!(":{t}")),
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push_str(&format!("@{d}"));
    }
    Some(out)
}

/// The index entries `reference` names: exact ref-name matches, else
/// matches after normalization (see the module docs).
fn entries_named<'a>(entries: &'a [IndexEntry], reference: &str) -> Vec<&'a IndexEntry> {
    let exact: Vec<_> = entries
        .iter()
        .filter(|e| e.ref_name() == Some(reference))
        .collect();
    if !exact.is_empty() {
        return exact;
    }
    let Some(wanted) = normalize_reference(reference) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter(|e| e.ref_name().and_then(normalize_reference).as_deref() == Some(&wanted))
        .collect()
}

/// One entry among several that share a name: the only digest, else the
/// host's platform, else the name is ambiguous.
fn pick_entry<'a>(
    candidates: &[&'a IndexEntry],
    reference: &str,
    images_dir: &Path,
) -> Result<&'a IndexEntry> {
    let distinct = |list: &[&IndexEntry]| {
        list.iter()
            .map(|e| e.digest.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    };
    let first = candidates
        .first()
        .copied()
        .ok_or_else(|| not_found(reference, images_dir, "no image with that name"))?;
    if distinct(candidates) == 1 {
        return Ok(first);
    }
    let for_host: Vec<&IndexEntry> = candidates
        .iter()
        .copied()
        .filter(|e| e.is_for_host())
        .collect();
    if let (Some(entry), 1) = (for_host.first(), distinct(&for_host)) {
        return Ok(entry);
    }
    let names: Vec<String> = candidates
        .iter()
        .map(|e| format!("{} -> {}", e.ref_name().unwrap_or("?"), e.digest))
        .collect();
    Err(Error::InvalidArgument(format!(
        "image reference {reference} is ambiguous in layout {}: {}",
        images_dir.display(),
        names.join(", ")
    )))
}

fn available_names(entries: &[IndexEntry]) -> String {
    let names: BTreeSet<&str> = entries.iter().filter_map(IndexEntry::ref_name).collect();
    if names.is_empty() {
        return "the layout has no named images".to_string();
    }
    let shown: Vec<&str> = names.iter().copied().take(20).collect();
    let more = if names.len() > shown.len() {
        ", ..."
    } else {
        ""
    };
    format!("available: {}{more}", shown.join(", "))
}

// ---------------------------------------------------------------------------
// Public queries

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

// ---------------------------------------------------------------------------
// Writing the layout

/// Create the layout if missing: the directory, `blobs/sha256/`, `oci-layout`
/// and an empty `index.json`. An existing layout is left as it is (a malformed
/// marker is an error; nothing is overwritten).
pub fn ensure_layout(images_dir: &Path) -> Result<()> {
    let blobs = blobs_dir(images_dir);
    fs::create_dir_all(&blobs).ctx("create directory", &blobs)?;
    let _lock = LayoutLock::acquire(images_dir)?;
    let marker_path = images_dir.join(OCI_LAYOUT_FILE);
    match read_small_file(&marker_path)? {
        Some(bytes) => check_layout_marker(images_dir, &bytes)?,
        None => write_atomically(images_dir, OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT)?,
    }
    if !images_dir.join(INDEX_FILE).exists() {
        write_atomically(images_dir, INDEX_FILE, EMPTY_INDEX_CONTENT)?;
    }
    Ok(())
}

/// An exclusive `flock` on the layout directory itself, held while
/// `index.json` is read, changed and replaced, so two writers never lose each
/// other's entries. Locking the directory adds no file to the layout.
struct LayoutLock {
    _held: File,
}

impl LayoutLock {
    fn acquire(images_dir: &Path) -> Result<LayoutLock> {
        let dir = File::open(images_dir).ctx("open", images_dir)?;
        flock_exclusive(&dir).ctx("lock", images_dir)?;
        Ok(LayoutLock { _held: dir })
    }
}

/// Block until `file` holds an exclusive flock (released when it is closed).
fn flock_exclusive(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: flock only reads the descriptor number, which `file` keeps
        // open for the duration of the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temp file name, unique across processes and threads.
fn temp_name(stem: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{stem}.tmp-{}-{n}", std::process::id())
}

/// Removes a temp file unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// Write `dir/name` so readers see the old or the new bytes, never a mix:
/// temp file, fsync, rename, fsync the directory.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let mut temp = TempFile {
        path: dir.join(temp_name(name)),
        keep: false,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp.path)
        .ctx("create", &temp.path)?;
    file.write_all(bytes).ctx("write", &temp.path)?;
    file.sync_all().ctx("fsync", &temp.path)?;
    let target = dir.join(name);
    fs::rename(&temp.path, &target).ctx("rename into place", &target)?;
    temp.keep = true;
    sync_dir(dir)
}

/// Read `reader` to its end, hashing it and handing each chunk to `sink`
/// (when there is one). Returns the byte count and the hash.
fn stream_hashed(
    reader: &mut dyn Read,
    mut sink: Option<(&mut dyn Write, &Path)>,
    digest: &str,
) -> Result<(u64, Sha256)> {
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Io {
                    context: format!("read blob {digest}"),
                    source: e,
                })
            }
        };
        hasher.update(&buf[..n]);
        count += n as u64;
        if let Some((writer, path)) = sink.as_mut() {
            writer.write_all(&buf[..n]).ctx("write", path)?;
        }
    }
    Ok((count, hasher))
}

/// Store one blob read from `reader`, checking it is exactly `expected`
/// (size and sha256). Reads at most `expected.size + 1` bytes. The blob is
/// streamed to a temp file in `blobs/sha256/`, fsynced and renamed into
/// place, so a reader never sees a partial blob. A blob already present with
/// the right size is kept (the stream is still checked, but not written).
/// A mismatch is [`Error::InvalidArchive`] naming the digest; nothing is left
/// behind.
pub fn add_blob(images_dir: &Path, expected: &Descriptor, reader: &mut dyn Read) -> Result<()> {
    let final_path = blob_path(images_dir, &expected.digest)?;
    ensure_layout(images_dir)?;
    let mut limited = reader.take(expected.size.saturating_add(1));
    let check = |count: u64, hasher: Sha256| -> Result<()> {
        if count != expected.size {
            let got = if count > expected.size {
                format!("more than {}", expected.size)
            } else {
                count.to_string()
            };
            return Err(Error::InvalidArchive(format!(
                "blob {} has the wrong size: expected {} bytes, got {got}",
                expected.digest, expected.size
            )));
        }
        let actual = sha256_digest_of(hasher);
        if actual != expected.digest {
            return Err(Error::InvalidArchive(format!(
                "blob {} has the wrong content: its digest is {actual}",
                expected.digest
            )));
        }
        Ok(())
    };

    if fs::metadata(&final_path).is_ok_and(|m| m.len() == expected.size) {
        let (count, hasher) = stream_hashed(&mut limited, None, &expected.digest)?;
        return check(count, hasher);
    }

    let dir = blobs_dir(images_dir);
    let mut temp = TempFile {
        path: dir.join(temp_name(&expected.digest["sha256:".len()..])),
        keep: false,
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp.path)
        .ctx("create", &temp.path)?;
    let mut writer = io::BufWriter::with_capacity(1 << 20, file);
    let (count, hasher) = stream_hashed(
        &mut limited,
        Some((&mut writer, &temp.path)),
        &expected.digest,
    )?;
    check(count, hasher)?;
    let file = writer
        .into_inner()
        .map_err(|e| Error::io("write", &temp.path, e.into_error()))?;
    file.sync_all().ctx("fsync", &temp.path)?;
    fs::rename(&temp.path, &final_path).ctx("rename into place", &final_path)?;
    temp.keep = true;
    sync_dir(&dir)
}

/// Whether `reference` is a valid `org.opencontainers.image.ref.name`:
/// `component ("/" component)*`, a component being alphanumeric runs joined
/// by one of `-._:@+` or by `--`.
fn is_valid_ref_name(reference: &str) -> bool {
    fn valid_component(component: &str) -> bool {
        let bytes = component.as_bytes();
        let is_separator = |b: u8| matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'+');
        if bytes.is_empty()
            || !bytes[0].is_ascii_alphanumeric()
            || !bytes[bytes.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        let mut run = String::new();
        for &b in bytes {
            if b.is_ascii_alphanumeric() {
                if !(run.is_empty() || run.len() == 1 || run == "--") {
                    return false;
                }
                run.clear();
            } else if is_separator(b) {
                run.push(b as char);
            } else {
                return false;
            }
        }
        true
    }
    !reference.is_empty()
        && reference.len() <= MAX_REFERENCE_LEN
        && reference.split('/').all(valid_component)
}

/// Name an image: point the `index.json` entry annotated with `reference` at
/// `manifest` (adding it, or replacing the entry that had that name), creating
/// the layout if needed. The manifest (or image index) blob must already be
/// in the store with the descriptor's size. Other entries and unknown fields
/// are kept; the file is replaced atomically under a lock.
pub fn add_ref(images_dir: &Path, reference: &str, manifest: &Descriptor) -> Result<()> {
    if !is_valid_ref_name(reference) {
        return Err(Error::InvalidArgument(format!(
            "{reference:?} is not a valid OCI image ref name \
             (components of letters and digits joined by one of -._:@+ or --, separated by /)"
        )));
    }
    ensure_layout(images_dir)?;
    check_indexable(images_dir, manifest)?;
    upsert_index_entry(images_dir, Some(reference), manifest)
}

/// The blob `manifest` names exists, has its size and digest, and is of a
/// media type an index entry can name.
fn check_indexable(images_dir: &Path, manifest: &Descriptor) -> Result<()> {
    let kind = kind_of(&manifest.media_type);
    if kind == Kind::Other {
        return Err(Error::InvalidArgument(format!(
            "cannot name a blob of media type {:?}: an index entry must be an image manifest \
             or image index",
            manifest.media_type
        )));
    }
    let Some(bytes) = read_json_blob(images_dir, &manifest.digest, Some(manifest.size))? else {
        return Err(Error::InvalidArgument(format!(
            "manifest blob {} is not in image layout {}; add it first",
            manifest.digest,
            images_dir.display()
        )));
    };
    match kind {
        Kind::Manifest => parse_manifest(&manifest.digest, &bytes).map(drop),
        _ => parse_index(&manifest.digest, &bytes).map(drop),
    }
}

/// Add or replace one `index.json` entry. Named: replaces every entry with
/// that name (at the first one's position). Unnamed: added unless an unnamed
/// entry with that digest exists. Writes nothing when nothing changes.
fn upsert_index_entry(
    images_dir: &Path,
    reference: Option<&str>,
    manifest: &Descriptor,
) -> Result<()> {
    let _lock = LayoutLock::acquire(images_dir)?;
    let index_path = images_dir.join(INDEX_FILE);
    let bytes = read_small_file(&index_path)?
        .ok_or_else(|| malformed_layout(images_dir, "index.json is missing"))?;
    let mut index: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| malformed_layout(images_dir, format!("index.json: {e}")))?;
    let entries = index
        .get_mut("manifests")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or_else(|| malformed_layout(images_dir, "index.json has no manifests array"))?;

    let name_of = |entry: &serde_json::Value| {
        entry
            .get("annotations")
            .and_then(|a| a.get(REF_NAME_ANNOTATION))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let same_target = |entry: &serde_json::Value| {
        entry.get("digest").and_then(serde_json::Value::as_str) == Some(&manifest.digest)
            && entry.get("mediaType").and_then(serde_json::Value::as_str)
                == Some(&manifest.media_type)
            && entry.get("size").and_then(serde_json::Value::as_u64) == Some(manifest.size)
    };
    let matching: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| name_of(e).as_deref() == reference)
        .map(|(i, _)| i)
        .collect();
    let unchanged = match reference {
        Some(_) => matching.len() == 1 && same_target(&entries[matching[0]]),
        None => matching.iter().any(|&i| same_target(&entries[i])),
    };
    if unchanged {
        return Ok(());
    }

    let mut entry = serde_json::json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": manifest.size,
    });
    if let Some(name) = reference {
        entry["annotations"] = serde_json::json!({ REF_NAME_ANNOTATION: name });
        let position = matching.first().copied().unwrap_or(entries.len());
        for &i in matching.iter().rev() {
            entries.remove(i);
        }
        entries.insert(position.min(entries.len()), entry);
    } else {
        entries.push(entry);
    }
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| Error::Internal(format!("serializing index.json: {e}")))?;
    write_atomically(images_dir, INDEX_FILE, &bytes)
}

// ---------------------------------------------------------------------------
// Import from another layout

/// Copy images from another OCI layout (one written by skopeo, umoci, ...)
/// into ours, checking every blob's digest and size as it is copied.
///
/// - `reference: None`: every `index.json` entry of the source, under its own
///   ref name (entries without one are added unnamed).
/// - `reference: Some(r)`: the source image that `r` names (same matching
///   rules as [`resolve`]); if none does and the source holds exactly one
///   entry, that one. Either way it is stored under the name `r`.
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
/// name collapse to the one [`resolve`] would pick); unnamed entries as they are.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_follows_docker_familiar_names() {
        let n = |s: &str| normalize_reference(s).unwrap();
        assert_eq!(n("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(n("alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(n("library/alpine:3.20"), "docker.io/library/alpine:3.20");
        assert_eq!(n("docker.io/library/alpine:3.20"), n("alpine:3.20"));
        assert_eq!(n("index.docker.io/alpine:3.20"), n("alpine:3.20"));
        assert_eq!(n("ghcr.io/x/alpine:3.20"), "ghcr.io/x/alpine:3.20");
        assert_eq!(n("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(n("localhost/app:1"), "localhost/app:1");
        assert_eq!(n("alpine@sha256:ab"), "docker.io/library/alpine@sha256:ab");
        assert!(normalize_reference(":tag").is_none());
    }

    #[test]
    fn ref_name_grammar() {
        for good in [
            "alpine",
            "alpine:3.20",
            "docker.io/library/alpine:3.20",
            "a--b",
            "x@sha256:00",
            "v1.0+build",
        ] {
            assert!(is_valid_ref_name(good), "{good}");
        }
        for bad in [
            "", "/a", "a/", "a//b", "-a", "a-", "a..b", "a---b", "a b", "a\nb", "../x",
        ] {
            assert!(!is_valid_ref_name(bad), "{bad}");
        }
    }

    #[test]
    fn digest_form_is_strict() {
        let hex = "a".repeat(64);
        assert!(is_sha256_digest(&format!("sha256:{hex}")));
        assert!(!is_sha256_digest(&format!("sha256:{}", "A".repeat(64))));
        assert!(!is_sha256_digest(&format!("sha512:{hex}")));
        assert!(!is_sha256_digest(&format!("sha256:{hex}0")));
        assert!(!is_sha256_digest("sha256:../../etc/passwd"));
    }
}

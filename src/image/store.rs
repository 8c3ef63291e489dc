//! The blob store and the layout files: digest validation, blob paths, and
//! reading (and checking) blobs, `oci-layout` and `index.json`.
use super::oci::{ImageIndex, ImageManifest, LayoutMarker};
use crate::error::{Error, IoContext, Result};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub(super) const OCI_LAYOUT_FILE: &str = "oci-layout";
pub(super) const INDEX_FILE: &str = "index.json";
pub(super) const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
pub(super) const EMPTY_INDEX_CONTENT: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
/// Manifests, indexes and index.json are small; refusing anything larger keeps
/// a hostile layout from making us read gigabytes into memory.
const MAX_JSON_BYTES: u64 = 16 << 20;

/// `sha256:` followed by exactly 64 lowercase hex digits.
pub(super) fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(super) fn sha256_digest_of(hasher: Sha256) -> String {
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

pub(super) fn blobs_dir(images_dir: &Path) -> PathBuf {
    images_dir.join("blobs").join("sha256")
}

pub(super) fn not_found(reference: &str, images_dir: &Path, why: &str) -> Error {
    Error::ImageNotFound(format!(
        "{reference} in image layout {}: {why}",
        images_dir.display()
    ))
}

pub(super) fn malformed_layout(images_dir: &Path, why: impl std::fmt::Display) -> Error {
    Error::ImageNotFound(format!(
        "image layout {} is malformed: {why}",
        images_dir.display()
    ))
}

/// Read a whole small file, refusing one larger than [`MAX_JSON_BYTES`].
/// `Ok(None)` when it does not exist.
pub(super) fn read_small_file(path: &Path) -> Result<Option<Vec<u8>>> {
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
pub(super) fn load_index_if_present(images_dir: &Path) -> Result<Option<ImageIndex>> {
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

pub(super) fn check_layout_marker(images_dir: &Path, bytes: &[u8]) -> Result<()> {
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

pub(super) fn load_index(images_dir: &Path) -> Result<ImageIndex> {
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
pub(super) fn read_json_blob(
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

pub(super) fn check_image_complete(
    images_dir: &Path,
    digest: &str,
    manifest: &ImageManifest,
) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

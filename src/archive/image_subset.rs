//! `WithImage`: the pinned image's OCI blobs (manifest, config, layers) as an
//! OCI image layout subset under `oci-image/` (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`), written on export and checked and added to
//! `<home>/images` on import.
use super::entry_check::{ImageFile, IMAGE_DIR};
use super::tar_reader::{Entry, TarReader};
use super::tar_writer::{FileMeta, TarWriter};
use crate::error::{Error, IoContext, Result};
use crate::home::Home;
use crate::image::{self, Descriptor, OCI_INDEX_MEDIA_TYPE, REF_NAME_ANNOTATION};
use crate::manifest::ImagePin;
use crate::progress::Monitor;
use crate::publish::Staging;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::PathBuf;

const OCI_LAYOUT_BYTES: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Largest `index.json` / `oci-layout` we read from an archive.
const MAX_LAYOUT_JSON: u64 = 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct IndexJson {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<IndexEntry>,
}

#[derive(Serialize, Deserialize)]
struct IndexEntry {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// One image to ship: its name, its manifest descriptor and all its blobs.
pub struct ImageToShip {
    pub reference: String,
    pub blobs: Vec<Descriptor>,
}

/// The images the exported snapshots pin, each once, with every blob present.
pub fn plan(home: &Home, pins: &[&ImagePin]) -> Result<Vec<ImageToShip>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for pin in pins {
        if !seen.insert(pin.manifest_digest.clone()) {
            continue;
        }
        let blobs = image::blobs_of(&home.images_dir(), &pin.manifest_digest)?;
        out.push(ImageToShip {
            reference: pin.reference.clone(),
            blobs,
        });
    }
    Ok(out)
}

/// Bytes of blob data `write` will produce.
pub fn total_bytes(images: &[ImageToShip]) -> u64 {
    images.iter().flat_map(|i| &i.blobs).map(|b| b.size).sum()
}

/// Write the `oci-image/` subtree: `oci-layout`, `index.json`, then each blob
/// once, hashing as it streams so a corrupt local blob aborts the export.
pub fn write<W: Write>(
    tar: &mut TarWriter<W>,
    home: &Home,
    images: &[ImageToShip],
    meta: &FileMeta,
    monitor: &Monitor,
) -> Result<()> {
    let out_err = |e: std::io::Error| Error::Io {
        context: "write archive".into(),
        source: e,
    };
    tar.append(
        format!("{IMAGE_DIR}/oci-layout").as_bytes(),
        meta,
        OCI_LAYOUT_BYTES,
    )
    .map_err(out_err)?;
    let index = IndexJson {
        schema_version: 2,
        media_type: Some(OCI_INDEX_MEDIA_TYPE.to_string()),
        manifests: images
            .iter()
            .filter_map(|i| {
                let m = i.blobs.first()?;
                Some(IndexEntry {
                    media_type: m.media_type.clone(),
                    digest: m.digest.clone(),
                    size: m.size,
                    annotations: BTreeMap::from([(
                        REF_NAME_ANNOTATION.to_string(),
                        i.reference.clone(),
                    )]),
                })
            })
            .collect(),
    };
    let index_bytes = serde_json::to_vec(&index)
        .map_err(|e| Error::Internal(format!("serialize index.json: {e}")))?;
    tar.append(
        format!("{IMAGE_DIR}/index.json").as_bytes(),
        meta,
        &index_bytes,
    )
    .map_err(out_err)?;
    let mut written = BTreeSet::new();
    let mut buf = vec![0u8; CHUNK];
    for blob in images.iter().flat_map(|i| &i.blobs) {
        if !written.insert(blob.digest.clone()) {
            continue;
        }
        let path = image::blob_path(&home.images_dir(), &blob.digest)?;
        let mut file = File::open(&path).ctx("open image blob", &path)?;
        let name = format!(
            "{IMAGE_DIR}/blobs/sha256/{}",
            &blob.digest["sha256:".len()..]
        );
        tar.begin_regular(name.as_bytes(), meta, blob.size)
            .map_err(out_err)?;
        let mut hasher = Sha256::new();
        let mut left = blob.size;
        while left > 0 {
            monitor.check()?;
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want]).ctx("read image blob", &path)?;
            if n == 0 {
                return Err(Error::IntegrityMismatch {
                    path: path.display().to_string(),
                    expected: format!("{} bytes", blob.size),
                    actual: format!("{} bytes", blob.size - left),
                });
            }
            hasher.update(&buf[..n]);
            tar.write_data(&buf[..n]).map_err(out_err)?;
            left -= n as u64;
            monitor.advance(n as u64)?;
        }
        let actual = format!("sha256:{}", hex(&hasher.finalize()));
        if actual != blob.digest {
            return Err(Error::IntegrityMismatch {
                path: path.display().to_string(),
                expected: blob.digest.clone(),
                actual,
            });
        }
    }
    Ok(())
}

/// The `oci-image/` entries of an archive being imported, staged under
/// `<home>/tmp` until the snapshots are known to be good.
#[derive(Default)]
pub struct ImageReceiver {
    staging: Option<Staging>,
    /// digest -> (staged path, size)
    blobs: BTreeMap<String, (PathBuf, u64)>,
    index: Option<IndexJson>,
    layout_seen: bool,
}

impl ImageReceiver {
    /// Whether the archive held an image layout to install.
    pub fn carries_images(&self) -> bool {
        self.index.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty() && self.index.is_none() && !self.layout_seen
    }

    pub fn receive<R: Read>(
        &mut self,
        home: &Home,
        file: ImageFile,
        entry: &Entry,
        reader: &mut TarReader<R>,
        monitor: &Monitor,
    ) -> Result<()> {
        let name = entry.display_name();
        match file {
            ImageFile::OciLayout => {
                let bytes = reader.read_data_to_vec(MAX_LAYOUT_JSON)?;
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::InvalidArchive(format!("{name}: not JSON: {e}")))?;
                if v.get("imageLayoutVersion")
                    .and_then(|v| v.as_str())
                    .is_none()
                {
                    return Err(Error::InvalidArchive(format!(
                        "{name}: no imageLayoutVersion"
                    )));
                }
                self.layout_seen = true;
            }
            ImageFile::Index => {
                let bytes = reader.read_data_to_vec(MAX_LAYOUT_JSON)?;
                let index: IndexJson = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::InvalidArchive(format!("{name}: not an OCI image index: {e}"))
                })?;
                self.index = Some(index);
            }
            ImageFile::Blob(hex_name) => {
                let staging = match &self.staging {
                    Some(s) => s,
                    None => self.staging.insert(Staging::new(
                        &home.staging_area_for(&home.snapshots_dir())?,
                        "import-image",
                    )?),
                };
                let path = staging.path().join(&hex_name);
                let mut out = File::create(&path).ctx("create", &path)?;
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; CHUNK];
                loop {
                    monitor.check()?;
                    let n = reader.read_data(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    out.write_all(&buf[..n]).ctx("write", &path)?;
                }
                let expected = format!("sha256:{hex_name}");
                let actual = format!("sha256:{}", hex(&hasher.finalize()));
                if actual != expected {
                    return Err(Error::IntegrityMismatch {
                        path: name,
                        expected,
                        actual,
                    });
                }
                self.blobs.insert(expected, (path, entry.size));
            }
        }
        Ok(())
    }

    /// The subtree is a usable layout: marker and index present, and every
    /// image the index names has its manifest blob in the archive.
    pub fn check(&self) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let index = self
            .index
            .as_ref()
            .ok_or_else(|| Error::InvalidArchive(format!("{IMAGE_DIR}/index.json is missing")))?;
        if !self.layout_seen {
            return Err(Error::InvalidArchive(format!(
                "{IMAGE_DIR}/oci-layout is missing"
            )));
        }
        for m in &index.manifests {
            match self.blobs.get(&m.digest) {
                Some((_, size)) if *size == m.size => {}
                Some((_, size)) => {
                    return Err(Error::InvalidArchive(format!(
                        "{IMAGE_DIR}/index.json says {} has {} bytes, the archive holds {size}",
                        m.digest, m.size
                    )))
                }
                None => {
                    return Err(Error::InvalidArchive(format!(
                        "{IMAGE_DIR}/index.json names {}, which is not in the archive",
                        m.digest
                    )))
                }
            }
        }
        Ok(())
    }

    /// Add every blob to `<home>/images` (each checked again by
    /// `image::add_blob`), then name each image. Returns the manifest digests.
    pub fn install(self, home: &Home) -> Result<Vec<String>> {
        let Some(index) = self.index else {
            return Ok(Vec::new());
        };
        let images_dir = home.images_dir();
        for (digest, (path, size)) in &self.blobs {
            let mut file = File::open(path).ctx("open", path)?;
            let descriptor = Descriptor {
                media_type: "application/octet-stream".into(),
                digest: digest.clone(),
                size: *size,
            };
            image::add_blob(&images_dir, &descriptor, &mut file)?;
        }
        let mut added = Vec::new();
        for m in &index.manifests {
            let descriptor = Descriptor {
                media_type: m.media_type.clone(),
                digest: m.digest.clone(),
                size: m.size,
            };
            if let Some(reference) = m.annotations.get(REF_NAME_ANNOTATION) {
                image::add_ref(&images_dir, reference, &descriptor)?;
            }
            added.push(m.digest.clone());
        }
        Ok(added)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! Where an archive entry may go: path safety, entry types, and the layout
//! (snapshot directories, the OCI image subset, microsandbox's cache tree).
//!
//! Rules follow microsandbox v0.6.3's import (SPEC-NOTES §9.4) and are
//! stricter where the issue asks: names must be UTF-8, and only the files a
//! snapshot is made of are accepted (its manifest and its upper; that the file
//! is the manifest's upper is checked once the manifest is known).
use super::tar_format::EntryType;
use super::tar_reader::Entry;
use crate::error::{Error, Result};

/// Top-level directory holding the OCI layout subset of `WithImage`.
pub const IMAGE_DIR: &str = "oci-image";
/// microsandbox v0.6.3's image cache tree (runtime caches, not OCI blobs).
pub const LEGACY_CACHE_DIR: &str = "cache";
/// Longest single path component Linux accepts.
const MAX_COMPONENT: usize = 255;

/// The place an entry takes in the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A one-component directory entry for a snapshot directory.
    SnapshotDir(String),
    /// `<dir>/<file>`.
    SnapshotFile {
        dir: String,
        file: String,
    },
    /// `oci-image`, `oci-image/blobs`, `oci-image/blobs/sha256`.
    ImageDir,
    ImageFile(ImageFile),
    /// An entry of microsandbox's `cache/` tree: valid, read and dropped,
    /// because those files are microsandbox runtime caches microsnap has no use for.
    LegacyCache,
    /// v0.6.14 layout (`layout_v0614`): `archive.json`.
    Inventory,
    /// `snapshots/<hex>/snapshot.json`.
    CurrentDescriptor(String),
    /// `files/<hex>/<file>`.
    CurrentFile {
        hex: String,
        file: String,
    },
    /// `images/<kind>/<name>`: microsandbox's image cache file.
    CurrentImage(ImageKind),
    /// A directory of the v0.6.14 layout (skipped).
    CurrentDir,
}

/// The subdirectories of microsandbox v0.6.14's `images/` tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    Manifests,
    Layers,
    Fsmeta,
    Vmdk,
}

impl ImageKind {
    /// The file-name ending v0.6.14 requires in this subdirectory.
    pub fn suffix(self) -> &'static str {
        match self {
            ImageKind::Manifests => ".json",
            ImageKind::Layers | ImageKind::Fsmeta => ".erofs",
            ImageKind::Vmdk => ".vmdk",
        }
    }

    /// The inventory entry kind of a file in this subdirectory.
    pub fn entry_kind(self) -> &'static str {
        match self {
            ImageKind::Manifests => super::inventory::KIND_IMAGE_METADATA,
            _ => super::inventory::KIND_IMAGE_OBJECT,
        }
    }
}

impl Place {
    /// Whether the place belongs to the v0.6.14 layout.
    pub fn is_current_layout(&self) -> bool {
        matches!(
            self,
            Place::Inventory
                | Place::CurrentDescriptor(_)
                | Place::CurrentFile { .. }
                | Place::CurrentImage(_)
                | Place::CurrentDir
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageFile {
    OciLayout,
    Index,
    /// `blobs/sha256/<hex>`: the blob whose SHA-256 is `hex`.
    Blob(String),
}

/// The normal components of an entry name, refusing anything unsafe.
pub fn path_components(raw: &[u8]) -> Result<Vec<String>> {
    let shown = String::from_utf8_lossy(raw);
    let name = std::str::from_utf8(raw).map_err(|_| {
        Error::InvalidArchive(format!("archive entry name is not UTF-8: {shown:?}"))
    })?;
    if name.is_empty() {
        return Err(Error::InvalidArchive(
            "archive entry with an empty name".into(),
        ));
    }
    if name.starts_with('/') {
        return Err(unsafe_path(name, "it is absolute"));
    }
    if name.contains('\0') {
        return Err(unsafe_path(name, "it contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for (i, part) in name.split('/').enumerate() {
        match part {
            "" => {}
            // microsandbox refuses a leading "./" (what `tar -C dir .` writes)
            // and drops an interior "." (SPEC-NOTES §9.4).
            "." if i == 0 => return Err(unsafe_path(name, "it starts with ./")),
            "." => {}
            ".." => return Err(unsafe_path(name, "it contains ..")),
            p if p.len() > MAX_COMPONENT => {
                return Err(Error::InvalidArchive(format!(
                    "archive entry {name}: a component is longer than {MAX_COMPONENT} bytes"
                )))
            }
            p => parts.push(p.to_string()),
        }
    }
    if parts.is_empty() {
        return Err(unsafe_path(name, "it names no file"));
    }
    Ok(parts)
}

fn unsafe_path(name: &str, why: &str) -> Error {
    Error::InvalidArchive(format!("archive contains unsafe path {name:?}: {why}"))
}

fn outside(name: &str) -> Error {
    Error::InvalidArchive(format!(
        "archive entry {name:?} is outside the snapshot archive layout"
    ))
}

/// Check an entry's type and path and say where it goes.
pub fn classify(entry: &Entry) -> Result<Place> {
    let parts = path_components(&entry.name)?;
    let name = entry.display_name();
    let is_dir = match entry.kind {
        EntryType::Directory => true,
        EntryType::Regular | EntryType::GnuSparse => false,
        other => {
            return Err(Error::InvalidArchive(format!(
                "archive contains unsupported entry type ({}) at {name}",
                other.describe()
            )))
        }
    };
    let p: Vec<&str> = parts.iter().map(String::as_str).collect();
    if super::layout_v0614::is_current_top(&p) {
        if let Some(header) = entry.extended {
            return Err(Error::InvalidArchive(format!(
                "archive contains unsupported entry type at {name}: it comes with a {header}, \
                 which microsandbox v0.6.14 archives never carry"
            )));
        }
        return super::layout_v0614::classify(&p, is_dir, entry.size, &name);
    }
    match p[0] {
        IMAGE_DIR => classify_image(&p, is_dir, entry.kind, &name),
        LEGACY_CACHE_DIR => classify_legacy_cache(&p, is_dir, &name),
        dir if dir.starts_with('.') => Err(Error::InvalidArchive(format!(
            "archive entry {name:?}: snapshot directory names may not start with '.'"
        ))),
        dir => match (is_dir, p.len()) {
            (true, 1) => Ok(Place::SnapshotDir(dir.to_string())),
            (false, 2) => Ok(Place::SnapshotFile {
                dir: dir.to_string(),
                file: p[1].to_string(),
            }),
            _ => Err(outside(&name)),
        },
    }
}

fn classify_image(p: &[&str], is_dir: bool, kind: EntryType, name: &str) -> Result<Place> {
    if is_dir {
        return match p {
            [_] | [_, "blobs"] | [_, "blobs", "sha256"] => Ok(Place::ImageDir),
            _ => Err(outside(name)),
        };
    }
    if kind != EntryType::Regular {
        return Err(Error::InvalidArchive(format!(
            "archive entry {name}: image files must be plain regular entries"
        )));
    }
    match p {
        [_, "oci-layout"] => Ok(Place::ImageFile(ImageFile::OciLayout)),
        [_, "index.json"] => Ok(Place::ImageFile(ImageFile::Index)),
        [_, "blobs", "sha256", hex] if is_sha256_hex(hex) => {
            Ok(Place::ImageFile(ImageFile::Blob(hex.to_string())))
        }
        _ => Err(outside(name)),
    }
}

/// The cache paths microsandbox v0.6.3 accepts (SPEC-NOTES §9.4.3).
fn classify_legacy_cache(p: &[&str], is_dir: bool, name: &str) -> Result<Place> {
    let ok = match (is_dir, p) {
        (true, [_]) => true,
        (true, [_, sub]) => matches!(*sub, "manifests" | "layers" | "fsmeta" | "vmdk"),
        (false, [_, "manifests", f]) => f.ends_with(".json"),
        (false, [_, "layers" | "fsmeta", f]) => f.ends_with(".erofs"),
        (false, [_, "vmdk", f]) => f.ends_with(".vmdk"),
        _ => false,
    };
    if ok {
        Ok(Place::LegacyCache)
    } else {
        Err(outside(name))
    }
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8], kind: EntryType) -> Entry {
        Entry {
            name: name.to_vec(),
            kind,
            mode: 0o644,
            mtime: 0,
            size: 0,
            sparse: None,
            extended: None,
        }
    }

    fn err(name: &[u8], kind: EntryType) -> String {
        classify(&entry(name, kind)).unwrap_err().to_string()
    }

    #[test]
    fn snapshot_layout_is_accepted() {
        assert_eq!(
            classify(&entry(b"sha256-abc/manifest.json", EntryType::Regular)).unwrap(),
            Place::SnapshotFile {
                dir: "sha256-abc".into(),
                file: "manifest.json".into()
            }
        );
        assert_eq!(
            classify(&entry(b"d/", EntryType::Directory)).unwrap(),
            Place::SnapshotDir("d".into())
        );
        // interior "." and "//" vanish as in microsandbox (a25)
        assert_eq!(
            classify(&entry(b"d/.//upper.ext4", EntryType::GnuSparse)).unwrap(),
            Place::SnapshotFile {
                dir: "d".into(),
                file: "upper.ext4".into()
            }
        );
    }

    #[test]
    fn unsafe_paths_are_refused_with_the_name() {
        assert!(err(b"d/../../escape", EntryType::Regular).contains("d/../../escape"));
        assert!(err(b"/tmp/x/manifest.json", EntryType::Regular).contains("absolute"));
        assert!(err(b"./d/manifest.json", EntryType::Regular).contains("./"));
        assert!(err(b"d/\xff\xfe", EntryType::Regular).contains("not UTF-8"));
    }

    #[test]
    fn links_devices_and_fifos_are_refused() {
        for (kind, word) in [
            (EntryType::Symlink, "symlink"),
            (EntryType::HardLink, "hard link"),
            (EntryType::CharDevice, "character device"),
            (EntryType::BlockDevice, "block device"),
            (EntryType::Fifo, "FIFO"),
        ] {
            let e = err(b"d/upper.ext4", kind);
            assert!(e.contains(word) && e.contains("d/upper.ext4"), "{e}");
        }
    }

    #[test]
    fn entries_outside_the_layout_are_refused() {
        assert!(err(b"a/b/c", EntryType::Regular).contains("outside"));
        assert!(err(b"toplevel-file", EntryType::Regular).contains("outside"));
        assert!(err(b"a/b", EntryType::Directory).contains("outside"));
        assert!(err(b".hidden/manifest.json", EntryType::Regular).contains("'.'"));
        assert!(err(b"oci-image/blobs/sha256/nothex", EntryType::Regular).contains("outside"));
        assert!(err(b"cache/layers/x.tar", EntryType::Regular).contains("outside"));
    }

    /// The names of the v0.6.14 layout are not v0.6.3 directory names
    /// (SPEC-NOTES §11.3): `archive.json/manifest.json` is no snapshot.
    #[test]
    fn layout_names_are_not_legacy_prefixes() {
        for prefix in ["archive.json", "snapshots", "files", "images", "cache"] {
            for (name, kind) in [
                (format!("{prefix}/manifest.json"), EntryType::Regular),
                (format!("{prefix}/upper.ext4"), EntryType::Regular),
            ] {
                let e = err(name.as_bytes(), kind);
                assert!(
                    e.contains("unsupported path") || e.contains("outside"),
                    "{name}: {e}"
                );
            }
        }
        let e = err(b"archive.json/", EntryType::Directory);
        assert!(e.contains("unsupported path"), "{e}");
    }

    #[test]
    fn image_and_legacy_cache_paths_are_recognised() {
        let hex = "a".repeat(64);
        let blob = format!("oci-image/blobs/sha256/{hex}");
        assert_eq!(
            classify(&entry(blob.as_bytes(), EntryType::Regular)).unwrap(),
            Place::ImageFile(ImageFile::Blob(hex))
        );
        assert_eq!(
            classify(&entry(b"oci-image/index.json", EntryType::Regular)).unwrap(),
            Place::ImageFile(ImageFile::Index)
        );
        assert_eq!(
            classify(&entry(b"cache/layers/x.erofs", EntryType::Regular)).unwrap(),
            Place::LegacyCache
        );
    }
}

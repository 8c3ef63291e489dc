//! Storage accounting of a home ([`usage`]): per snapshot, sandbox and
//! image, its logical size, the bytes it occupies on disk, and how many of
//! those are shared with something else; plus totals.
//!
//! - **logical**: the sum of the files' lengths (a sparse 4 GiB upper is
//!   4 GiB logical however little is written).
//! - **allocated**: `st_blocks * 512` summed over the files: what `du`
//!   reports.
//! - **shared**: the bytes of the files (extent lengths) the filesystem
//!   reports in extents shared with other files (FIEMAP
//!   `FIEMAP_EXTENT_SHARED`, see `fiemap`): reflink copies on XFS and
//!   btrfs. Always 0 on ext4. Usually at most the allocated bytes, but on
//!   btrfs a compressed shared extent occupies less than its length, so
//!   shared can exceed allocated there. For an image it also counts every
//!   blob another image needs too (a base layer two images share).
//!
//! A file with several hard links (`st_nlink > 1`) counts once in the whole
//! report, for the first item that reaches it (snapshots, then sandboxes,
//! then blobs); its other names add nothing.
//!
//! Totals count every file once: snapshots, sandboxes and every blob of the
//! image layout (a blob two images share is counted once). So the total
//! allocated is what the home costs on disk, except that reflinked extents
//! are counted once per file that shares them (the total shared says how
//! many bytes that is). `unreferenced` is what `image prune` would reclaim.
//!
//! `cache` is the home's `cache/` directory: derived data (the leaf lists
//! push and pull use, what push recorded of registries), counted in the
//! total, rebuilt on demand if deleted.
pub mod fiemap;

use crate::error::{Error, IoContext, Result};
use crate::home::Home;
use crate::image::{self, needed_blobs, Reachability};
use crate::sandbox;
use crate::snapshot;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Logical, allocated and shared bytes of some files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Space {
    pub logical_bytes: u64,
    pub allocated_bytes: u64,
    pub shared_bytes: u64,
}

impl Space {
    fn add(&mut self, other: Space) {
        self.logical_bytes += other.logical_bytes;
        self.allocated_bytes += other.allocated_bytes;
        self.shared_bytes += other.shared_bytes;
    }
}

/// One snapshot, sandbox or image and what it occupies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ItemUsage {
    /// Snapshot: its bare name, else its path. Sandbox: its name. Image: its
    /// ref name, else its manifest digest.
    pub name: String,
    /// Snapshot: its digest. Image: the digest of its `index.json` entry (or
    /// the pinned manifest). Sandbox: none.
    pub digest: Option<String>,
    /// Snapshot or sandbox directory; none for an image.
    pub path: Option<PathBuf>,
    #[serde(flatten)]
    pub space: Space,
}

/// What [`usage`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub snapshots: Vec<ItemUsage>,
    pub sandboxes: Vec<ItemUsage>,
    /// Each named `index.json` entry, then each unnamed one or pinned
    /// manifest not already inside one of those.
    pub images: Vec<ItemUsage>,
    /// Blobs of the layout nothing needs (what `image prune` would remove).
    pub unreferenced_images: Space,
    /// The home's `cache/` directory (derived data).
    pub cache: Space,
    pub total: Space,
}

/// Measure the home (see the module docs for what each number means).
/// Snapshots are the indexed ones (`open_home` reindexes the home's
/// snapshots directory); one whose directory vanished meanwhile is left out.
pub fn usage(home: &Home) -> Result<Usage> {
    let mut out = Usage::default();
    let mut seen = Inodes::default();
    for h in snapshot::list(home)? {
        let Some(space) = seen.dir_space(&h.path)? else {
            continue;
        };
        out.total.add(space);
        out.snapshots.push(ItemUsage {
            name: h
                .name
                .clone()
                .unwrap_or_else(|| h.path.display().to_string()),
            digest: Some(h.digest.clone()),
            path: Some(h.path.clone()),
            space,
        });
    }
    for s in sandbox::list(home)? {
        let dir = home.sandboxes_dir().join(&s.name);
        let Some(space) = seen.dir_space(&dir)? else {
            continue;
        };
        out.total.add(space);
        out.sandboxes.push(ItemUsage {
            name: s.name.clone(),
            digest: None,
            path: Some(dir),
            space,
        });
    }
    images_usage(home, &mut seen, &mut out)?;
    out.cache = seen
        .dir_space(&home.root().join("cache"))?
        .unwrap_or_default();
    out.total.add(out.cache);
    Ok(out)
}

fn images_usage(home: &Home, seen: &mut Inodes, out: &mut Usage) -> Result<()> {
    let images_dir = home.images_dir();
    let pinned = image::pinned_digests(home, false)?;
    let entries = match image::read_index(&images_dir)? {
        Some(index) => image::index_entries(&images_dir, &index)?,
        None => Vec::new(),
    };
    // Every blob measured once, first: the reachability walk then takes
    // their lengths from here instead of stat'ing them again. The same
    // listing prune judges: only `sha256:<64 lower-case hex>` names are
    // blobs; anything else in blobs/sha256 is left out.
    let mut measured: BTreeMap<String, Space> = BTreeMap::new();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for file in image::blob_files(&images_dir)? {
        let Some(digest) = file.digest else { continue };
        if let Some((space, len)) = seen.measure(&file.path)? {
            out.total.add(space);
            measured.insert(digest.clone(), space);
            sizes.insert(digest, len);
        }
    }
    let mut reach = Reachability::with_sizes(&images_dir, sizes);
    let (needed, _) = needed_blobs(&entries, &mut reach, &pinned)?;
    for (digest, space) in &measured {
        if !needed.contains(digest) {
            out.unreferenced_images.add(*space);
        }
    }

    // The images: index.json entries, then pins no entry covers.
    let mut rows: Vec<(String, String, BTreeSet<String>)> = Vec::new();
    let mut covered = BTreeSet::new();
    for entry in entries {
        let blobs = reach.closure(&entry.digest, entry.media_type.as_deref())?;
        covered.extend(blobs.iter().cloned());
        let name = entry.name.unwrap_or_else(|| entry.digest.clone());
        rows.push((name, entry.digest, blobs));
    }
    for digest in &pinned {
        if covered.contains(digest) {
            continue;
        }
        let blobs = reach.closure(digest, None)?;
        if blobs.is_empty() {
            continue; // pinned but not in this layout
        }
        covered.extend(blobs.iter().cloned());
        rows.push((digest.clone(), digest.clone(), blobs));
    }

    let mut users_of: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, blobs) in &rows {
        for b in blobs {
            *users_of.entry(b.clone()).or_default() += 1;
        }
    }
    for (name, digest, blobs) in rows {
        let mut space = Space::default();
        for b in &blobs {
            let Some(s) = measured.get(b) else { continue };
            let shared_elsewhere = users_of.get(b).copied().unwrap_or(0) > 1;
            space.logical_bytes += s.logical_bytes;
            space.allocated_bytes += s.allocated_bytes;
            space.shared_bytes += if shared_elsewhere {
                s.allocated_bytes
            } else {
                s.shared_bytes
            };
        }
        out.images.push(ItemUsage {
            name,
            digest: Some(digest),
            path: None,
            space,
        });
    }
    Ok(())
}

/// The space of one regular file; `None` if it does not exist.
pub fn file_space(path: &Path) -> Result<Option<Space>> {
    Inodes::default().file_space(path)
}

/// The space of every regular file under `dir` (symlinks not followed);
/// `None` if `dir` does not exist. A file with several hard links under
/// `dir` counts once.
pub fn dir_space(dir: &Path) -> Result<Option<Space>> {
    Inodes::default().dir_space(dir)
}

/// The hard-linked inodes (`st_nlink > 1`) one report has counted. A file
/// with several names counts once across the whole report, for the first
/// item (in report order: snapshots, sandboxes, blobs) that reaches it;
/// later names of it add nothing, so the total stays what the home costs on
/// disk. (Snapshot prune's `allocated_bytes` follows its own rule; the two
/// numbers can differ for hard-linked trees.)
#[derive(Default)]
struct Inodes {
    seen: HashSet<(u64, u64)>,
}

impl Inodes {
    fn file_space(&mut self, path: &Path) -> Result<Option<Space>> {
        Ok(self.measure(path)?.map(|(space, _)| space))
    }

    /// The file's space in this report (nothing for a later name of a
    /// hard-linked inode) and its length (always the real one).
    fn measure(&mut self, path: &Path) -> Result<Option<(Space, u64)>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let meta = file.metadata().ctx("stat", path)?;
        if meta.nlink() > 1 && !self.seen.insert((meta.dev(), meta.ino())) {
            return Ok(Some((Space::default(), meta.len())));
        }
        let space = Space {
            logical_bytes: meta.len(),
            allocated_bytes: meta.blocks() * 512,
            shared_bytes: fiemap::shared_bytes(&file).ctx("map extents of", path)?,
        };
        Ok(Some((space, meta.len())))
    }

    fn dir_space(&mut self, dir: &Path) -> Result<Option<Space>> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", dir, e)),
        };
        let mut total = Space::default();
        for entry in rd {
            let entry = entry.ctx("read", dir)?;
            let kind = entry.file_type().ctx("stat", &entry.path())?;
            if kind.is_dir() {
                total.add(self.dir_space(&entry.path())?.unwrap_or_default());
            } else if kind.is_file() {
                total.add(self.file_space(&entry.path())?.unwrap_or_default());
            }
        }
        Ok(Some(total))
    }
}

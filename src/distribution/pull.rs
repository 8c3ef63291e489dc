//! Pull: a snapshot from a registry, an `oci:` layout or an `oci-archive:`
//! file into a snapshots directory, checked end to end.
//!
//! 1. The manifest (its digest checked when the reference pins one), the
//!    config (`sha256(config)` is the snapshot digest and it parses as the
//!    descriptor the manifest says) and the index (its digest; its packs are
//!    the manifest's layers; its merkle root equals the annotation and, where
//!    the recorded algorithm is `microsnap-merkle-sha256-v1`, the recorded
//!    digest; any other recorded algorithm is computed on the stream).
//! 2. Every non-zero chunk is copied from a local artifact with the same leaf
//!    hash, or else fetched (one Range request per run of adjacent frames, a
//!    few in flight), decompressed, checked against its leaf hash and
//!    written at its offset of the staged upper; zero chunks stay holes. The
//!    upper is never read back.
//! 3. The staged artifact is opened (its digest checked once more),
//!    published by one rename and indexed. A failure or cancel at any point
//!    leaves nothing behind.
use super::chunk_index::ChunkIndex;
use super::chunk_transfer::{self, Writer};
use super::leaf_cache::{self, LocalChunks};
use super::media_types::digest_tag;
use super::objects::{self, SnapshotManifest};
use super::push::{blob_of, check_blob, fetch_index, same_packs};
use super::reference::Reference;
use super::store::{self, Access, Store};
use super::{PullOptions, PullReport};
use crate::artifact::{self, Artifact, Descriptor};
use crate::error::{Error, IoContext, Result};
use crate::home::Home;
use crate::integrity::{Algorithm, StreamDigest, MERKLE_LEAF_SIZE};
use crate::manifest::Upper;
use crate::progress::{Monitor, Phase};
use crate::publish::Staging;
use crate::snapshot::SnapshotHandle;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest chunk index blob accepted.
const MAX_INDEX_BLOB: u64 = 256 * 1024 * 1024;
/// Longest parent chain followed with `with_parents`.
const MAX_CHAIN: usize = 1024;

/// Pull `reference` into `dest` (default: the home's snapshots directory).
pub fn pull(
    home: &Home,
    reference: &str,
    dest: Option<&Path>,
    options: &PullOptions,
    monitor: &Monitor,
) -> Result<(SnapshotHandle, PullReport)> {
    let parsed = Reference::parse(reference)?;
    if let Some(name) = &options.name {
        crate::home::validate_bare_name("snapshot", name)?;
    }
    let dest_dir = dest.map_or_else(|| home.snapshots_dir(), Path::to_path_buf);
    let scratch = Staging::new(&home.tmp_dir(), "pull")?;
    let source = store::open(&parsed, &options.remote, Access::Read, scratch.path())?;
    let pulling = Pulling {
        home,
        store: source.as_ref(),
        reference: &parsed,
        dest: &dest_dir,
        in_flight: options.remote.in_flight(),
        monitor,
    };
    let mut report = PullReport {
        reference: parsed.to_string(),
        ..PullReport::default()
    };
    let mut published = Vec::new();
    let result = pulling.run(options, &mut report, &mut published);
    match result {
        Ok(path) => {
            let handle = crate::snapshot::get(home, &path.to_string_lossy())?;
            report.path = path.display().to_string();
            Ok((handle, report))
        }
        Err(e) => {
            source.abandon();
            for path in published.iter().rev() {
                unpublish(home, &dest_dir, path);
            }
            Err(e)
        }
    }
}

struct Pulling<'a, 'm> {
    home: &'a Home,
    store: &'a dyn Store,
    reference: &'a Reference,
    dest: &'a Path,
    in_flight: usize,
    monitor: &'a Monitor<'m>,
}

/// A manifest fetched and checked, with its config and index.
struct Fetched {
    manifest_digest: String,
    /// Bytes of the manifest, config and index received.
    metadata_bytes: u64,
    manifest: SnapshotManifest,
    config: Vec<u8>,
    upper: Upper,
    /// Fetched by `load_index`.
    index: Option<ChunkIndex>,
}

impl Pulling<'_, '_> {
    fn run(
        &self,
        options: &PullOptions,
        report: &mut PullReport,
        published: &mut Vec<PathBuf>,
    ) -> Result<PathBuf> {
        let head_ref = self
            .reference
            .digest()
            .unwrap_or_else(|| self.reference.tag_or_default())
            .to_string();
        let mut head = self.fetch(&head_ref, self.reference.digest())?;
        // The head's index is checked before anything else is fetched.
        self.load_index(&mut head)?;
        report.manifest_digest = head.manifest_digest.clone();
        report.snapshot_digest = head.manifest.snapshot_digest.clone();
        let name = match (&options.name, self.reference.tag(), self.reference.digest()) {
            (Some(name), _, _) => name.clone(),
            (None, Some(tag), _) => tag.to_string(),
            (None, None, Some(_)) => crate::manifest::digest_prefix(&head.manifest.snapshot_digest),
            (None, None, None) => self.reference.tag_or_default().to_string(),
        };
        crate::home::validate_bare_name("snapshot", &name)?;

        // Ancestors first (root first), each under its digest-prefix name.
        let mut ancestors = Vec::new();
        if options.with_parents {
            let mut seen = HashSet::new();
            let mut parent = head.manifest.parent.clone();
            while let Some(digest) = parent {
                if ancestors.len() >= MAX_CHAIN || !seen.insert(digest.clone()) {
                    return Err(Error::InvalidArchive(format!(
                        "the parent chain of {} loops or is longer than {MAX_CHAIN}",
                        head.manifest.snapshot_digest
                    )));
                }
                if is_local(self.home, &digest)? {
                    break;
                }
                let fetched = self.fetch(&digest_tag(&digest), None).and_then(|f| {
                    if f.manifest.snapshot_digest == digest {
                        Ok(f)
                    } else {
                        Err(Error::InvalidArchive(format!(
                            "tag {} holds snapshot {}, not {digest}",
                            digest_tag(&digest),
                            f.manifest.snapshot_digest
                        )))
                    }
                });
                let fetched = match fetched {
                    Ok(f) => f,
                    Err(Error::SnapshotNotFound(_)) => {
                        return Err(Error::SnapshotNotFound(format!(
                            "{digest}, an ancestor of {}, is neither local nor in {} under tag {}",
                            head.manifest.snapshot_digest,
                            self.store.describe(),
                            digest_tag(&digest)
                        )))
                    }
                    Err(e) => return Err(e),
                };
                parent = fetched.manifest.parent.clone();
                ancestors.push(fetched);
            }
        }
        for ancestor in ancestors.into_iter().rev() {
            let name = crate::manifest::digest_prefix(&ancestor.manifest.snapshot_digest);
            self.install(ancestor, &name, report, published)?;
        }
        self.install(head, &name, report, published)
    }

    /// Fetch and check the manifest under `tag_or_digest`, its config and
    /// index. `pinned`: the manifest digest the reference names.
    fn fetch(&self, tag_or_digest: &str, pinned: Option<&str>) -> Result<Fetched> {
        self.monitor.check()?;
        let bytes = self
            .store
            .get_manifest(tag_or_digest, objects::MAX_MANIFEST)?
            .ok_or_else(|| {
                Error::SnapshotNotFound(format!(
                    "{} has no manifest {tag_or_digest}",
                    self.store.describe()
                ))
            })?;
        let manifest_digest = blob_of(&bytes).digest;
        if let Some(pinned) = pinned {
            if manifest_digest != pinned {
                return Err(Error::IntegrityMismatch {
                    path: format!("manifest {tag_or_digest}"),
                    expected: pinned.to_string(),
                    actual: manifest_digest,
                });
            }
        }
        let manifest = objects::parse(&bytes)?;
        let config =
            self.store
                .get_blob(&manifest.config.digest, objects::MAX_CONFIG, self.monitor)?;
        check_blob(&config, &manifest.config, "config")?;
        let (descriptor, digest) = Descriptor::parse(manifest.format, &config)?;
        if digest != manifest.snapshot_digest {
            return Err(Error::IntegrityMismatch {
                path: format!("config {}", manifest.config.digest),
                expected: manifest.snapshot_digest.clone(),
                actual: digest,
            });
        }
        let upper = descriptor.upper().ok_or_else(|| {
            Error::Unsupported(format!(
                "{} is a checkpoint-state snapshot, which has no disk upper to pull",
                manifest.snapshot_digest
            ))
        })?;
        if upper.size_bytes != manifest.upper_size {
            return Err(Error::InvalidArchive(format!(
                "the manifest says the upper is {} bytes, its descriptor {}",
                manifest.upper_size, upper.size_bytes
            )));
        }
        // The parent the manifest names is the descriptor's, or lineage
        // (and with_parents) would follow a parent the snapshot does not have.
        if manifest.parent.as_deref() != descriptor.parent() {
            return Err(Error::InvalidArchive(format!(
                "the manifest names parent {:?}, its descriptor {:?}",
                manifest.parent,
                descriptor.parent()
            )));
        }
        Ok(Fetched {
            manifest_digest,
            metadata_bytes: (bytes.len() + config.len()) as u64 + manifest.index.size,
            manifest,
            config,
            upper,
            index: None,
        })
    }

    /// Fetch and check `fetched`'s chunk index (done per snapshot just
    /// before it is received, so a long chain is never all in memory).
    fn load_index(&self, fetched: &mut Fetched) -> Result<()> {
        if fetched.index.is_some() {
            return Ok(());
        }
        let (manifest, upper) = (&fetched.manifest, &fetched.upper);
        if manifest.index.size > MAX_INDEX_BLOB {
            return Err(Error::InvalidArchive(format!(
                "the chunk index is {} bytes",
                manifest.index.size
            )));
        }
        let index = fetch_index(self.store, &manifest.index, self.monitor)?;
        if !same_packs(&index, &manifest.packs) {
            return Err(Error::InvalidArchive(
                "the chunk index's packs are not the manifest's layers".into(),
            ));
        }
        if index.upper_size != upper.size_bytes {
            return Err(Error::InvalidArchive(format!(
                "the chunk index is for a {}-byte upper, the descriptor's is {}",
                index.upper_size, upper.size_bytes
            )));
        }
        let root = index.merkle_root()?;
        if root != manifest.merkle_root {
            return Err(Error::IntegrityMismatch {
                path: format!("chunk index {}", manifest.index.digest),
                expected: manifest.merkle_root.clone(),
                actual: root,
            });
        }
        if let Some(recorded) = &upper.integrity {
            if Algorithm::recorded(&recorded.algorithm)? == Algorithm::MerkleSha256V1
                && recorded.digest != root
            {
                return Err(Error::IntegrityMismatch {
                    path: format!("chunk index {}", manifest.index.digest),
                    expected: recorded.digest.clone(),
                    actual: root,
                });
            }
        }
        fetched.index = Some(index);
        Ok(())
    }

    /// Receive one snapshot into `dest/name`; returns its path.
    fn install(
        &self,
        mut fetched: Fetched,
        name: &str,
        report: &mut PullReport,
        published: &mut Vec<PathBuf>,
    ) -> Result<PathBuf> {
        self.load_index(&mut fetched)?;
        let index = fetched
            .index
            .take()
            .ok_or_else(|| Error::Internal("the chunk index was not loaded".into()))?;
        let is_head = fetched.manifest_digest == report.manifest_digest;
        let target = self.dest.join(name);
        let digest = fetched.manifest.snapshot_digest.clone();
        let chunk_count = index.chunks.len() as u64;
        report.chunks_total += chunk_count;
        report.bytes_downloaded += fetched.metadata_bytes;
        match fs::symlink_metadata(&target) {
            Ok(_) => {
                let existing = artifact::open_dir(&target).map_err(|e| {
                    Error::AlreadyExists(format!(
                        "{} exists and is not a readable snapshot ({e}); {} is {digest}",
                        target.display(),
                        self.reference
                    ))
                })?;
                if existing.digest != digest {
                    return Err(Error::AlreadyExists(format!(
                        "{} holds snapshot {}, not {digest}; pull with another name",
                        target.display(),
                        existing.digest
                    )));
                }
                // "Nothing was written" is about the head; an ancestor
                // already here only adds its chunks to the reused ones.
                report.already_present |= is_head;
                report.chunks_reused += chunk_count;
                artifact::index_artifact(self.home, &existing)?;
                return Ok(target);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("check", &target, e)),
        }
        // The snapshot the store may lack packs of: `since`'s, else the parent.
        let needed = fetched
            .manifest
            .since
            .clone()
            .or_else(|| fetched.manifest.parent.clone());
        let also: Vec<String> = [
            fetched.manifest.parent.clone(),
            fetched.manifest.since.clone(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let wanted: HashSet<_> = index.chunks.iter().map(|c| c.leaf).collect();
        let local = LocalChunks::gather(self.home, &also, &wanted, self.monitor)?;
        let staging = Staging::new(&self.home.staging_area_for(self.dest)?, "pull")?;
        let descriptor_path = staging
            .path()
            .join(fetched.manifest.format.descriptor_file());
        write_synced(&descriptor_path, &fetched.config)?;
        let upper_path = staging.path().join(&fetched.upper.file);
        let upper = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&upper_path)
            .ctx("create", &upper_path)?;
        upper
            .set_len(fetched.upper.size_bytes)
            .ctx("size", &upper_path)?;
        let mut stream = match &fetched.upper.integrity {
            Some(rec) if Algorithm::recorded(&rec.algorithm)? != Algorithm::MerkleSha256V1 => {
                Some((
                    StreamDigest::new(
                        Algorithm::recorded(&rec.algorithm)?,
                        fetched.upper.size_bytes,
                    ),
                    rec.digest.clone(),
                ))
            }
            _ => None,
        };
        let receiver = Receiver {
            file: &upper,
            path: &upper_path,
            monitor: self.monitor,
            unflushed: AtomicU64::new(0),
        };
        self.transfer(
            &index,
            &local,
            &receiver,
            stream.as_mut().map(|(s, _)| s),
            needed.as_deref(),
            report,
        )?;
        if let Some((stream, expected)) = stream {
            let actual = stream.finish();
            if actual != expected {
                return Err(Error::IntegrityMismatch {
                    path: upper_path.display().to_string(),
                    expected,
                    actual,
                });
            }
        }
        upper.sync_all().ctx("sync", &upper_path)?;
        drop(upper);
        let staged = artifact::open_dir(staging.path())?;
        if staged.digest != digest {
            return Err(Error::Internal(format!(
                "the pulled artifact opened as {}, not {digest}",
                staged.digest
            )));
        }
        self.monitor.check()?;
        crate::fault::point("pull.before_publish")?;
        // Held until indexed: a crash in between leaves it stale, so the next
        // open reindexes.
        let _indexing = Staging::new(&self.home.tmp_dir(), "indexing")?;
        staging.publish(&target)?;
        published.push(target.clone());
        let art: Artifact = artifact::open_dir(&target)?;
        artifact::index_artifact(self.home, &art)?;
        let leaves: Vec<_> = index.chunks.iter().map(|c| (c.number, c.leaf)).collect();
        leaf_cache::save(self.home, &digest, fetched.upper.size_bytes, &leaves);
        local.save_computed(self.home);
        Ok(target)
    }

    /// Write every non-zero chunk into the staged upper
    /// (`chunk_transfer` does the work on `in_flight` workers). With a
    /// `stream` digest to feed, chunks are written in order on this thread;
    /// else the workers write them as they come.
    fn transfer(
        &self,
        index: &ChunkIndex,
        local: &LocalChunks,
        receiver: &Receiver,
        stream: Option<&mut StreamDigest>,
        parent: Option<&str>,
        report: &mut PullReport,
    ) -> Result<()> {
        let total: u64 = index.chunks.iter().map(|c| index.chunk_len(c.number)).sum();
        self.monitor.phase(Phase::Pull, total)?;
        let jobs = chunk_transfer::plan(index, local, stream.is_some());
        self.check_packs_present(&chunk_transfer::packs_fetched(&jobs), index, parent)?;
        let run = |writer| {
            chunk_transfer::run(
                self.store,
                index,
                &jobs,
                self.in_flight,
                self.monitor,
                writer,
            )
        };
        let counts = match stream {
            Some(stream) => run(Writer::InOrder(&mut |number, bytes| {
                receiver.write(number, bytes)?;
                stream.update_at(number * MERKLE_LEAF_SIZE, bytes)
            }))?,
            None => run(Writer::Direct(&|number, bytes| {
                receiver.write(number, bytes)
            }))?,
        };
        report.chunks_downloaded += counts.chunks_downloaded;
        report.chunks_reused += counts.chunks_reused;
        report.bytes_downloaded += counts.bytes_downloaded;
        report.bytes_reused += counts.bytes_reused;
        report.bytes_copied_locally += counts.bytes_copied_locally;
        Ok(())
    }

    /// A pack the plan fetches from must be in the store; one that is not
    /// was left out on purpose (`push --since`) when the manifest names the
    /// snapshot that holds it (`needed`: its `since`, else its parent), and
    /// the error says which snapshot is needed locally.
    fn check_packs_present(
        &self,
        packs: &[u32],
        index: &ChunkIndex,
        needed: Option<&str>,
    ) -> Result<()> {
        for &pack in packs {
            let pack = &index.packs[pack as usize];
            let size = self.store.blob_size(&pack.digest())?;
            if let Some(size) = size.filter(|&size| size != pack.size) {
                return Err(Error::IntegrityMismatch {
                    path: format!("pack {} in {}", pack.digest(), self.store.describe()),
                    expected: format!("{} bytes", pack.size),
                    actual: format!("{size} bytes"),
                });
            }
            if size.is_none() {
                return Err(match needed {
                    Some(needed) => Error::SnapshotNotFound(format!(
                        "{} lacks pack {} that snapshot {needed} holds (it was written with \
                         --since, or its packs were deleted); pull needs {needed} locally \
                         (pull or import it first)",
                        self.store.describe(),
                        pack.digest()
                    )),
                    None => Error::InvalidArchive(format!(
                        "{} lacks pack {}, which its manifest names",
                        self.store.describe(),
                        pack.digest()
                    )),
                });
            }
        }
        Ok(())
    }
}

/// Bytes written into a pulled upper between two starts of its writeback.
const WRITEBACK_EVERY: u64 = 16 * 1024 * 1024;

/// Writes chunks into the staged upper, from any thread.
struct Receiver<'a, 'm> {
    file: &'a File,
    path: &'a Path,
    monitor: &'a Monitor<'m>,
    /// Bytes written since the writeback was last started.
    unflushed: AtomicU64,
}

impl Receiver<'_, '_> {
    fn write(&self, number: u64, bytes: &[u8]) -> Result<()> {
        let offset = number * MERKLE_LEAF_SIZE;
        // All-zero 4 KiB blocks stay holes (the file was sized up front),
        // so the pulled upper allocates no more than its source.
        let block = crate::sparse::BLOCK_SIZE as usize;
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + block).min(bytes.len());
            if crate::sparse::is_all_zero(&bytes[at..end]) {
                at = end;
                continue;
            }
            let mut run_end = end;
            while run_end < bytes.len() {
                let next = (run_end + block).min(bytes.len());
                if crate::sparse::is_all_zero(&bytes[run_end..next]) {
                    break;
                }
                run_end = next;
            }
            self.file
                .write_all_at(&bytes[at..run_end], offset + at as u64)
                .ctx("write", self.path)?;
            at = run_end;
        }
        // The publish fsync then finds the upper mostly written already.
        // A whole-file call every WRITEBACK_EVERY bytes: one per chunk would
        // be a device request per 64 KiB.
        let len = bytes.len() as u64;
        if self.unflushed.fetch_add(len, Ordering::Relaxed) + len >= WRITEBACK_EVERY {
            self.unflushed.store(0, Ordering::Relaxed);
            crate::publish::start_writeback(self.file, 0, 0);
        }
        self.monitor.advance(bytes.len() as u64)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .ctx("create", path)?;
    f.write_all(bytes).ctx("write", path)?;
    f.sync_all().ctx("sync", path)
}

fn is_local(home: &Home, digest: &str) -> Result<bool> {
    match artifact::resolve_digest(home, digest) {
        Ok(_) => Ok(true),
        Err(Error::SnapshotNotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Take back what this pull published because a later step failed.
fn unpublish(home: &Home, dest: &Path, path: &Path) {
    if let Ok(trash) = home
        .staging_area_for(dest)
        .and_then(|area| Staging::new(&area, "remove"))
    {
        let _ = trash.take(path);
    }
    let key = path.to_string_lossy().into_owned();
    let _ = home
        .db()
        .write(|tx| crate::db::index::remove_by_path(tx, &key).map(drop));
}

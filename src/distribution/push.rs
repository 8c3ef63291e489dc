//! Push: a snapshot (and with `with_parents` its ancestors, root first) to
//! a registry, an `oci:` layout or an `oci-archive:` file.
//!
//! Per snapshot: find the basis (the parent's index in the target, under
//! the parent's digest tag; with `with_parents` the previous snapshot's;
//! with `since` the index that snapshot's own chain gives), pack the chunks
//! the basis lacks, upload the packs (a few in flight, each skipped when the
//! target has it), then the index, then the config, and the manifest last:
//! no manifest ever names a missing blob, so a killed push leaves at worst
//! unreferenced blobs and a re-run sends no pack twice.
use super::chunk_index::{sha256_bytes, ChunkIndex};
use super::media_types::{self as mt, digest_tag};
use super::objects::{self, Blob, ManifestInput};
use super::packer::{self, Basis, PackFile, Packed, Source};
use super::reference::Reference;
use super::store::{self, Access, Store};
use super::{leaf_cache, remote_record, PushOptions, PushReport, PushedSnapshot, RemoteOptions};
use crate::artifact::{self, Artifact};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::integrity::Algorithm;
use crate::progress::Monitor;
use crate::publish::Staging;
use sha2::{Digest, Sha256};
use std::sync::mpsc::sync_channel;
use std::sync::Mutex;

/// Push `name_or_path` to `reference`.
pub fn push(
    home: &Home,
    name_or_path: &str,
    reference: &str,
    options: &PushOptions,
    monitor: &Monitor,
) -> Result<PushReport> {
    let parsed = Reference::parse(reference)?;
    if parsed.digest().is_some() {
        return Err(Error::InvalidArgument(format!(
            "cannot push to {reference}: a push names a tag, not a manifest digest"
        )));
    }
    if options.since.is_some() && !matches!(parsed, Reference::Archive { .. }) {
        return Err(Error::InvalidArgument(
            "since is for oci-archive: references (a registry or an oci: layout already \
             holds the parent, so a push sends only what it lacks)"
                .into(),
        ));
    }
    if options.since.is_some() && options.with_parents {
        return Err(Error::InvalidArgument(
            "since and with_parents contradict each other".into(),
        ));
    }
    let head = artifact::resolve(home, name_or_path)?;
    head.disk_upper("push")?;
    let chain = if options.with_parents {
        crate::archive::chain_of(home, head.clone())?
    } else {
        vec![head.clone()]
    };
    for art in &chain {
        art.disk_upper("push")?;
    }
    let scratch = Staging::new(&home.tmp_dir(), "push")?;
    let (since_basis, since) = match &options.since {
        Some(since) => {
            let (index, digest) = since_index(home, &head, since, monitor)?;
            (Some(index), Some(digest))
        }
        None => (None, None),
    };
    let target = store::open(&parsed, &options.remote, Access::Write, scratch.path())?;
    let place = match &parsed {
        Reference::Registry {
            host, repository, ..
        } => Some((host.clone(), repository.clone())),
        _ => None,
    };
    let pushing = Pushing {
        home,
        since,
        store: target.as_ref(),
        place,
        remote: &options.remote,
        scratch: &scratch,
        in_flight: options.remote.in_flight(),
        monitor,
    };
    let result = pushing
        .chain(&chain, since_basis, parsed.tag_or_default())
        .and_then(|report| {
            target.commit(monitor)?;
            Ok(report)
        });
    match result {
        Ok(mut report) => {
            report.reference = parsed.to_string();
            if let Some((host, repository)) = &pushing.place {
                for pushed in &report.snapshots {
                    remote_record::record(home, &pushed.snapshot_digest, host, repository);
                }
            }
            Ok(report)
        }
        Err(e) => {
            target.abandon();
            Err(e)
        }
    }
}

struct Pushing<'a, 'm> {
    home: &'a Home,
    /// The digest of `since`, named in the head's manifest.
    since: Option<String>,
    store: &'a dyn Store,
    /// (host, repository) when the target is a registry.
    place: Option<(String, String)>,
    remote: &'a RemoteOptions,
    scratch: &'a Staging,
    in_flight: usize,
    monitor: &'a Monitor<'m>,
}

impl Pushing<'_, '_> {
    fn chain(
        &self,
        chain: &[Artifact],
        since_basis: Option<ChunkIndex>,
        tag: &str,
    ) -> Result<PushReport> {
        let mut report = PushReport::default();
        let mut previous: Option<ChunkIndex> = since_basis;
        for (i, art) in chain.iter().enumerate() {
            let basis = match previous.take() {
                Some(index) => Basis::from_index(&index),
                None => self.parent_basis(art)?,
            };
            let is_head = i + 1 == chain.len();
            let mut tags = vec![digest_tag(&art.digest)];
            if is_head && tags[0] != tag {
                tags.push(tag.to_string());
            }
            let (index, manifest_digest) = self.one(art, &basis, &tags, &mut report)?;
            report.snapshots.push(PushedSnapshot {
                snapshot_digest: art.digest.clone(),
                manifest_digest: manifest_digest.clone(),
                tags,
            });
            if is_head {
                report.manifest_digest = manifest_digest;
                report.snapshot_digest = art.digest.clone();
            }
            previous = Some(index);
        }
        Ok(report)
    }

    /// The parent's index, if the target holds the parent's manifest or, in
    /// a registry, another repository this home pushed the parent to holds
    /// it and the target can mount its packs from there.
    fn parent_basis(&self, art: &Artifact) -> Result<Basis> {
        let Some(parent) = art.descriptor.parent() else {
            return Ok(Basis::default());
        };
        if let Some(index) = basis_in(self.store, parent, self.monitor)? {
            return Ok(Basis::from_index(&index));
        }
        let Some((host, repository)) = &self.place else {
            return Ok(Basis::default());
        };
        for place in remote_record::places(self.home, parent) {
            let Some(other) = place
                .strip_prefix(host.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
                .filter(|other| other != repository)
            else {
                continue;
            };
            let Ok(source) = super::registry::open(host, other, self.remote, Access::Read) else {
                continue;
            };
            let Ok(Some(index)) = basis_in(source.as_ref(), parent, self.monitor) else {
                self.monitor.check()?;
                continue;
            };
            if self.mount_packs(&index, other)? {
                return Ok(Basis::from_index(&index));
            }
        }
        Ok(Basis::default())
    }

    /// Make every pack of `index` present in the target, mounting it from
    /// `from` where missing. False if one could not be.
    fn mount_packs(&self, index: &ChunkIndex, from: &str) -> Result<bool> {
        for pack in &index.packs {
            self.monitor.check()?;
            let digest = pack.digest();
            if self.store.blob_size(&digest)? == Some(pack.size) {
                continue;
            }
            if !self.store.mount_blob(&digest, from)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Push one snapshot over `basis`; returns its index and manifest digest.
    fn one(
        &self,
        art: &Artifact,
        basis: &Basis,
        tags: &[String],
        report: &mut PushReport,
    ) -> Result<(ChunkIndex, String)> {
        let upper = art.disk_upper("push")?;
        let source = source_of(self.home, art)?;
        let (path, size) = (source.path.clone(), source.size);
        let stats = Mutex::new(UploadStats::default());
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let (send, receive) = sync_channel::<PackFile>(self.in_flight);
        let receive = Mutex::new(receive);
        let packed: Result<Packed> = std::thread::scope(|scope| -> Result<Packed> {
            // Moved in, so that dropping it below ends the uploaders' loop.
            let send = send;
            let (stats, failed, receive) = (&stats, &failed, &receive);
            for _ in 0..self.in_flight {
                scope.spawn(move || loop {
                    let next = receive.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(pack) = next else { return };
                    if failed.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                        // The push fails anyway: only drain.
                        let _ = std::fs::remove_file(&pack.path);
                        continue;
                    }
                    // A panic must not leave the packer blocked on a full channel.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.upload_pack(&pack)
                    }))
                    .unwrap_or_else(|_| Err(Error::Internal("a pack upload panicked".into())));
                    let _ = std::fs::remove_file(&pack.path);
                    match result {
                        Ok(sent) => stats
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .add(&pack, sent),
                        Err(e) => {
                            let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                            if slot.is_none() {
                                *slot = Some(e);
                            }
                        }
                    }
                });
            }
            let mut on_pack = |pack: PackFile| -> Result<()> {
                // Only looked at: the uploaders see it too and stop
                // uploading; the error is returned after the scope.
                if failed.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                    return Err(Error::Cancelled);
                }
                send.send(pack)
                    .map_err(|_| Error::Internal("pack uploaders stopped".into()))
            };
            let packed = packer::pack(
                &source,
                basis,
                Some(self.scratch.path()),
                self.monitor,
                &mut on_pack,
            );
            drop(send);
            packed
        });
        // An uploader's failure is the cause of whatever the packer saw.
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        let packed = packed?;
        let stats = stats.into_inner().unwrap_or_else(|p| p.into_inner());

        let merkle_root = packed.index.merkle_root()?;
        if let Some(recorded) = &upper.spec.integrity {
            if Algorithm::from_name(&recorded.algorithm) == Some(Algorithm::MerkleSha256V1)
                && recorded.digest != merkle_root
            {
                return Err(Error::IntegrityMismatch {
                    path: path.display().to_string(),
                    expected: recorded.digest.clone(),
                    actual: merkle_root,
                });
            }
        }
        let index_bytes = packed.index.encode()?;
        let index_blob = blob_of(&index_bytes);
        let mut sent = stats.bytes_sent;
        sent += self.put_small(&index_blob, &index_bytes)?;
        // The canonical bytes: their digest is the snapshot's, whatever
        // serialization the file on disk holds.
        let config = art.descriptor.canonical_bytes();
        let config_blob = blob_of(&config);
        if config_blob.digest != art.digest {
            return Err(Error::Internal(format!(
                "the canonical descriptor of {} hashes to {}",
                art.digest, config_blob.digest
            )));
        }
        sent += self.put_small(&config_blob, &config)?;
        let packs: Vec<Blob> = packed
            .index
            .packs
            .iter()
            .map(|p| Blob {
                digest: p.digest(),
                size: p.size,
            })
            .collect();
        let manifest = objects::build(&ManifestInput {
            artifact: art,
            config_len: config_blob.size,
            upper_size: size,
            merkle_root: &merkle_root,
            index: &index_blob,
            packs: &packs,
            since: self.since.as_deref(),
        })?;
        self.monitor.check()?;
        crate::fault::point("push.before_manifest")?;
        for tag in tags {
            self.store
                .put_manifest(tag, &manifest, mt::IMAGE_MANIFEST)?;
            sent += manifest.len() as u64;
        }
        report.chunks_total += packed.chunks_total;
        report.chunks_uploaded += stats.chunks_uploaded;
        report.chunks_reused += packed.chunks_total - stats.chunks_uploaded;
        report.bytes_uploaded += sent;
        report.bytes_reused += packed.bytes_reused + stats.bytes_skipped;
        let leaves: Vec<_> = packed
            .index
            .chunks
            .iter()
            .map(|c| (c.number, c.leaf))
            .collect();
        leaf_cache::save(self.home, &art.digest, size, &leaves);
        Ok((packed.index, blob_of(&manifest).digest))
    }

    /// Upload one new pack unless the target has it. Returns bytes sent.
    fn upload_pack(&self, pack: &PackFile) -> Result<Option<u64>> {
        self.monitor.check()?;
        let digest = pack.pack.digest();
        if self.store.blob_size(&digest)? == Some(pack.pack.size) {
            return Ok(None);
        }
        let sent = self
            .store
            .put_blob_file(&digest, &pack.path, pack.pack.size, self.monitor)?;
        crate::fault::point("push.pack_uploaded")?;
        Ok(Some(sent))
    }

    fn put_small(&self, blob: &Blob, bytes: &[u8]) -> Result<u64> {
        if self.store.blob_size(&blob.digest)? == Some(blob.size) {
            return Ok(0);
        }
        self.store.put_blob_bytes(&blob.digest, bytes, self.monitor)
    }
}

#[derive(Default)]
struct UploadStats {
    chunks_uploaded: u64,
    bytes_sent: u64,
    /// Bytes of new packs the target already had.
    bytes_skipped: u64,
}

impl UploadStats {
    fn add(&mut self, pack: &PackFile, sent: Option<u64>) {
        match sent {
            Some(bytes) => {
                self.chunks_uploaded += pack.chunks;
                self.bytes_sent += bytes;
            }
            None => self.bytes_skipped += pack.pack.size,
        }
    }
}

pub(super) fn blob_of(bytes: &[u8]) -> Blob {
    Blob {
        digest: format!("sha256:{}", super::chunk_index::hex(&Sha256::digest(bytes))),
        size: bytes.len() as u64,
    }
}

/// The upper of `art` to pack, with its leaf list when the home has one
/// for exactly this upper (snapshot create, push and pull record them).
fn source_of<'a>(home: &Home, art: &'a Artifact) -> Result<Source<'a>> {
    let mut source = Source::of(art)?;
    if let Some((size, leaves)) = crate::leaf_list::load_for(home, &art.digest) {
        if size == source.size {
            source.listed = Some(leaves);
        }
    }
    Ok(source)
}

/// The index of `parent` as `store` holds it under the parent's digest tag,
/// checked; `None` if it is absent or does not check (a tag someone else
/// wrote may hold anything: the snapshot then goes whole).
fn basis_in(store: &dyn Store, parent: &str, monitor: &Monitor) -> Result<Option<ChunkIndex>> {
    let Some(bytes) = store.get_manifest(&digest_tag(parent), objects::MAX_MANIFEST)? else {
        return Ok(None);
    };
    let Ok(manifest) = objects::parse(&bytes) else {
        return Ok(None);
    };
    if manifest.snapshot_digest != parent {
        return Ok(None);
    }
    match fetch_index(store, &manifest.index, monitor) {
        Ok(index) if same_packs(&index, &manifest.packs) => {
            // A manifest pushed `since` its parent lacks the parent's packs:
            // building on it would name blobs the target does not hold.
            for pack in &index.packs {
                if store.blob_size(&pack.digest())? != Some(pack.size) {
                    return Ok(None);
                }
            }
            Ok(Some(index))
        }
        Ok(_) => Ok(None),
        Err(Error::Cancelled) => Err(Error::Cancelled),
        Err(_) => Ok(None),
    }
}

/// Fetch and decode an index blob, checking its digest.
pub(super) fn fetch_index(store: &dyn Store, blob: &Blob, monitor: &Monitor) -> Result<ChunkIndex> {
    let bytes = store.get_blob(&blob.digest, blob.size, monitor)?;
    check_blob(&bytes, blob, "chunk index")?;
    ChunkIndex::decode(&bytes)
}

/// `bytes` are the blob the manifest names, or `IntegrityMismatch`.
pub(super) fn check_blob(bytes: &[u8], blob: &Blob, what: &str) -> Result<()> {
    let actual = blob_of(bytes);
    if actual != *blob {
        return Err(Error::IntegrityMismatch {
            path: format!("{what} {}", blob.digest),
            expected: format!("{} ({} bytes)", blob.digest, blob.size),
            actual: format!("{} ({} bytes)", actual.digest, actual.size),
        });
    }
    Ok(())
}

/// The index packs are exactly the manifest's layers[1..].
pub(super) fn same_packs(index: &ChunkIndex, packs: &[Blob]) -> bool {
    index.packs.len() == packs.len()
        && index
            .packs
            .iter()
            .zip(packs)
            .all(|(p, b)| sha256_bytes(&b.digest) == Some(p.sha256) && p.size == b.size)
}

/// The index `since`'s chain gives when pushed root first into an empty
/// target (what `push --with-parents` of it writes), worked out locally
/// without writing packs, and its digest. `since` must be an ancestor of
/// `head`.
fn since_index(
    home: &Home,
    head: &Artifact,
    since: &str,
    monitor: &Monitor,
) -> Result<(ChunkIndex, String)> {
    let since_art = artifact::resolve(home, since)?;
    let head_chain = crate::archive::chain_of(home, head.clone())?;
    if !head_chain[..head_chain.len() - 1]
        .iter()
        .any(|a| a.digest == since_art.digest)
    {
        return Err(Error::InvalidArgument(format!(
            "since: {} ({since}) is not an ancestor of {}",
            since_art.digest, head.digest
        )));
    }
    let since_digest = since_art.digest.clone();
    let mut previous: Option<ChunkIndex> = None;
    for art in crate::archive::chain_of(home, since_art)? {
        let basis = previous.as_ref().map(Basis::from_index).unwrap_or_default();
        let packed = packer::pack(&source_of(home, &art)?, &basis, None, monitor, &mut |_| {
            Ok(())
        })?;
        previous = Some(packed.index);
    }
    let index = previous.ok_or_else(|| Error::Internal("an empty chain".into()))?;
    Ok((index, since_digest))
}

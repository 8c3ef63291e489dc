//! `Store`: what push and pull need of a place that holds OCI blobs and
//! manifests. Three implementations, one per reference form: a registry
//! (`registry/`), an OCI layout directory (`layout.rs`) and a tar of one
//! (`oci_archive.rs`). Push and pull are written once over this trait.
//!
//! Contract for every implementation:
//! - A blob becomes visible under its digest only when all of it is there
//!   (registries do this themselves; the local stores write a temporary
//!   file and rename it), so a killed push leaves at worst unreferenced
//!   blobs, never a short one under a digest.
//! - Stores move bytes; they do not trust them. The caller checks every
//!   digest and leaf hash of what it reads.
//! - Nothing a store returns or logs contains a credential.
//! - Long transfers check `monitor` at least every few MiB and return
//!   `Cancelled` when asked; `abandon` then cleans up what is half done
//!   (upload sessions, temporary files).
use super::reference::Reference;
use super::RemoteOptions;
use crate::error::Result;
use crate::progress::Monitor;
use std::path::Path;

pub trait Store: Send + Sync {
    /// The place, for messages: the reference without any secret.
    fn describe(&self) -> String;

    /// The size of blob `digest` if the store holds it.
    fn blob_size(&self, digest: &str) -> Result<Option<u64>>;

    /// Store the blob `digest` (as the caller computed it) whose bytes are
    /// the whole file at `path`, `len` bytes. Returns the bytes sent.
    fn put_blob_file(&self, digest: &str, path: &Path, len: u64, monitor: &Monitor) -> Result<u64>;

    /// Store a small blob held in memory (an index, a config). Returns the
    /// bytes sent.
    fn put_blob_bytes(&self, digest: &str, bytes: &[u8], monitor: &Monitor) -> Result<u64>;

    /// Make blob `digest` present by mounting it from `from_repository` of
    /// the same registry. `Ok(false)` if that is not possible here.
    fn mount_blob(&self, _digest: &str, _from_repository: &str) -> Result<bool> {
        Ok(false)
    }

    /// The whole blob `digest`; more than `max` bytes is an error.
    fn get_blob(&self, digest: &str, max: u64, monitor: &Monitor) -> Result<Vec<u8>>;

    /// Exactly `len` bytes of blob `digest` from `offset` (a Range request)
    /// into `out`, replacing what it held. Pull reads hundreds of ranges of
    /// a few MiB: reusing one buffer per worker spares an allocation (and
    /// its page faults) each.
    fn read_blob_range(
        &self,
        digest: &str,
        offset: u64,
        len: u64,
        out: &mut Vec<u8>,
        monitor: &Monitor,
    ) -> Result<()>;

    /// [`Store::read_blob_range`] into a new buffer.
    fn get_blob_range(
        &self,
        digest: &str,
        offset: u64,
        len: u64,
        monitor: &Monitor,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_blob_range(digest, offset, len, &mut out, monitor)?;
        Ok(out)
    }

    /// The manifest under a tag or a `sha256:` digest, `None` if there is
    /// none; more than `max` bytes is an error.
    fn get_manifest(&self, tag_or_digest: &str, max: u64) -> Result<Option<Vec<u8>>>;

    /// Publish `bytes` (an image manifest of `media_type` whose blobs are
    /// all present) under `tag`.
    fn put_manifest(&self, tag: &str, bytes: &[u8], media_type: &str) -> Result<()>;

    /// Called once after the last `put_manifest` of a push: make it all
    /// durable and visible (an `oci-archive:` writes its file here, and
    /// stops at a cancel of `monitor`, leaving nothing).
    fn commit(&self, _monitor: &Monitor) -> Result<()> {
        Ok(())
    }

    /// The operation failed or was cancelled: delete what is half done
    /// (upload sessions, temporary files). Never fails.
    fn abandon(&self) {}
}

/// Whether a store is opened to be written (push) or read (pull).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Open the store `reference` names. `scratch` is a directory of the home
/// for temporary files (an `oci-archive:` is assembled or indexed there).
pub fn open(
    reference: &Reference,
    remote: &RemoteOptions,
    access: Access,
    scratch: &Path,
) -> Result<Box<dyn Store>> {
    match reference {
        Reference::Registry {
            host, repository, ..
        } => super::registry::open(host, repository, remote, access),
        Reference::Layout { dir, .. } => super::layout::open(dir, access),
        Reference::Archive { file, .. } => super::oci_archive::open(file, access, scratch),
    }
}

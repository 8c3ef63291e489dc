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
//!
//! [`Error::ImageNotFound`]: crate::error::Error::ImageNotFound
//! [`Error::InvalidArgument`]: crate::error::Error::InvalidArgument
//! [`Error::IntegrityMismatch`]: crate::error::Error::IntegrityMismatch
//! [`Error::InvalidArchive`]: crate::error::Error::InvalidArchive
//!
//! # Where things are
//!
//! - `oci`: the OCI JSON shapes and media types.
//! - `store`: digests, blob paths, and reading and checking blobs and the
//!   layout files (`oci-layout`, `index.json`).
//! - `reference`: docker's familiar-name normalization, the ref-name grammar,
//!   and choosing among `index.json` entries that share a name.
//! - `resolve`: [`resolve`](fn@resolve), [`list`] and [`blobs_of`].
//! - `write`: [`ensure_layout`], [`add_blob`], [`add_ref`], and the locking
//!   and atomic writes behind them.
//! - `import`: [`import_layout`].
//! - `gc`: [`prune`] and the pins it honours ([`image_users`]);
//!   [`ImageUseGuard`] (in `write`) keeps it away from an operation that adds
//!   blobs and then names or pins them.
mod gc;
mod import;
mod oci;
mod reference;
mod resolve;
mod store;
mod write;

pub use crate::manifest::ImagePin;
pub(crate) use gc::{
    blob_files, index_entries, needed_blobs, pinned_digests, read_index, Reachability,
};
pub use gc::{image_users, prune, ImagePruneOptions, ImagePruneReport, ImageUser, PrunedBlob};
pub use import::import_layout;
pub use oci::{
    host_architecture, Descriptor, OCI_INDEX_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE,
    REF_NAME_ANNOTATION,
};
pub use resolve::{blobs_of, list, resolve, ImageInfo};
pub use store::blob_path;
pub use write::{add_blob, add_ref, ensure_layout, ImageUseGuard};

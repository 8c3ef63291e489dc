//! The media types and annotation keys of a pushed snapshot (DESIGN.md
//! "Objects"; docs/registry.md). Part of the wire format: never change one.

/// The image manifest's own media type.
pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `artifactType` of a snapshot's image manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.microsnap.snapshot.v1";
/// The config: the snapshot's descriptor bytes (`manifest.json`, or
/// `snapshot.json` for a v0.6.14 artifact), exactly as on disk.
pub const CONFIG: &str = "application/vnd.microsnap.snapshot.config.v1+json";
/// layers[0]: the chunk index.
pub const CHUNK_INDEX: &str = "application/vnd.microsnap.snapshot.index.v1+zstd";
/// layers[1..]: packs of zstd-framed chunks.
pub const PACK: &str = "application/vnd.microsnap.snapshot.pack.v1";

pub const ANNOTATION_SNAPSHOT_DIGEST: &str = "dev.microsnap.snapshot.digest";
pub const ANNOTATION_PARENT: &str = "dev.microsnap.snapshot.parent";
pub const ANNOTATION_MERKLE_ROOT: &str = "dev.microsnap.merkle.root";
pub const ANNOTATION_UPPER_SIZE: &str = "dev.microsnap.upper.size";
pub const ANNOTATION_IMAGE_REF: &str = "dev.microsnap.image.ref";
pub const ANNOTATION_IMAGE_MANIFEST_DIGEST: &str = "dev.microsnap.image.manifest_digest";
/// Which descriptor the config is: `msb-v0.6.3` (`manifest.json`) or
/// `msb-v0.6.14` (`snapshot.json`).
pub const ANNOTATION_ARTIFACT_FORMAT: &str = "dev.microsnap.artifact.format";
/// On a manifest pushed with `since`: the snapshot (an ancestor) whose
/// packs it names but its store may lack; pull needs that one locally.
pub const ANNOTATION_SINCE: &str = "dev.microsnap.since";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// On an `index.json` entry of an OCI layout: the tag.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The tag every pushed snapshot also gets, so that a child's push finds
/// its parent's index and `with_parents` pulls find ancestors.
pub fn digest_tag(snapshot_digest: &str) -> String {
    snapshot_digest.replacen(':', "-", 1)
}

//! Every JSON message that crosses the boundary, defined once. Argument
//! types reject unknown fields so a typo in a binding is an error, not a
//! silently ignored option. Golden files in tests/golden pin these shapes.
use crate::sandbox::Sandbox;
use crate::snapshot::{Artifact, SnapshotHandle, VerifyReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

// ---- arguments ----

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ContextOpenArgs {
    /// Home directory; absent = `$MICROSNAP_HOME`, else `~/.microsnap`.
    pub home: Option<PathBuf>,
}

/// For calls that take no arguments: NULL or `{}`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct EmptyArgs {}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct NameArgs {
    pub name: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RefArgs {
    /// Bare name, digest or path (what each call accepts is in docs/abi.md).
    #[serde(rename = "ref")]
    pub reference: String,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RemoveArgs {
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default)]
    pub force: bool,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DirArgs {
    pub dir: PathBuf,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct OptionalDirArgs {
    pub dir: Option<PathBuf>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCreateArgs {
    pub source_sandbox: String,
    pub name: Option<String>,
    pub path: Option<PathBuf>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub record_integrity: bool,
    /// `sha256`, `msb-sparse-sha256-v1` or `microsnap-merkle-sha256-v1`; absent = default.
    pub integrity_algorithm: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SandboxCreateArgs {
    pub name: String,
    /// Image ref or manifest digest in the home's OCI layout.
    pub image: Option<String>,
    /// Snapshot name, digest or path to boot from (exclusive with `upper`).
    pub snapshot: Option<String>,
    /// Existing upper file to adopt (needs `image` and `fstype`).
    pub upper: Option<PathBuf>,
    pub fstype: Option<String>,
    /// Size of a fresh upper in bytes (only with `image` alone).
    pub size_bytes: Option<u64>,
    /// Start it (take the lock and hand back a running handle). Default true.
    pub start: Option<bool>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ExportArgs {
    #[serde(rename = "ref")]
    pub reference: String,
    pub out: PathBuf,
    #[serde(default)]
    pub with_parents: bool,
    #[serde(default)]
    pub with_image: bool,
    #[serde(default)]
    pub plain_tar: bool,
    #[serde(default)]
    pub dense: bool,
    pub level: Option<i32>,
    pub threads: Option<u32>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ImportArgs {
    pub archive: PathBuf,
    /// Destination directory; absent = the home's snapshots directory.
    pub dest: Option<PathBuf>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ImageImportArgs {
    /// An OCI image layout directory.
    pub source: PathBuf,
    /// Only this ref (default: every image in the layout).
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

// ---- results ----

#[derive(Serialize, Debug, PartialEq)]
pub struct ArtifactJson {
    pub path: PathBuf,
    pub digest: String,
    pub schema: u32,
    pub format: String,
    pub fstype: String,
    pub image_ref: String,
    pub image_manifest_digest: String,
    pub parent: Option<String>,
    pub created_at: String,
    pub labels: BTreeMap<String, String>,
    pub upper_file: String,
    pub size_bytes: u64,
    pub integrity: Option<IntegrityJson>,
    pub source_sandbox: Option<String>,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct IntegrityJson {
    pub algorithm: String,
    pub digest: String,
}

impl From<&Artifact> for ArtifactJson {
    fn from(a: &Artifact) -> Self {
        let m = &a.manifest;
        ArtifactJson {
            path: a.path.clone(),
            digest: a.digest.clone(),
            schema: m.schema,
            format: m.format.as_str().to_string(),
            fstype: m.fstype.clone(),
            image_ref: m.image.reference.clone(),
            image_manifest_digest: m.image.manifest_digest.clone(),
            parent: m.parent.clone(),
            created_at: m.created_at.clone(),
            labels: m.labels.clone(),
            upper_file: m.upper.file.clone(),
            size_bytes: m.upper.size_bytes,
            integrity: m.upper.integrity.as_ref().map(|i| IntegrityJson {
                algorithm: i.algorithm.clone(),
                digest: i.digest.clone(),
            }),
            source_sandbox: m.source_sandbox.clone(),
        }
    }
}

/// The snapshot handle object. It borrows the engine's handle: a listing of
/// thousands is serialized without copying each of their strings first.
/// `snapshot_list` writes `{"snapshots": [handle...]}` around it as it reads
/// the index (ffi/snapshot.rs).
#[derive(Serialize, Debug, PartialEq)]
pub struct HandleJson<'a> {
    pub digest: &'a str,
    pub name: Option<&'a str>,
    pub parent_digest: Option<&'a str>,
    pub image_ref: &'a str,
    pub image_manifest_digest: &'a str,
    pub format: &'a str,
    pub fstype: &'a str,
    pub size_bytes: Option<u64>,
    pub path: &'a Path,
    pub created_at: &'a str,
    pub created_at_unix_nanos: i64,
    pub labels: &'a BTreeMap<String, String>,
    pub child_count: u64,
}

impl<'a> From<&'a SnapshotHandle> for HandleJson<'a> {
    fn from(h: &'a SnapshotHandle) -> Self {
        HandleJson {
            digest: &h.digest,
            name: h.name.as_deref(),
            parent_digest: h.parent_digest.as_deref(),
            image_ref: &h.image_ref,
            image_manifest_digest: &h.image_manifest_digest,
            format: &h.format,
            fstype: &h.fstype,
            size_bytes: h.size_bytes,
            path: &h.path,
            created_at: &h.created_at,
            created_at_unix_nanos: h.created_at_unix_nanos,
            labels: &h.labels,
            child_count: h.child_count,
        }
    }
}

#[derive(Serialize, Debug, PartialEq)]
pub struct VerifyJson {
    pub digest: String,
    pub path: PathBuf,
    pub upper: UpperVerifyJson,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct UpperVerifyJson {
    pub kind: String,
    pub algorithm: String,
    pub digest: String,
}

impl From<&VerifyReport> for VerifyJson {
    fn from(r: &VerifyReport) -> Self {
        VerifyJson {
            digest: r.digest.clone(),
            path: r.path.clone(),
            upper: UpperVerifyJson {
                kind: r.upper.kind.clone(),
                algorithm: r.upper.algorithm.clone(),
                digest: r.upper.digest.clone(),
            },
        }
    }
}

#[derive(Serialize, Debug, PartialEq)]
pub struct SandboxJson {
    pub name: String,
    /// `created`, `running`, `stopped` or `crashed`.
    pub state: String,
    pub image_ref: String,
    pub image_manifest_digest: String,
    pub upper_path: PathBuf,
    pub format: String,
    pub fstype: String,
    pub size_bytes: u64,
    pub from_snapshot: Option<String>,
    pub created_at: String,
}

impl From<&Sandbox> for SandboxJson {
    fn from(s: &Sandbox) -> Self {
        SandboxJson {
            name: s.name.clone(),
            state: s.state.as_str().to_string(),
            image_ref: s.image.reference.clone(),
            image_manifest_digest: s.image.manifest_digest.clone(),
            upper_path: s.upper_path.clone(),
            format: s.format.as_str().to_string(),
            fstype: s.fstype.clone(),
            size_bytes: s.size_bytes,
            from_snapshot: s.from_snapshot.clone(),
            created_at: s.created_at.clone(),
        }
    }
}

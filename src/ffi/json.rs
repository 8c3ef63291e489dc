//! Every JSON message that crosses the boundary, defined once: the
//! arguments each call takes, the result each call returns and the error
//! object every failure returns. The exports in this folder only convert
//! engine values into these types; none builds JSON itself, and every
//! result is serialized straight to text (no `serde_json::Value` between).
//! Argument types reject unknown fields so a typo in a binding is an error,
//! not a silently ignored option. Golden files in tests/golden pin these
//! shapes, and tests/ffi/abi_doc.rs keeps docs/abi.md in step with them.
use super::boundary::JsonText;
use crate::archive::ExportReport;
use crate::distribution::{PullReport, RemoteOptions};
use crate::error::{Error, Result};
use crate::image::{ImageInfo, ImagePin, ImagePruneReport};
use crate::sandbox::Sandbox;
use crate::snapshot::{
    Artifact, DirListing, KeptSnapshot, PruneReport, PrunedSnapshot, SnapshotHandle, VerifyReport,
};
use crate::usage::{ItemUsage, Space, Usage};
use serde::ser::{Error as _, SerializeSeq, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};
use std::cell::RefCell;
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
    /// `sha256`, `msb-sparse-sha256-v1`, `microsnap-merkle-sha256-v1` or
    /// `msb-file-merkle-blake3-v1`; absent = default.
    pub integrity_algorithm: Option<String>,
    /// `msb-v0.6.3` (default) or `msb-v0.6.14`.
    pub format: Option<String>,
}

/// `snapshot_prune`: the policy (src/snapshot/prune.rs). Durations are
/// text the engine parses (`90m`, `36h`, `7d`, `2w`), so every binding and
/// the CLI read them alike.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPruneArgs {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub older_than: Option<String>,
    pub keep_last: Option<u32>,
    /// `source_sandbox` (default) or `label:KEY`.
    pub group_by: Option<String>,
    pub keep_within: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub force: bool,
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
    /// `msb-v0.6.3` (default) or `msb-v0.6.14`.
    pub format: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ImportArgs {
    pub archive: PathBuf,
    /// Destination directory; absent = the home's snapshots directory.
    pub dest: Option<PathBuf>,
    /// Install the head under this bare name in the destination instead of
    /// the directory name the archive carries.
    pub name: Option<String>,
}

/// `image_prune`: NULL or `{"dry_run"?}`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct ImagePruneArgs {
    #[serde(default)]
    pub dry_run: bool,
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

/// `snapshot_push`: the snapshot, the reference, and the fields of
/// `distribution::PushOptions` (with its `RemoteOptions`) by their names.
/// Not `PushOptions` flattened in: a flattened struct that itself denies
/// unknown fields sees every member of the outer object (`ref` included)
/// and refuses it, so the options are spelt out here and converted.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPushArgs {
    /// Bare name, digest or path of the local snapshot.
    #[serde(rename = "ref")]
    pub snapshot: String,
    /// `HOST[:PORT]/REPO[:TAG|@sha256:…]`, `oci:DIR[:TAG]` or
    /// `oci-archive:FILE[:TAG]`.
    pub reference: String,
    #[serde(default)]
    pub with_parents: bool,
    pub since: Option<String>,
    #[serde(flatten)]
    pub remote: RemoteArgs,
}

/// `snapshot_pull`: the reference, where to, and the fields of
/// `distribution::PullOptions` (with its `RemoteOptions`) by their names.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPullArgs {
    pub reference: String,
    /// Destination directory; absent = the home's snapshots directory.
    pub dest: Option<PathBuf>,
    /// The head's directory name in the destination; absent = the tag.
    pub name: Option<String>,
    #[serde(default)]
    pub with_parents: bool,
    #[serde(flatten)]
    pub remote: RemoteArgs,
}

/// How to reach a registry: `distribution::RemoteOptions`, member by
/// member. Flattened (one level) into the two argument types above, whose
/// own `deny_unknown_fields` refuses what neither they nor this one name;
/// this one must not deny itself, or it would refuse their members (the
/// argument tests in src/ffi/distribution.rs pin both).
#[derive(Deserialize, Default)]
pub struct RemoteArgs {
    #[serde(default)]
    pub plain_http: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub docker_config: Option<PathBuf>,
    pub max_in_flight: Option<usize>,
    pub timeout_seconds: Option<u64>,
}

/// Debug without the password, so that no `{:?}` of the arguments can
/// carry it into a log or a message.
impl std::fmt::Debug for RemoteArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteArgs")
            .field("plain_http", &self.plain_http)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("docker_config", &self.docker_config)
            .field("max_in_flight", &self.max_in_flight)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

impl From<RemoteArgs> for RemoteOptions {
    fn from(a: RemoteArgs) -> Self {
        RemoteOptions {
            plain_http: a.plain_http,
            username: a.username,
            password: a.password,
            ca_file: a.ca_file,
            docker_config: a.docker_config,
            max_in_flight: a.max_in_flight,
            timeout_seconds: a.timeout_seconds,
        }
    }
}

// ---- results ----

#[derive(Serialize, Debug, PartialEq)]
pub struct ArtifactJson {
    pub path: PathBuf,
    pub digest: String,
    /// `msb-v0.6.3` (manifest.json) or `msb-v0.6.14` (snapshot.json).
    pub artifact_format: &'static str,
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
        let d = &a.descriptor;
        let upper = a.upper_spec();
        ArtifactJson {
            path: a.path.clone(),
            digest: a.digest.clone(),
            artifact_format: a.format().name(),
            schema: d.schema(),
            // Empty for a checkpoint-state snapshot, which has no disk upper.
            format: d
                .disk_format()
                .map(|f| f.as_str())
                .unwrap_or_default()
                .to_string(),
            fstype: d.fstype().unwrap_or_default().to_string(),
            image_ref: d.image().reference.clone(),
            image_manifest_digest: d.image().manifest_digest.clone(),
            parent: d.parent().map(str::to_string),
            created_at: d.created_at().to_string(),
            labels: d.labels().clone(),
            upper_file: upper.map(|u| u.file.clone()).unwrap_or_default(),
            size_bytes: upper.map_or(0, |u| u.size_bytes),
            integrity: upper
                .and_then(|u| u.integrity.as_ref())
                .map(|i| IntegrityJson {
                    algorithm: i.algorithm.clone(),
                    digest: i.digest.clone(),
                }),
            source_sandbox: d.source_sandbox().map(str::to_string),
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
    pub artifact_format: &'a str,
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
            artifact_format: &h.artifact_format,
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

/// `{"sandboxes": [sandbox...]}` (`sandbox_list`).
#[derive(Serialize, Debug, PartialEq)]
pub struct SandboxListJson {
    pub sandboxes: Vec<SandboxJson>,
}

/// What `sandbox_stop` and `sandbox_info` return through a handle: the
/// sandbox, or `{}` once the handle has been stopped.
#[derive(Serialize, Debug, PartialEq)]
#[serde(untagged)]
pub enum HeldSandboxJson {
    Held(Box<SandboxJson>),
    Stopped(EmptyJson),
}

/// `{}`: the result of calls that only succeed or fail.
#[derive(Serialize, Debug, PartialEq)]
pub struct EmptyJson {}

/// `context_open`: the home the context is bound to, absolute.
#[derive(Serialize, Debug, PartialEq)]
pub struct ContextJson {
    pub home: PathBuf,
}

/// `{"images": [image...]}` (`image_list`).
#[derive(Serialize, Debug, PartialEq)]
pub struct ImageListJson<'a> {
    pub images: Vec<ImageJson<'a>>,
}

/// One image of the home's OCI layout.
#[derive(Serialize, Debug, PartialEq)]
pub struct ImageJson<'a> {
    /// The `index.json` ref name; `null` for an unnamed entry.
    #[serde(rename = "ref")]
    pub reference: Option<&'a str>,
    pub manifest_digest: &'a str,
    pub config_digest: &'a str,
    /// Number of layers.
    pub layers: usize,
    /// Bytes of the manifest, config and layer blobs.
    pub size: u64,
}

impl<'a> From<&'a ImageInfo> for ImageJson<'a> {
    fn from(i: &'a ImageInfo) -> Self {
        ImageJson {
            reference: i.reference.as_deref(),
            manifest_digest: &i.manifest_digest,
            config_digest: &i.config_digest,
            layers: i.layers.len(),
            size: i.total_size,
        }
    }
}

/// `{"images": [{"ref", "manifest_digest"}...]}` (`image_import`).
#[derive(Serialize, Debug, PartialEq)]
pub struct ImageImportJson<'a> {
    pub images: Vec<ImagePinJson<'a>>,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct ImagePinJson<'a> {
    #[serde(rename = "ref")]
    pub reference: &'a str,
    pub manifest_digest: &'a str,
}

impl<'a> From<&'a ImagePin> for ImagePinJson<'a> {
    fn from(p: &'a ImagePin) -> Self {
        ImagePinJson {
            reference: &p.reference,
            manifest_digest: &p.manifest_digest,
        }
    }
}

/// `image_prune`'s report.
#[derive(Serialize, Debug, PartialEq)]
pub struct ImagePruneJson<'a> {
    pub dry_run: bool,
    pub removed: Vec<PrunedBlobJson<'a>>,
    /// Digests of the unnamed `index.json` entries dropped.
    pub untagged_removed: &'a [String],
    pub blobs_kept: u64,
    pub blobs_kept_young: u64,
    /// Allocated bytes (`st_blocks * 512`) of what was removed.
    pub bytes_freed: u64,
    pub logical_bytes_freed: u64,
    pub temp_files_removed: u64,
}

#[derive(Serialize, Debug, PartialEq)]
pub struct PrunedBlobJson<'a> {
    pub digest: &'a str,
    pub size: u64,
    pub allocated_bytes: u64,
}

impl<'a> From<&'a ImagePruneReport> for ImagePruneJson<'a> {
    fn from(r: &'a ImagePruneReport) -> Self {
        ImagePruneJson {
            dry_run: r.dry_run,
            removed: r
                .removed
                .iter()
                .map(|b| PrunedBlobJson {
                    digest: &b.digest,
                    size: b.size,
                    allocated_bytes: b.allocated_bytes,
                })
                .collect(),
            untagged_removed: &r.untagged_removed,
            blobs_kept: r.blobs_kept,
            blobs_kept_young: r.blobs_kept_young,
            bytes_freed: r.bytes_freed,
            logical_bytes_freed: r.logical_bytes_freed,
            temp_files_removed: r.temp_files_removed,
        }
    }
}

/// `home_usage`'s report.
#[derive(Serialize, Debug, PartialEq)]
pub struct UsageJson<'a> {
    pub snapshots: Vec<UsageItemJson<'a>>,
    pub sandboxes: Vec<UsageItemJson<'a>>,
    pub images: Vec<UsageItemJson<'a>>,
    pub unreferenced_images: SpaceJson,
    /// The home's `cache/` (derived data; in the total).
    pub cache: SpaceJson,
    pub total: SpaceJson,
}

/// Logical, allocated and shared bytes.
#[derive(Serialize, Debug, PartialEq)]
pub struct SpaceJson {
    pub logical_bytes: u64,
    pub allocated_bytes: u64,
    pub shared_bytes: u64,
}

impl From<&Space> for SpaceJson {
    fn from(s: &Space) -> Self {
        SpaceJson {
            logical_bytes: s.logical_bytes,
            allocated_bytes: s.allocated_bytes,
            shared_bytes: s.shared_bytes,
        }
    }
}

/// One snapshot, sandbox or image of `home_usage`.
#[derive(Serialize, Debug, PartialEq)]
pub struct UsageItemJson<'a> {
    pub name: &'a str,
    /// Snapshot or image digest; `null` for a sandbox.
    pub digest: Option<&'a str>,
    /// Snapshot or sandbox directory; `null` for an image.
    pub path: Option<&'a Path>,
    pub logical_bytes: u64,
    pub allocated_bytes: u64,
    pub shared_bytes: u64,
}

impl<'a> From<&'a ItemUsage> for UsageItemJson<'a> {
    fn from(i: &'a ItemUsage) -> Self {
        UsageItemJson {
            name: &i.name,
            digest: i.digest.as_deref(),
            path: i.path.as_deref(),
            logical_bytes: i.space.logical_bytes,
            allocated_bytes: i.space.allocated_bytes,
            shared_bytes: i.space.shared_bytes,
        }
    }
}

impl<'a> From<&'a Usage> for UsageJson<'a> {
    fn from(u: &'a Usage) -> Self {
        let items = |v: &'a [ItemUsage]| v.iter().map(UsageItemJson::from).collect();
        UsageJson {
            snapshots: items(&u.snapshots),
            sandboxes: items(&u.sandboxes),
            images: items(&u.images),
            unreferenced_images: SpaceJson::from(&u.unreferenced_images),
            cache: SpaceJson::from(&u.cache),
            total: SpaceJson::from(&u.total),
        }
    }
}

/// `snapshot_list_dir`: the artifacts that parsed, and why each other entry
/// did not.
#[derive(Serialize, Debug, PartialEq)]
pub struct ListDirJson<'a> {
    pub artifacts: Vec<ArtifactJson>,
    /// Error objects whose `path` is the skipped entry.
    pub skipped: Vec<ErrorJson<'a>>,
}

impl<'a> ListDirJson<'a> {
    /// From artifacts already encoded (so none has to stay open) and the
    /// entries that were skipped, with why.
    pub fn new(artifacts: Vec<ArtifactJson>, skipped: &'a [(PathBuf, Error)]) -> Self {
        ListDirJson {
            artifacts,
            skipped: skipped
                .iter()
                .map(|(path, e)| ErrorJson {
                    path: Some(path.as_path()),
                    ..ErrorJson::from(e)
                })
                .collect(),
        }
    }
}

impl<'a> From<&'a DirListing> for ListDirJson<'a> {
    fn from(l: &'a DirListing) -> Self {
        ListDirJson::new(
            l.artifacts.iter().map(ArtifactJson::from).collect(),
            &l.skipped,
        )
    }
}

/// `{"indexed": n}` (`snapshot_reindex`).
#[derive(Serialize, Debug, PartialEq)]
pub struct ReindexJson {
    pub indexed: u32,
}

/// `snapshot_export`'s report.
#[derive(Serialize, Debug, PartialEq)]
pub struct ExportJson<'a> {
    pub path: &'a Path,
    /// Digests of the exported snapshots, in archive order (head last).
    pub snapshots: &'a [String],
    /// Bytes of the archive file.
    pub bytes_written: u64,
}

impl<'a> From<&'a ExportReport> for ExportJson<'a> {
    fn from(r: &'a ExportReport) -> Self {
        ExportJson {
            path: &r.path,
            snapshots: &r.snapshots,
            bytes_written: r.bytes_written,
        }
    }
}

/// `snapshot_prune`'s report.
#[derive(Serialize, Debug, PartialEq)]
pub struct PruneJson<'a> {
    pub dry_run: bool,
    /// In removal order: children before parents.
    pub removed: Vec<RemovedSnapshotJson<'a>>,
    /// Newest first.
    pub kept: Vec<KeptSnapshotJson<'a>>,
    /// Allocated bytes (st_blocks * 512) of the removed artifacts.
    pub bytes_freed: u64,
}

/// One snapshot a prune removed (a dry run: would remove).
#[derive(Serialize, Debug, PartialEq)]
pub struct RemovedSnapshotJson<'a> {
    pub digest: &'a str,
    pub name: Option<&'a str>,
    pub path: &'a Path,
    pub created_at: &'a str,
    /// The keep rules' group: the source sandbox or the label's value.
    pub group: Option<&'a str>,
    pub allocated_bytes: u64,
}

/// One snapshot a prune kept, with its reason codes.
#[derive(Serialize, Debug, PartialEq)]
pub struct KeptSnapshotJson<'a> {
    pub digest: &'a str,
    pub name: Option<&'a str>,
    pub path: &'a Path,
    pub created_at: &'a str,
    pub group: Option<&'a str>,
    /// `keep_last`, `keep_within`, `not_old_enough`, `not_selected`,
    /// `unreadable`, `has_children:<child>`, `used_by_sandbox:<name>`.
    pub reasons: Vec<String>,
}

impl<'a> From<&'a PruneReport> for PruneJson<'a> {
    fn from(r: &'a PruneReport) -> Self {
        PruneJson {
            dry_run: r.dry_run,
            removed: r.removed.iter().map(RemovedSnapshotJson::from).collect(),
            kept: r.kept.iter().map(KeptSnapshotJson::from).collect(),
            bytes_freed: r.bytes_freed,
        }
    }
}

impl<'a> From<&'a PrunedSnapshot> for RemovedSnapshotJson<'a> {
    fn from(s: &'a PrunedSnapshot) -> Self {
        RemovedSnapshotJson {
            digest: &s.digest,
            name: s.name.as_deref(),
            path: &s.path,
            created_at: &s.created_at,
            group: s.group.as_deref(),
            allocated_bytes: s.allocated_bytes,
        }
    }
}

impl<'a> From<&'a KeptSnapshot> for KeptSnapshotJson<'a> {
    fn from(s: &'a KeptSnapshot) -> Self {
        KeptSnapshotJson {
            digest: &s.digest,
            name: s.name.as_deref(),
            path: &s.path,
            created_at: &s.created_at,
            group: s.group.as_deref(),
            reasons: s.reasons.iter().map(ToString::to_string).collect(),
        }
    }
}

/// `snapshot_import`'s report: handles of what is now installed.
#[derive(Serialize, Debug, PartialEq)]
pub struct ImportJson<'a> {
    pub head: HandleJson<'a>,
    /// Every snapshot of the archive, in archive order.
    pub imported: Vec<HandleJson<'a>>,
    /// Manifest digests of the images added to the home's layout.
    pub images: &'a [String],
    /// Archive members checked but not installed (a microsandbox v0.6.14
    /// archive's `images/…` cache files).
    pub skipped: &'a [String],
}

/// `snapshot_push`'s result is `distribution::PushReport` as the engine
/// serializes it: its field names are the ABI (docs/abi.md, "push report").
pub use crate::distribution::PushReport as PushJson;

/// `snapshot_pull`'s result: the head's handle, as `snapshot_import` gives
/// it, and the engine's `PullReport` (its field names are the ABI).
#[derive(Serialize, Debug, PartialEq)]
pub struct PullJson<'a> {
    pub head: HandleJson<'a>,
    pub report: &'a PullReport,
}

/// `snapshot_list`'s result, `{"snapshots": [handle...]}`, encoded while
/// the index is read: `each` visits the handles, and each is written as it
/// comes, so a listing of thousands is never held twice, as handles and as
/// text (collecting them first and freeing them all afterwards cost a third
/// again of the engine's list).
pub struct SnapshotListJson<F> {
    each: RefCell<Option<F>>,
    /// The engine error that stopped `each`: serde can carry only a
    /// message, so the error itself waits here for [`Self::encode`].
    failed: RefCell<Option<Error>>,
}

/// What [`SnapshotListJson`] calls once per handle.
pub type VisitHandle<'v> = dyn FnMut(SnapshotHandle) -> Result<()> + 'v;

impl<F> SnapshotListJson<F>
where
    F: FnOnce(&mut VisitHandle<'_>) -> Result<()>,
{
    pub fn new(each: F) -> Self {
        SnapshotListJson {
            each: RefCell::new(Some(each)),
            failed: RefCell::new(None),
        }
    }

    /// The JSON text. An error of the listing itself comes back as it is
    /// (with its own code), not as an encoding failure.
    pub fn encode(self) -> Result<JsonText> {
        let mut text = Vec::new();
        match serde_json::to_writer(&mut text, &self) {
            Ok(()) => Ok(JsonText(text)),
            Err(e) => Err(self.failed.take().unwrap_or_else(|| encode_error(e))),
        }
    }
}

impl<F> Serialize for SnapshotListJson<F>
where
    F: FnOnce(&mut VisitHandle<'_>) -> Result<()>,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut object = s.serialize_struct("SnapshotListJson", 1)?;
        object.serialize_field("snapshots", &HandleSeq(self))?;
        object.end()
    }
}

struct HandleSeq<'l, F>(&'l SnapshotListJson<F>);

impl<F> Serialize for HandleSeq<'_, F>
where
    F: FnOnce(&mut VisitHandle<'_>) -> Result<()>,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let each = self.0.each.borrow_mut().take();
        let each = each.ok_or_else(|| S::Error::custom("snapshot list encoded twice"))?;
        let mut seq = s.serialize_seq(None)?;
        let mut encoding_failed = None;
        let listed = each(&mut |h| {
            seq.serialize_element(&HandleJson::from(&h)).map_err(|e| {
                let message = e.to_string();
                encoding_failed = Some(e);
                Error::Internal(message)
            })
        });
        if let Some(e) = encoding_failed {
            return Err(e);
        }
        if let Err(e) = listed {
            let message = e.to_string();
            *self.0.failed.borrow_mut() = Some(e);
            return Err(S::Error::custom(message));
        }
        seq.end()
    }
}

// ---- errors ----

/// The error object: `{"code", "message"}`, plus the details some codes
/// carry (absent, not null, for the others).
#[derive(Serialize, Debug, PartialEq)]
pub struct ErrorJson<'a> {
    pub code: &'static str,
    pub message: String,
    /// `integrity_mismatch`: the file whose content differs.
    /// In `snapshot_list_dir`'s `skipped`: the entry that was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a Path>,
    /// `integrity_mismatch`: the recorded digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<&'a str>,
    /// `integrity_mismatch`: the digest computed now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<&'a str>,
    /// `has_children`: the snapshot that has them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<&'a str>,
    /// `has_children`: how many indexed children it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<u64>,
}

impl<'a> From<&'a Error> for ErrorJson<'a> {
    fn from(e: &'a Error) -> Self {
        let plain = ErrorJson {
            code: e.code().name(),
            message: e.to_string(),
            path: None,
            expected: None,
            actual: None,
            digest: None,
            children: None,
        };
        match e {
            Error::IntegrityMismatch {
                path,
                expected,
                actual,
            } => ErrorJson {
                path: Some(Path::new(path)),
                expected: Some(expected),
                actual: Some(actual),
                ..plain
            },
            Error::HasChildren { digest, children } => ErrorJson {
                digest: Some(digest),
                children: Some(*children),
                ..plain
            },
            _ => plain,
        }
    }
}

/// A result that has no JSON form (a path that is not UTF-8) is a bug.
pub fn encode_error(e: serde_json::Error) -> Error {
    Error::Internal(format!("encode result: {e}"))
}

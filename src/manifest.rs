//! `manifest.json`: the snapshot manifest exactly as microsandbox v0.6.3 reads
//! and writes it (vectors/SPEC-NOTES.md §1–§4).
//!
//! Parsing is strict serde_json parsing (unknown members, duplicate members,
//! missing members — nullable ones included — and non-integer numbers are all
//! refused) followed by [`Manifest::validate`]. A snapshot's identity is the
//! SHA-256 of the *canonical re-serialization* of the parsed manifest, never of
//! the file's bytes, so a non-canonical but valid file keeps v0.6.3's digest.
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// The manifest's file name inside an artifact directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Where [`Manifest::write_to`] writes before renaming, as microsandbox does.
const MANIFEST_TMP_FILE: &str = "manifest.json.tmp";
/// The only schema version v0.6.3 knows.
pub const SCHEMA_VERSION: u32 = 1;
/// Real manifests are a few hundred bytes; the cap only stops a hostile
/// artifact from making us read gigabytes into memory.
const MAX_MANIFEST_BYTES: u64 = 16 * 1024 * 1024;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The upper image's on-disk format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    /// The manifest spelling: `"raw"` or `"qcow2"` (case-sensitive).
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }

    fn from_name(name: &str) -> Option<DiskFormat> {
        match name {
            "raw" => Some(DiskFormat::Raw),
            "qcow2" => Some(DiskFormat::Qcow2),
            _ => None,
        }
    }
}

impl fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DiskFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<DiskFormat> {
        DiskFormat::from_name(s).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown disk format {s:?} (expected \"raw\" or \"qcow2\")"
            ))
        })
    }
}

/// The OCI base image the snapshot runs on, pinned by manifest digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the `image` object")]
pub struct ImagePin {
    #[serde(rename = "ref", deserialize_with = "field::image_ref")]
    pub reference: String,
    #[serde(deserialize_with = "field::image_manifest_digest")]
    pub manifest_digest: String,
}

/// A recorded digest of the upper file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the `upper.integrity` object")]
pub struct UpperIntegrity {
    #[serde(deserialize_with = "field::integrity_algorithm")]
    pub algorithm: String,
    #[serde(deserialize_with = "field::integrity_digest")]
    pub digest: String,
}

/// The upper image file of an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "the `upper` object")]
pub struct Upper {
    #[serde(deserialize_with = "field::upper_file")]
    pub file: String,
    /// Logical (apparent) size, holes included.
    #[serde(deserialize_with = "field::size_bytes")]
    pub size_bytes: u64,
    #[serde(deserialize_with = "field::integrity")]
    pub integrity: Option<UpperIntegrity>,
}

/// `manifest.json`. Field order is the canonical serialization order.
///
/// Every field goes through a `deserialize_with` helper: besides naming the
/// field in type errors, that makes serde treat a missing `Option` member as an
/// error instead of `None`, which is what v0.6.3 does (nullable members must be
/// an explicit `null`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a snapshot manifest object")]
pub struct Manifest {
    #[serde(deserialize_with = "field::schema")]
    pub schema: u32,
    #[serde(deserialize_with = "field::format")]
    pub format: DiskFormat,
    #[serde(deserialize_with = "field::fstype")]
    pub fstype: String,
    pub image: ImagePin,
    #[serde(deserialize_with = "field::parent")]
    pub parent: Option<String>,
    /// RFC 3339 as written by create; deliberately not validated (v0.6.3).
    #[serde(deserialize_with = "field::created_at")]
    pub created_at: String,
    /// A BTreeMap, so keys serialize in byte-wise UTF-8 order.
    #[serde(deserialize_with = "field::labels")]
    pub labels: BTreeMap<String, String>,
    pub upper: Upper,
    #[serde(deserialize_with = "field::source_sandbox")]
    pub source_sandbox: Option<String>,
}

impl Manifest {
    /// Strictly parse `manifest.json` bytes, then [`validate`](Self::validate).
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        if bytes.starts_with(UTF8_BOM) {
            // serde_json refuses it too, but only says "expected value".
            return Err(invalid("parse failed: starts with a UTF-8 byte order mark"));
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("parse failed: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The semantic checks of v0.6.3, in its order: the first failure wins.
    pub fn validate(&self) -> Result<()> {
        if self.schema != SCHEMA_VERSION {
            return Err(invalid(format!(
                "unsupported schema version {} (expected {SCHEMA_VERSION})",
                self.schema
            )));
        }
        if self.fstype.is_empty() {
            return Err(invalid("empty fstype"));
        }
        if self.image.reference.is_empty() {
            return Err(invalid("empty image.ref"));
        }
        check_digest_form("image.manifest_digest", &self.image.manifest_digest)?;
        if let Some(parent) = &self.parent {
            check_digest_form("parent", parent)?;
        }
        check_upper_file_name(&self.upper.file)?;
        if let Some(integrity) = &self.upper.integrity {
            if integrity.algorithm.is_empty() {
                return Err(invalid("empty upper.integrity.algorithm"));
            }
            check_digest_form("upper.integrity.digest", &integrity.digest)?;
        }
        Ok(())
    }

    /// serde_json's compact output: declaration order, no whitespace, no
    /// trailing newline, only the escapes of SPEC-NOTES §2.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serializing to a Vec cannot fail for this type: every map key is a
        // String and no field has a fallible Serialize impl.
        serde_json::to_vec(self).expect("a Manifest always serializes to JSON")
    }

    /// The snapshot identity: `"sha256:"` + hex SHA-256 of the canonical bytes.
    pub fn digest(&self) -> String {
        sha256_digest(&self.canonical_bytes())
    }

    /// Read and parse `<dir>/manifest.json`; returns the manifest and its digest.
    pub fn read_dir(dir: &Path) -> Result<(Manifest, String)> {
        let path = dir.join(MANIFEST_FILE);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(invalid(format!("missing {}", path.display())));
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        let (manifest, digest, _) = Manifest::read_file(&file, &path)?;
        Ok((manifest, digest))
    }

    /// Read and parse an open `manifest.json` (`path` names it in errors);
    /// returns the manifest, its digest and the bytes as read.
    pub fn read_file(file: &File, path: &Path) -> Result<(Manifest, String, Vec<u8>)> {
        let bytes = read_capped(file, path)?;
        let manifest = Manifest::parse(&bytes).map_err(|e| match e {
            Error::InvalidManifest(msg) => invalid(format!("{}: {msg}", path.display())),
            other => other,
        })?;
        let digest = manifest.digest();
        Ok((manifest, digest, bytes))
    }

    /// Write the canonical bytes to `<dir>/manifest.json` crash-safely: a temp
    /// file, fsync, rename, fsync of the directory. Refuses an invalid manifest,
    /// since nothing could open the artifact afterwards.
    pub fn write_to(&self, dir: &Path) -> Result<()> {
        self.validate()?;
        write_file_atomically(
            dir,
            MANIFEST_TMP_FILE,
            MANIFEST_FILE,
            &self.canonical_bytes(),
        )
    }
}

/// Read a descriptor file (either format) whole, refusing more than
/// [`MAX_MANIFEST_BYTES`]: real ones are a few hundred bytes.
pub(crate) fn read_capped(file: &File, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .ctx("read", path)?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(invalid(format!(
            "{} is larger than {MAX_MANIFEST_BYTES} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Write `bytes` to `<dir>/<name>` crash-safely: `<dir>/<tmp_name>`, fsync,
/// rename, fsync of the directory.
pub(crate) fn write_file_atomically(
    dir: &Path,
    tmp_name: &str,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    let tmp = dir.join(tmp_name);
    let dst = dir.join(name);
    let written = write_synced(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, &dst).ctx("rename into place", &dst));
    if let Err(e) = written {
        // Best effort: the original error is what matters.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).ctx("create", path)?;
    file.write_all(bytes).ctx("write", path)?;
    file.sync_all().ctx("fsync", path)
}

/// `"sha256:"` + lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in hash {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// v0.6.3's "digest form": a `:` with non-empty text on both sides of the
/// first one. Nothing else (hex, length, algorithm) is checked.
pub fn is_digest_form(s: &str) -> bool {
    matches!(s.split_once(':'), Some((algo, rest)) if !algo.is_empty() && !rest.is_empty())
}

/// The directory name a snapshot gets inside an export archive (SPEC-NOTES §8):
/// `sha256-` + the first 16 hex characters for a sha256 digest, otherwise the
/// digest with `:` replaced by `-`, cut to 20 characters.
pub fn digest_prefix(digest: &str) -> String {
    match digest.strip_prefix("sha256:") {
        Some(hex) => format!("sha256-{}", hex.chars().take(16).collect::<String>()),
        None => digest.replace(':', "-").chars().take(20).collect(),
    }
}

fn check_digest_form(field: &str, value: &str) -> Result<()> {
    match value.split_once(':') {
        None => Err(invalid(format!(
            "{field} is not a digest (missing ':'): {value}"
        ))),
        Some((algo, rest)) if algo.is_empty() || rest.is_empty() => {
            Err(invalid(format!("{field} has empty component: {value}")))
        }
        Some(_) => Ok(()),
    }
}

/// `upper.file` must be exactly one normal component by `Path::components`
/// rules. That is why v0.6.3 accepts `"upper.ext4/"`: a trailing separator is
/// not a component.
fn check_upper_file_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(invalid("empty upper.file"));
    }
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) => Ok(()),
        (Some(Component::Normal(_)), Some(_)) => Err(invalid(format!(
            "upper.file must be a single artifact filename: {name}"
        ))),
        _ => Err(invalid(format!(
            "upper.file must be a relative artifact filename: {name}"
        ))),
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidManifest(msg.into())
}

/// Per-field deserializers. Each names its JSON path in the "expected ..."
/// part of serde's error (serde_json's own messages for `4294967296.0` or
/// `"1"` do not say which member was wrong).
mod field {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Unexpected, Visitor};
    use serde::Deserialize;

    use super::{DiskFormat, UpperIntegrity};

    /// A JSON string, with `what` named in type errors.
    struct NamedString<'a>(&'a str);

    impl<'de> Visitor<'de> for NamedString<'_> {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a string for {}", self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
            Ok(v)
        }
    }

    impl<'de> DeserializeSeed<'de> for NamedString<'_> {
        type Value = String;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            d.deserialize_string(self)
        }
    }

    /// `null` or a JSON string.
    struct NullableString<'a>(&'a str);

    impl<'de> Visitor<'de> for NullableString<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "null or a string for {}", self.0)
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
            NamedString(self.0).deserialize(d).map(Some)
        }
    }

    /// A JSON integer in `0..=max`. serde_json hands floats (`1.0`, `-0`,
    /// `2^64` which it reads as a float) to `visit_f64`, which is left at its
    /// default: an "invalid type" error.
    struct Unsigned {
        what: &'static str,
        max: u64,
    }

    impl<'de> Visitor<'de> for Unsigned {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an integer from 0 to {} for {}", self.max, self.what)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            if v <= self.max {
                Ok(v)
            } else {
                Err(E::invalid_value(Unexpected::Unsigned(v), &self))
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::invalid_value(Unexpected::Signed(v), &self)),
            }
        }
    }

    struct Labels;

    impl<'de> Visitor<'de> for Labels {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of string values for `labels`")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut labels = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let what = format!("`labels[{key:?}]`");
                let value = map.next_value_seed(NamedString(&what))?;
                // Duplicate keys: the last value wins, as in v0.6.3.
                labels.insert(key, value);
            }
            Ok(labels)
        }
    }

    macro_rules! string_field {
        ($($name:ident => $path:literal),* $(,)?) => {$(
            pub(super) fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
                d.deserialize_string(NamedString(concat!("`", $path, "`")))
            }
        )*};
    }

    macro_rules! nullable_string_field {
        ($($name:ident => $path:literal),* $(,)?) => {$(
            pub(super) fn $name<'de, D: Deserializer<'de>>(
                d: D,
            ) -> Result<Option<String>, D::Error> {
                d.deserialize_option(NullableString(concat!("`", $path, "`")))
            }
        )*};
    }

    string_field! {
        fstype => "fstype",
        created_at => "created_at",
        image_ref => "image.ref",
        image_manifest_digest => "image.manifest_digest",
        upper_file => "upper.file",
        integrity_algorithm => "upper.integrity.algorithm",
        integrity_digest => "upper.integrity.digest",
    }

    nullable_string_field! {
        parent => "parent",
        source_sandbox => "source_sandbox",
    }

    pub(super) fn schema<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let what = "`schema`";
        let v = d.deserialize_u64(Unsigned {
            what,
            max: u64::from(u32::MAX),
        })?;
        u32::try_from(v).map_err(|_| de::Error::custom(format!("{what} out of range: {v}")))
    }

    pub(super) fn size_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_u64(Unsigned {
            what: "`upper.size_bytes`",
            max: u64::MAX,
        })
    }

    pub(super) fn format<'de, D: Deserializer<'de>>(d: D) -> Result<DiskFormat, D::Error> {
        let name = d.deserialize_string(NamedString("`format`"))?;
        DiskFormat::from_name(&name).ok_or_else(|| {
            de::Error::invalid_value(Unexpected::Str(&name), &"`raw` or `qcow2` for `format`")
        })
    }

    pub(super) fn labels<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        d.deserialize_map(Labels)
    }

    pub(super) fn integrity<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<UpperIntegrity>, D::Error> {
        Option::<UpperIntegrity>::deserialize(d)
    }
}

// How the v0.6.3 vectors' `created_at` values read as instants (timefmt is
// internal, so these live here rather than in tests/engine/manifest_identity.rs).
#[cfg(test)]
mod created_at_tests {
    use super::Manifest;
    use crate::timefmt::{format_rfc3339, parse_rfc3339};
    use std::fs;
    use std::path::Path;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/msb-0.6.3");

    fn vector_manifest(name: &str) -> Manifest {
        let path = Path::new(VECTORS).join("manifests").join(name);
        Manifest::parse(&fs::read(&path).unwrap()).unwrap()
    }

    #[test]
    fn created_at_of_the_vectors() {
        let noon = 1_777_636_800_i64 * 1_000_000_000;
        for (file, nanos) in [
            ("01-minimal-nulls.json", Some(noon)),
            ("10-created-at-plus00-whole-second.json", Some(noon)),
            // 17:30:00.123 at +05:30 is 12:00:00.123 UTC.
            ("11-created-at-offset-millis.json", Some(noon + 123_000_000)),
            // 23:59:59.999999 at -07:00 on Apr 30 is 06:59:59.999999 UTC on May 1.
            (
                "12-created-at-negative-offset-micros.json",
                Some(noon - 5 * 3600 * 1_000_000_000 - 1_000),
            ),
            ("13-created-at-nanos-plus00.json", Some(noon + 1)),
            // Not RFC 3339: parses as a manifest, but has no instant.
            ("14-created-at-not-rfc3339.json", None),
        ] {
            let m = vector_manifest(file);
            assert_eq!(
                parse_rfc3339(&m.created_at),
                nanos,
                "{file}: {}",
                m.created_at
            );
        }
    }

    #[test]
    fn create_style_created_at_round_trips() {
        // Vectors 10 and 13 hold exactly what chrono's to_rfc3339 writes.
        for file in [
            "10-created-at-plus00-whole-second.json",
            "13-created-at-nanos-plus00.json",
            "02-create-path-shape.json",
        ] {
            let created_at = vector_manifest(file).created_at;
            let nanos = parse_rfc3339(&created_at).unwrap();
            let (secs, sub) = (
                nanos.div_euclid(1_000_000_000),
                nanos.rem_euclid(1_000_000_000),
            );
            assert_eq!(format_rfc3339(secs, sub as u32), created_at, "{file}");
        }
    }
}

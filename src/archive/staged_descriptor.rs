//! The descriptor of a snapshot being imported, in either format: a v0.6.3
//! `manifest.json` (from `<dir>/manifest.json`) or a v0.6.14 `snapshot.json`
//! (from `snapshots/<hex>/snapshot.json`). The importer asks both the same
//! questions: which upper file of what size, which integrity, which parent.
//! Neither is ever converted on import: the bytes staged are the bytes
//! received.
use crate::error::{Error, Result};
use crate::integrity::Algorithm;
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::snapshot_json::{SnapshotDescriptor, DESCRIPTOR_FILE};

#[derive(Clone, Debug)]
pub enum Descriptor {
    Legacy(Manifest),
    Current(SnapshotDescriptor),
}

impl Descriptor {
    /// The descriptor's file name in the artifact directory.
    pub fn file_name(&self) -> &'static str {
        match self {
            Descriptor::Legacy(_) => MANIFEST_FILE,
            Descriptor::Current(_) => DESCRIPTOR_FILE,
        }
    }

    pub fn digest(&self) -> String {
        match self {
            Descriptor::Legacy(m) => m.digest(),
            Descriptor::Current(d) => d.digest(),
        }
    }

    pub fn parent(&self) -> Option<&str> {
        match self {
            Descriptor::Legacy(m) => m.parent.as_deref(),
            Descriptor::Current(d) => d.parent.as_deref(),
        }
    }

    /// The upper's file name and logical size; `None` for a v0.6.14
    /// checkpoint-state descriptor, which has no payload.
    pub fn upper(&self) -> Option<(&str, u64)> {
        match self {
            Descriptor::Legacy(m) => Some((m.upper.file.as_str(), m.upper.size_bytes)),
            Descriptor::Current(d) => d.file_upper().map(|u| (u.file.as_str(), u.size_bytes)),
        }
    }

    /// The recorded integrity as (algorithm name, value), if any.
    pub fn integrity(&self) -> Option<(&str, &str)> {
        match self {
            Descriptor::Legacy(m) => m
                .upper
                .integrity
                .as_ref()
                .map(|i| (i.algorithm.as_str(), i.digest.as_str())),
            Descriptor::Current(d) => d
                .file_upper()
                .and_then(|u| u.integrity.as_ref())
                .map(|i| (i.algorithm(), i.value())),
        }
    }

    /// The algorithm to run on the upper as it streams, when this build
    /// knows the recorded one.
    pub fn stream_algorithm(&self) -> Option<Algorithm> {
        self.integrity().and_then(|(a, _)| Algorithm::from_name(a))
    }

    /// A data file named `file` of `logical` bytes must be this
    /// descriptor's upper, of the recorded size.
    pub fn check_upper(&self, file: &str, logical: u64, entry: &str) -> Result<()> {
        let Some((upper, size)) = self.upper() else {
            return Err(Error::InvalidArchive(format!(
                "archive entry {entry:?}: its snapshot is checkpoint state, which has no upper file"
            )));
        };
        if file != upper {
            return Err(Error::InvalidArchive(format!(
                "archive entry {entry:?} is outside the snapshot archive layout \
                 (its {}'s upper is {upper:?})",
                self.file_name()
            )));
        }
        if logical != size {
            return Err(Error::InvalidArchive(format!(
                "{entry} holds {logical} bytes but its {} records size_bytes {size}",
                self.file_name()
            )));
        }
        Ok(())
    }
}

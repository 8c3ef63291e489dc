//! Recomputing an artifact's recorded upper integrity.
use super::Artifact;
use crate::error::{Error, Result};
use crate::integrity::{self, Algorithm};
use crate::progress::Monitor;
use std::path::PathBuf;

/// Result of `verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub digest: String,
    pub path: PathBuf,
    pub upper: UpperVerifyStatus,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpperVerifyStatus {
    /// `verified` or `not_recorded`.
    pub kind: String,
    /// Empty when not recorded.
    pub algorithm: String,
    /// The recomputed digest; empty when not recorded.
    pub digest: String,
}

/// Recompute recorded integrity. `not_recorded` when none was recorded;
/// `IntegrityMismatch` naming both digests when the content changed.
/// Reads the upper the artifact was opened with, so the report describes
/// that artifact even if its name is replaced or removed meanwhile.
pub fn verify_artifact(art: &Artifact, monitor: &Monitor) -> Result<VerifyReport> {
    verify_artifact_with(art, |art, algorithm| {
        let upper = art.disk_upper("verification")?;
        integrity::compute_file(upper.file, &art.upper_path(), algorithm, monitor)
    })
}

/// [`verify_artifact`], with the upper's actual digest from `digest_of`
/// (the artifact, the recorded algorithm): for a caller that already hashed
/// the upper's bytes on their way in or out, so it need not read them again.
pub fn verify_artifact_with(
    art: &Artifact,
    digest_of: impl FnOnce(&Artifact, Algorithm) -> Result<String>,
) -> Result<VerifyReport> {
    let disk = art.disk_upper("verification")?;
    // The upper may have been written to in place since it was opened (a
    // real change of the artifact's bytes, unlike a rename over its path).
    let size = disk
        .file
        .metadata()
        .map_err(|e| Error::io("stat", &art.upper_path(), e))?
        .len();
    if size != disk.spec.size_bytes {
        return Err(Error::IntegrityMismatch {
            path: art.upper_path().display().to_string(),
            expected: format!("size {}", disk.spec.size_bytes),
            actual: format!("size {size}"),
        });
    }
    let upper = match &disk.spec.integrity {
        None => UpperVerifyStatus {
            kind: "not_recorded".into(),
            algorithm: String::new(),
            digest: String::new(),
        },
        Some(rec) => {
            let algorithm = Algorithm::recorded(&rec.algorithm)?;
            let actual = digest_of(art, algorithm)?;
            if actual != rec.digest {
                return Err(Error::IntegrityMismatch {
                    path: art.upper_path().display().to_string(),
                    expected: rec.digest.clone(),
                    actual,
                });
            }
            UpperVerifyStatus {
                kind: "verified".into(),
                algorithm: rec.algorithm.clone(),
                digest: actual,
            }
        }
    };
    Ok(VerifyReport {
        digest: art.digest.clone(),
        path: art.path.clone(),
        upper,
    })
}

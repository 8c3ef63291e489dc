//! Recomputing an artifact's recorded upper integrity.
use super::{open_dir, removed_meanwhile, Artifact};
use crate::error::{Error, Result};
use crate::integrity::{self, Algorithm};
use crate::progress::Monitor;
use std::path::{Path, PathBuf};

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
pub fn verify_artifact(art: &Artifact, monitor: &Monitor) -> Result<VerifyReport> {
    verify_artifact_with(art, |upper, algorithm| {
        integrity::compute(upper, algorithm, monitor)
    })
}

/// [`verify_artifact`], with the upper's actual digest from `digest_of`
/// (upper path, recorded algorithm): for a caller that already hashed the
/// upper's bytes on their way in or out, so it need not read them again.
pub fn verify_artifact_with(
    art: &Artifact,
    digest_of: impl FnOnce(&Path, Algorithm) -> Result<String>,
) -> Result<VerifyReport> {
    // Re-check metadata: the file may have changed since it was opened.
    let fresh = open_dir(&art.path)?;
    let upper = match &fresh.manifest.upper.integrity {
        None => UpperVerifyStatus {
            kind: "not_recorded".into(),
            algorithm: String::new(),
            digest: String::new(),
        },
        Some(rec) => {
            let algorithm = Algorithm::recorded(&rec.algorithm)?;
            let actual = digest_of(&fresh.upper_path(), algorithm)
                .map_err(|e| removed_meanwhile(e, &fresh.path.display().to_string()))?;
            if actual != rec.digest {
                return Err(Error::IntegrityMismatch {
                    path: fresh.upper_path().display().to_string(),
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
        digest: fresh.digest,
        path: fresh.path,
        upper,
    })
}


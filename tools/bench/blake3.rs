//! The `msb-file-merkle-blake3-v1` rows (group `blake3`): verify of F1 and
//! F2 against `b3sum --num-threads 2` of the same file and against our own
//! SHA-256 merkle verify of the same content, and create with BLAKE3
//! integrity against `cp && sync`.
//!
//! b3sum is the Debian package `b3sum` (or `cargo install b3sum --locked`);
//! `MICROSNAP_BENCH_B3SUM` names another binary. Without it the b3sum rows
//! are not measured, and the table says so instead of showing a row.
use crate::measure::{alternate, timed};
use crate::rows::{fixture_label, Bench};
use crate::shell::{q, sh, sh_out};
use crate::Res;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
use microsnap::snapshot::{self, Artifact};
use std::collections::BTreeMap;
use std::process::Command;

/// The b3sum binary and its version, or why there is none.
fn b3sum() -> std::result::Result<(String, String), String> {
    let exe = std::env::var("MICROSNAP_BENCH_B3SUM").unwrap_or_else(|_| "b3sum".into());
    match Command::new(&exe).arg("--version").output() {
        Ok(out) if out.status.success() => Ok((
            exe,
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )),
        Ok(out) => Err(format!(
            "`{exe} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "{exe} not found ({e}); install the Debian package b3sum or `cargo install b3sum --locked`"
        )),
    }
}

impl Bench {
    /// Every row of the group. `sha_merkle` holds the F1 and F2 artifacts
    /// with SHA-256 merkle integrity the verify group uses too.
    pub fn blake3_rows(&mut self, sha_merkle: &BTreeMap<&str, Artifact>) -> Res<()> {
        let peer = b3sum();
        if let Ok((_, version)) = &peer {
            self.extra.push(format!("b3sum peer: {version}"));
        }
        for s in ["f1", "f2"] {
            let art = self.snapshot(s, Some(Algorithm::MerkleBlake3V1))?;
            let label = fixture_label(s);
            let sha = sha_merkle.get(s).ok_or("no SHA-256 merkle artifact")?;
            self.blake3_verify_against_sha_merkle(&art, sha, label)?;
            match &peer {
                Ok((exe, _)) => self.blake3_verify_against_b3sum(&art, label, exe)?,
                Err(why) => self.extra.push(format!(
                    "verify, msb-file-merkle-blake3-v1, {label} against `b3sum --num-threads 2`: \
                     **not measured**: {why}"
                )),
            }
            snapshot::remove(&self.home, &art.path.display().to_string(), true)?;
        }
        let kept = self.create_row("f1", Some(Algorithm::MerkleBlake3V1))?;
        if let Some(art) = kept {
            snapshot::remove(&self.home, &art.path.display().to_string(), true)?;
        }
        Ok(())
    }

    fn blake3_verify_against_sha_merkle(
        &mut self,
        art: &Artifact,
        sha: &Artifact,
        label: &'static str,
    ) -> Res<()> {
        let same = upper_size(art) == upper_size(sha);
        let samples = alternate(
            self.reps,
            |_| Ok(timed(|| Ok(snapshot::verify_artifact(art, &Monitor::none())?))?.0),
            |_| Ok(timed(|| Ok(snapshot::verify_artifact(sha, &Monitor::none())?))?.0),
        )?;
        self.push(
            "verify, msb-file-merkle-blake3-v1",
            label,
            "our verify, microsnap-merkle-sha256-v1, same upper content",
            samples,
            "≤ 0.6",
            Some(0.6),
            if same {
                String::new()
            } else {
                "**uppers differ in size**".into()
            },
        );
        Ok(())
    }

    fn blake3_verify_against_b3sum(
        &mut self,
        art: &Artifact,
        label: &'static str,
        exe: &str,
    ) -> Res<()> {
        let upper = art.upper_path();
        let samples = alternate(
            self.reps,
            |_| Ok(timed(|| Ok(snapshot::verify_artifact(art, &Monitor::none())?))?.0),
            |_| {
                sh(&format!(
                    "{} --num-threads 2 {} >/dev/null",
                    q(std::path::Path::new(exe)),
                    q(&upper)
                ))
            },
        )?;
        // b3sum hashes every logical byte as one BLAKE3 stream (holes read as
        // zeros through its mmap): a different digest, the same hash function.
        let note = format!(
            "b3sum reads {} logical bytes",
            sh_out(&format!("stat -c %s {}", q(&upper)))
        );
        self.push(
            "verify, msb-file-merkle-blake3-v1",
            label,
            "`b3sum --num-threads 2 FILE`",
            samples,
            "record",
            None,
            note,
        );
        Ok(())
    }
}

/// The logical size of an artifact's upper (the two verify rows compare
/// uppers of the same sandbox, so these must agree).
fn upper_size(art: &Artifact) -> u64 {
    std::fs::metadata(art.upper_path())
        .map(|m| m.len())
        .unwrap_or(0)
}

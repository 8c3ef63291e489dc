//! The rows of the table: each engine operation against its peer, timed
//! alternately with the measurement helpers and pushed onto the run's rows.
use crate::measure::{alternate, cpu_note, cpu_time, median, timed, Row};
use crate::report::fmt_d;
use crate::shell::{allocated, cp_durable, q, rm, sh};
use crate::{Res, MIB};
use microsnap::archive::{self, ExportOptions};
use microsnap::home::Home;
use microsnap::integrity::Algorithm;
use microsnap::progress::Monitor;
use microsnap::sandbox;
use microsnap::snapshot::{self, Artifact, CreateOptions};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Bench {
    pub reps: usize,
    pub home: Home,
    pub work: PathBuf,
    pub rows: Vec<Row>,
    pub extra: Vec<String>,
    pub counter: usize,
}

impl Bench {
    pub fn unique(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    pub fn upper_of_sandbox(&self, name: &str) -> Res<PathBuf> {
        Ok(sandbox::get(&self.home, name)?.upper_path)
    }

    pub fn snapshot(&mut self, sandbox: &str, algorithm: Option<Algorithm>) -> Res<Artifact> {
        let name = self.unique(&format!("keep-{sandbox}"));
        let opts = CreateOptions {
            name: Some(name),
            record_integrity: algorithm.is_some(),
            integrity_algorithm: algorithm,
            ..CreateOptions::default()
        };
        Ok(snapshot::create(
            &self.home,
            sandbox,
            &opts,
            &Monitor::none(),
        )?)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        operation: &str,
        fixture: &'static str,
        peer: &str,
        (ours, theirs): (Vec<Duration>, Vec<Duration>),
        target: &str,
        limit: Option<f64>,
        note: String,
    ) {
        let row = Row {
            operation: operation.into(),
            fixture,
            peer: peer.into(),
            ours,
            theirs,
            target: target.into(),
            limit,
            note,
        };
        eprintln!(
            "  {} {}: ours {} peer {} ratio {:.3} ({})",
            row.operation,
            row.fixture,
            fmt_d(median(&row.ours)),
            fmt_d(median(&row.theirs)),
            row.ratio(),
            row.verdict()
        );
        self.rows.push(row);
    }

    /// `integrity`: the algorithm recorded, or None for a create without.
    pub fn create_row(
        &mut self,
        sandbox: &'static str,
        integrity: Option<Algorithm>,
    ) -> Res<Option<Artifact>> {
        let upper = self.upper_of_sandbox(sandbox)?;
        let peer_dst = self.work.join("cp-dst");
        let mut kept = None;
        let mut names = Vec::new();
        let reps = self.reps;
        let home = self.home.clone_handle()?;
        let samples = alternate(
            reps,
            |i| {
                let name = format!(
                    "create-{sandbox}-{}-{i}",
                    integrity.map_or("none", Algorithm::name)
                );
                let opts = CreateOptions {
                    name: Some(name.clone()),
                    record_integrity: integrity.is_some(),
                    integrity_algorithm: integrity,
                    ..CreateOptions::default()
                };
                let (d, art) =
                    timed(|| Ok(snapshot::create(&home, sandbox, &opts, &Monitor::none())?))?;
                names.push(name);
                kept = Some(art);
                Ok(d)
            },
            |_| cp_durable(&upper, &peer_dst),
        )?;
        // Keep the last one (for later rows), drop the rest.
        for n in names.iter().take(names.len().saturating_sub(1)) {
            snapshot::remove(&self.home, n, true)?;
        }
        let (op, target, limit) = match integrity {
            Some(Algorithm::MerkleBlake3V1) => (
                "snapshot create with integrity (msb-file-merkle-blake3-v1), durable",
                "≤ 1.0",
                1.0,
            ),
            Some(_) => (
                "snapshot create with integrity (merkle), durable",
                "≤ 1.5",
                1.5,
            ),
            None => ("snapshot create without integrity, durable", "≤ 1.1", 1.1),
        };
        self.push(
            op,
            fixture_label(sandbox),
            "`cp --sparse=always --reflink=auto && sync DST`",
            samples,
            target,
            Some(limit),
            String::new(),
        );
        Ok(kept)
    }

    pub fn verify_row(
        &mut self,
        art: &Artifact,
        fixture: &'static str,
        algorithm: Algorithm,
        limit: Option<f64>,
        target: &str,
    ) -> Res<()> {
        let upper = art.upper_path();
        let samples = alternate(
            self.reps,
            |_| Ok(timed(|| Ok(snapshot::verify_artifact(art, &Monitor::none())?))?.0),
            |_| sh(&format!("openssl dgst -sha256 {} >/dev/null", q(&upper))),
        )?;
        if fixture == "F3" && algorithm == Algorithm::MerkleSha256V1 {
            let t = median(&samples.0).as_secs_f64();
            self.extra.push(format!(
                "merkle hashing throughput on dense data (F3, 1 GiB, page cache warm, verify included): {:.2} GiB/s; openssl dgst -sha256: {:.2} GiB/s",
                1.0 / t,
                1.0 / median(&samples.1).as_secs_f64()
            ));
        }
        self.push(
            &format!("verify, {}", algorithm.name()),
            fixture,
            "`openssl dgst -sha256 FILE`",
            samples,
            target,
            limit,
            String::new(),
        );
        Ok(())
    }

    pub fn export_row(
        &mut self,
        art: &Artifact,
        fixture: &'static str,
        dense: bool,
    ) -> Res<(PathBuf, PathBuf)> {
        let ours_out = self.work.join(format!("ours-{fixture}-{dense}.tar.zst"));
        let peer_out = self.work.join(format!("gnu-{fixture}-{dense}.tar.zst"));
        let upper = art.upper_path();
        let dir = upper.parent().ok_or("upper has no parent")?.to_path_buf();
        let file = upper
            .file_name()
            .ok_or("no file name")?
            .to_string_lossy()
            .into_owned();
        let opts = ExportOptions {
            dense,
            ..ExportOptions::default()
        };
        let path_ref = art.path.display().to_string();
        let peer_cmd = if dense {
            format!(
                "tar -C {} -cf - {} | zstd -q -3 -T1 > {}",
                q(&dir),
                q(Path::new(&file)),
                q(&peer_out)
            )
        } else {
            format!(
                "tar --sparse -C {} -cf - {} | zstd -q -3 -T0 > {}",
                q(&dir),
                q(Path::new(&file)),
                q(&peer_out)
            )
        };
        let home = &self.home;
        let (mut ours_cpu, mut peer_cpu) = (Duration::ZERO, Duration::ZERO);
        let samples = alternate(
            self.reps,
            |_| {
                rm(&ours_out);
                let cpu = cpu_time(libc::RUSAGE_SELF);
                let d = timed(|| {
                    Ok(archive::export(
                        home,
                        &path_ref,
                        &ours_out,
                        &opts,
                        &Monitor::none(),
                    )?)
                })?
                .0;
                ours_cpu += cpu_time(libc::RUSAGE_SELF) - cpu;
                Ok(d)
            },
            |_| {
                rm(&peer_out);
                let cpu = cpu_time(libc::RUSAGE_CHILDREN);
                let d = sh(&peer_cmd)?;
                peer_cpu += cpu_time(libc::RUSAGE_CHILDREN) - cpu;
                Ok(d)
            },
        )?;
        let (a, b) = (
            fs::metadata(&ours_out)?.len(),
            fs::metadata(&peer_out)?.len(),
        );
        let note = format!(
            "archive {} vs {} bytes = {:.4}×; {}",
            a,
            b,
            a as f64 / b as f64,
            cpu_note(ours_cpu, peer_cpu, self.reps)
        );
        if dense {
            self.push(
                "export .tar.zst, dense option",
                fixture,
                "`tar -cf - FILE | zstd -3 -T1` (v0.6.3)",
                samples,
                "≤ 1.0",
                Some(1.0),
                note,
            );
        } else {
            let ok = a <= b;
            let note = format!(
                "{note} ({})",
                if ok { "size met" } else { "**size missed**" }
            );
            self.push(
                "export .tar.zst",
                fixture,
                "`tar --sparse -cf - FILE | zstd -3 -T0`",
                samples,
                "≤ 0.7, size ≤ 1.0×",
                Some(0.7),
                note,
            );
        }
        Ok((ours_out, peer_out))
    }

    pub fn import_row(
        &mut self,
        fixture: &'static str,
        ours_archive: &Path,
        peer_archive: &Path,
        source: &Path,
        dense: bool,
    ) -> Res<()> {
        let imp_home = Home::open(&self.work.join("import-home"))?;
        let ours_dir = self.work.join("import-ours");
        let peer_dir = self.work.join("import-peer");
        let mut ours_alloc = 0;
        let mut peer_alloc = 0;
        let (mut ours_cpu, mut peer_cpu) = (Duration::ZERO, Duration::ZERO);
        let samples = alternate(
            self.reps,
            |_| {
                rm(&ours_dir);
                let cpu = cpu_time(libc::RUSAGE_SELF);
                let (d, report) = timed(|| {
                    Ok(archive::import(
                        &imp_home,
                        ours_archive,
                        Some(&ours_dir),
                        &Monitor::none(),
                    )?)
                })?;
                ours_cpu += cpu_time(libc::RUSAGE_SELF) - cpu;
                ours_alloc = allocated(&report.head.upper_path());
                rm(&ours_dir);
                Ok(d)
            },
            |_| {
                rm(&peer_dir);
                fs::create_dir_all(&peer_dir)?;
                let cpu = cpu_time(libc::RUSAGE_CHILDREN);
                let d = sh(&format!(
                    "zstd -dc {} | tar --sparse -xf - -C {}",
                    q(peer_archive),
                    q(&peer_dir)
                ))?;
                peer_cpu += cpu_time(libc::RUSAGE_CHILDREN) - cpu;
                peer_alloc = fs::read_dir(&peer_dir)?
                    .filter_map(|e| e.ok())
                    .map(|e| allocated(&e.path()))
                    .sum();
                rm(&peer_dir);
                Ok(d)
            },
        )?;
        let src_alloc = allocated(source);
        let ratio = ours_alloc as f64 / src_alloc as f64;
        let note = format!(
            "allocated {} MiB = {:.3}× source ({}); GNU tar's {} MiB; {}",
            ours_alloc / MIB,
            ratio,
            if ratio <= 1.05 { "met" } else { "**missed**" },
            peer_alloc / MIB,
            cpu_note(ours_cpu, peer_cpu, self.reps)
        );
        if dense {
            self.push(
                "import of a dense archive",
                fixture,
                "same GNU pipeline, dense archive",
                samples,
                "< 1.0, alloc ≤ 1.05×",
                Some(1.0),
                note,
            );
        } else {
            self.push(
                "import",
                fixture,
                "`zstd -dc A | tar --sparse -xf -` (GNU archive)",
                samples,
                "≤ 0.8, alloc ≤ 1.05×",
                Some(0.8),
                note,
            );
        }
        Ok(())
    }
}

pub fn fixture_label(sandbox: &str) -> &'static str {
    match sandbox {
        "f1" => "F1",
        "f2" => "F2",
        _ => "F3",
    }
}

pub trait CloneHandle {
    fn clone_handle(&self) -> Res<Home>;
}
impl CloneHandle for Home {
    fn clone_handle(&self) -> Res<Home> {
        Ok(Home::open(self.root())?)
    }
}

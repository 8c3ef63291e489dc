//! The registry rows of issue 15 (group `registry`): push and pull of F1 and
//! of a child of it through a loopback registry, against the standard tools
//! moving the same upper as one `tar --sparse | zstd -3 -T0` file.
//!
//! - The registry is Debian's `docker-registry` (distribution 2.8.2), never
//!   installed: `tools/registry/fetch.sh` unpacks it into
//!   `target/registry/bin/docker-registry` (or by hand: `apt-get download
//!   docker-registry && dpkg-deb -x` into `target/registry-pkg/root`);
//!   `MICROSNAP_BENCH_REGISTRY` names another binary. It is started on
//!   127.0.0.1 on a free port, filesystem storage in the run's work
//!   directory, plain HTTP, and killed by its pid when the group ends.
//! - The peer is `oras` (`MICROSNAP_BENCH_ORAS`, else `oras` on PATH; see
//!   docs/BENCHMARKS.md for `go install`), else `skopeo copy` of a
//!   hand-built `oci-archive:` holding the tar.zst as its one layer. Its
//!   time includes making the tar.zst (push) and unpacking it (pull).
//! - Until the engine's registry transport exists (`registry::open` says
//!   `unsupported`), our side pushes to and pulls from an `oci:DIR` layout
//!   instead, and so does the peer (`oras --oci-layout`); every row and the
//!   notes say so: those are not registry numbers.
//! - Every rep pushes into a fresh repository (`bench/r<i>`, the peer's
//!   `peer/r<i>`), so no rep finds the previous rep's blobs; the child of
//!   rep i goes to the repository holding F1 of rep i (its parent is there).
//! - The child of F1: a sandbox made from F1's snapshot, ~30 MiB of new
//!   files written into its ext4 with `debugfs -w`, then 500 scattered
//!   4 KiB writes at 4 KiB-aligned offsets inside its data extents,
//!   snapshotted with merkle integrity (so its parent is F1's snapshot).
//! - Bytes on the wire: ours from the report (`bytes_uploaded` /
//!   `bytes_downloaded`), the peer's the tar.zst size. For the child the
//!   bound of issue 15 point 1 is worked out here independently of the
//!   engine: 1.2 × (zstd -3 of each distinct non-zero 64 KiB chunk the
//!   parent's upper lacks + the chunk index blob's size from the manifest).
//! - Peak RSS of ours: one more push and pull of each fixture in a child
//!   process (`--child push|pull`), untimed (target ≤ 128 MiB).
use crate::measure::{alternate, child_peak, cpu_note, cpu_time, timed};
use crate::rows::Bench;
use crate::shell::{allocated, q, rm, sh, sh_out};
use crate::{Res, MIB, REPO};
use microsnap::distribution::reference::Reference;
use microsnap::distribution::store::{self, Access};
use microsnap::distribution::{self, PullOptions, PushOptions, RemoteOptions};
use microsnap::error::ErrorCode;
use microsnap::home::Home;
use microsnap::integrity::{self, Algorithm, MERKLE_LEAF_SIZE};
use microsnap::progress::Monitor;
use microsnap::sandbox::{self, SandboxSource};
use microsnap::snapshot::{self, Artifact};
use std::collections::HashSet;
use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Peak RSS target of issue 15 point 5 (4 GiB upper, either way).
const RSS_LIMIT: u64 = 128 * MIB;
/// The child's changes.
const CHILD_WRITES: u64 = 500;
const CHILD_WRITE: u64 = 4096;
const CHILD_FILES: u64 = 30;
const CHILD_FILE: u64 = MIB;
/// The media type the peer gives its one blob.
const PEER_MEDIA_TYPE: &str = "application/vnd.microsnap.bench.tar+zstd";

/// A running docker-registry, killed (by its pid) when dropped.
struct Registry {
    process: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The registry binary, or why there is none.
fn registry_binary() -> std::result::Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MICROSNAP_BENCH_REGISTRY") {
        return Ok(PathBuf::from(p));
    }
    let candidates = [
        Path::new(REPO).join("target/registry/bin/docker-registry"),
        Path::new(REPO).join("target/registry-pkg/root/usr/bin/docker-registry"),
    ];
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        "no docker-registry: run tools/registry/fetch.sh (or `apt-get download docker-registry` \
         and `dpkg-deb -x` it into target/registry-pkg/root), or set MICROSNAP_BENCH_REGISTRY"
            .to_string()
    })
}

fn free_port() -> Res<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Registry {
    fn start(exe: &Path, dir: &Path) -> Res<Registry> {
        rm(dir);
        fs::create_dir_all(dir.join("storage"))?;
        let port = free_port()?;
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )?;
        let log = File::create(dir.join("registry.log"))?;
        let process = Command::new(exe)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut registry = Registry { process, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = registry.process.try_wait()? {
                return Err(format!(
                    "docker-registry exited ({status}): {}",
                    fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                )
                .into());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let code = sh_out(&format!(
                    "curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/v2/"
                ));
                if code == "200" {
                    return Ok(registry);
                }
            }
            if Instant::now() > deadline {
                registry.process.kill()?;
                return Err(format!("docker-registry did not answer on 127.0.0.1:{port}").into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Where both sides push and pull: the registry, or (until the engine's
/// registry transport exists) an `oci:` layout per repository.
enum Target {
    Registry { port: u16 },
    Layout { dir: PathBuf },
}

impl Target {
    fn ours(&self, repo: &str, tag: &str) -> String {
        match self {
            Target::Registry { port } => format!("127.0.0.1:{port}/bench/{repo}:{tag}"),
            Target::Layout { dir } => {
                format!("oci:{}:{tag}", dir.join("bench").join(repo).display())
            }
        }
    }

    fn is_registry(&self) -> bool {
        matches!(self, Target::Registry { .. })
    }

    /// What the rows say about the transport.
    fn label(&self) -> &'static str {
        if self.is_registry() {
            "loopback docker-registry, plain HTTP"
        } else {
            "**oci: layout, NOT the registry** (engine's registry transport not built yet)"
        }
    }

    /// The chunk index blob's size: the first layer of the image manifest
    /// behind `repo:tag`.
    fn index_size(&self, repo: &str, tag: &str) -> Res<u64> {
        let manifest: serde_json::Value = match self {
            Target::Registry { port } => serde_json::from_str(&sh_out(&format!(
                "curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
                 http://127.0.0.1:{port}/v2/bench/{repo}/manifests/{tag}"
            )))?,
            Target::Layout { dir } => {
                let layout = dir.join("bench").join(repo);
                let index: serde_json::Value =
                    serde_json::from_slice(&fs::read(layout.join("index.json"))?)?;
                let digest = index["manifests"]
                    .as_array()
                    .and_then(|m| {
                        m.iter()
                            .rev()
                            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag)
                    })
                    .and_then(|e| e["digest"].as_str())
                    .ok_or_else(|| format!("no tag {tag} in {}", layout.display()))?
                    .to_string();
                let hex = digest.trim_start_matches("sha256:");
                serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(hex))?)?
            }
        };
        manifest["layers"][0]["size"]
            .as_u64()
            .ok_or_else(|| format!("no index layer in manifest {manifest}").into())
    }
}

/// The peer's transfer tool.
enum Peer {
    Oras { exe: String },
    Skopeo,
}

impl Peer {
    fn find() -> std::result::Result<(Peer, String), String> {
        let oras = std::env::var("MICROSNAP_BENCH_ORAS").unwrap_or_else(|_| "oras".into());
        if oras != "none" {
            if let Ok(out) = Command::new(&oras).arg("version").output() {
                if out.status.success() {
                    let text = String::from_utf8_lossy(&out.stdout);
                    let version = text
                        .lines()
                        .find_map(|l| l.trim().strip_prefix("Version:"))
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    return Ok((Peer::Oras { exe: oras }, format!("oras {version}")));
                }
            }
        }
        match Command::new("skopeo").arg("--version").output() {
            Ok(out) if out.status.success() => Ok((
                Peer::Skopeo,
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            )),
            _ => Err("neither oras nor skopeo found (see docs/BENCHMARKS.md)".into()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Peer::Oras { .. } => "oras",
            Peer::Skopeo => "skopeo copy oci-archive:",
        }
    }

    /// The shell script of one peer push of `upper` (timed whole): the
    /// tar.zst into `work/upper.tar.zst`, then into the target.
    fn push_script(
        &self,
        target: &Target,
        upper: &Path,
        work: &Path,
        repo: &str,
        tag: &str,
    ) -> Res<String> {
        let dir = upper.parent().ok_or("upper has no parent")?;
        let file = upper.file_name().ok_or("upper has no name")?;
        let make = format!(
            "set -e; cd {}; tar --sparse -C {} -cf - {} | zstd -q -3 -T0 > upper.tar.zst",
            q(work),
            q(dir),
            q(Path::new(file))
        );
        Ok(match self {
            Peer::Oras { exe } => {
                let dest = match target {
                    Target::Registry { port } => {
                        format!("--plain-http 127.0.0.1:{port}/peer/{repo}:{tag}")
                    }
                    Target::Layout { dir } => {
                        format!("--oci-layout {}:{tag}", q(&dir.join("peer").join(repo)))
                    }
                };
                format!(
                    "{make}; {} push {dest} upper.tar.zst:{PEER_MEDIA_TYPE} >/dev/null",
                    q(Path::new(exe))
                )
            }
            Peer::Skopeo => {
                let dest = match target {
                    Target::Registry { port } => format!(
                        "--dest-tls-verify=false docker://127.0.0.1:{port}/peer/{repo}:{tag}"
                    ),
                    Target::Layout { dir } => {
                        format!("oci:{}:{tag}", dir.join("peer").join(repo).display())
                    }
                };
                // An OCI layout holding the tar.zst as its one layer, by
                // hand (the blob is hard-linked in, not copied), archived.
                format!(
                    "{make}; rm -rf layout layout.tar; mkdir -p layout/blobs/sha256; \
                     blob() {{ d=$(sha256sum \"$1\" | cut -d' ' -f1); s=$(stat -c %s \"$1\"); ln -f \"$1\" layout/blobs/sha256/$d; }}; \
                     blob upper.tar.zst; ld=$d; ls=$s; \
                     printf '%s' '{{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[]}}}}' > config; \
                     blob config; cd_=$d; cs=$s; \
                     printf '{{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:%s\",\"size\":%s}},\"layers\":[{{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\",\"digest\":\"sha256:%s\",\"size\":%s}}]}}' $cd_ $cs $ld $ls > manifest; \
                     blob manifest; \
                     printf '{{\"schemaVersion\":2,\"manifests\":[{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\",\"size\":%s,\"annotations\":{{\"org.opencontainers.image.ref.name\":\"{tag}\"}}}}]}}' $d $s > layout/index.json; \
                     printf '{{\"imageLayoutVersion\":\"1.0.0\"}}' > layout/oci-layout; \
                     rm -f config manifest; tar -C layout -cf layout.tar .; rm -rf layout; \
                     skopeo copy -q oci-archive:layout.tar:{tag} {dest}; rm -f layout.tar"
                )
            }
        })
    }

    /// The shell script of one peer pull into `out` (timed whole): fetch the
    /// tar.zst, then `zstd -dc | tar --sparse -xf -` it there.
    fn pull_script(&self, target: &Target, out: &Path, repo: &str, tag: &str) -> String {
        let extract = "zstd -dc \"$f\" | tar --sparse -xf -; rm -f \"$f\"";
        match self {
            Peer::Oras { exe } => {
                let src = match target {
                    Target::Registry { port } => {
                        format!("--plain-http 127.0.0.1:{port}/peer/{repo}:{tag}")
                    }
                    Target::Layout { dir } => {
                        format!("--oci-layout {}:{tag}", q(&dir.join("peer").join(repo)))
                    }
                };
                format!(
                    "set -e; mkdir -p {o}; cd {o}; {} pull {src} -o . >/dev/null; f=upper.tar.zst; {extract}",
                    q(Path::new(exe)),
                    o = q(out)
                )
            }
            Peer::Skopeo => {
                let src = match target {
                    Target::Registry { port } => format!(
                        "--src-tls-verify=false docker://127.0.0.1:{port}/peer/{repo}:{tag}"
                    ),
                    Target::Layout { dir } => {
                        format!("oci:{}:{tag}", dir.join("peer").join(repo).display())
                    }
                };
                format!(
                    "set -e; mkdir -p {o}; cd {o}; skopeo copy -q {src} oci:got:{tag}; \
                     f=got/blobs/sha256/$(ls -S got/blobs/sha256 | head -1); mv \"$f\" upper.tar.zst; rm -rf got; \
                     f=upper.tar.zst; {extract}",
                    o = q(out)
                )
            }
        }
    }
}

fn remote() -> RemoteOptions {
    RemoteOptions {
        plain_http: true,
        ..RemoteOptions::default()
    }
}

fn push_options() -> PushOptions {
    PushOptions {
        remote: remote(),
        ..PushOptions::default()
    }
}

fn pull_options(name: Option<String>) -> PullOptions {
    PullOptions {
        name,
        remote: remote(),
        ..PullOptions::default()
    }
}

/// xorshift64: deterministic offsets and file contents for the child.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn random_bytes(len: u64, seed: &mut u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        out.extend_from_slice(&next(seed).to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

/// The distinct non-zero 64 KiB chunks of `path`, as leaf hashes, each
/// with its bytes passed to `each` the first time it is seen.
fn chunks(
    path: &Path,
    mut each: impl FnMut(&integrity::LeafHash, &[u8]) -> Res<()>,
) -> Res<HashSet<integrity::LeafHash>> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut seen = HashSet::new();
    let mut buf = vec![0u8; MERKLE_LEAF_SIZE as usize];
    let mut last = None;
    for extent in microsnap::sparse::data_extents(&file)? {
        let first = extent.offset / MERKLE_LEAF_SIZE;
        let end = extent.end().div_ceil(MERKLE_LEAF_SIZE);
        for n in first..end {
            if last.is_some_and(|l| n <= l) {
                continue; // a chunk two extents share
            }
            last = Some(n);
            let at = n * MERKLE_LEAF_SIZE;
            let len = (size - at).min(MERKLE_LEAF_SIZE) as usize;
            file.read_exact_at(&mut buf[..len], at)?;
            if buf[..len].iter().all(|b| *b == 0) {
                continue;
            }
            let leaf = integrity::merkle_sha256_leaf(&buf[..len]);
            if seen.insert(leaf) {
                each(&leaf, &buf[..len])?;
            }
        }
    }
    Ok(seen)
}

/// zstd -3 bytes of the distinct non-zero chunks of `child` that `parent`
/// lacks, and how many there are.
fn new_chunk_bytes(parent: &Path, child: &Path) -> Res<(u64, u64)> {
    let have = chunks(parent, |_, _| Ok(()))?;
    let (mut count, mut bytes) = (0u64, 0u64);
    chunks(child, |leaf, data| {
        if !have.contains(leaf) {
            count += 1;
            bytes += zstd::bulk::compress(data, 3)?.len() as u64;
        }
        Ok(())
    })?;
    Ok((count, bytes))
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / MIB as f64)
}

impl Bench {
    /// Every row of the group; `f1` is F1's snapshot with merkle integrity.
    pub fn registry_rows(&mut self, f1: &Artifact) -> Res<()> {
        let exe = match registry_binary() {
            Ok(e) => e,
            Err(why) => {
                self.extra
                    .push(format!("registry rows: **not measured**: {why}"));
                return Ok(());
            }
        };
        let (peer, peer_version) = match Peer::find() {
            Ok(p) => p,
            Err(why) => {
                self.extra
                    .push(format!("registry rows: **not measured**: {why}"));
                return Ok(());
            }
        };
        let server = match Registry::start(&exe, &self.work.join("registry")) {
            Ok(s) => s,
            Err(why) => {
                self.extra
                    .push(format!("registry rows: **not measured**: {why}"));
                return Ok(());
            }
        };
        let target = self.pick_target(&server)?;
        let version = sh_out(&format!("{} --version", q(&exe)));
        self.extra.push(format!(
            "registry rows: transport {}; peer {peer_version}; registry `{}` ({})",
            target.label(),
            exe.display(),
            version
                .split_whitespace()
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        ));
        let child = self.child_of(f1)?;
        let reps = self.reps;

        // Push F1 (root), each rep into a fresh repository.
        let (_, f1_peer_bytes) = self.push_row(
            &target,
            &peer,
            f1,
            "root",
            "F1",
            "push F1 (root)",
            "≤ 0.7",
            0.7,
            None,
        )?;

        // Pull F1 into an empty home.
        let pulled = self.pull_f1_row(&target, &peer, f1, f1_peer_bytes)?;

        // Push the child; its parent is in each rep's repository.
        let (new_count, new_bytes) = new_chunk_bytes(&f1.upper_path(), &child.upper_path())?;
        let (_, child_peer_bytes) = self.push_row(
            &target,
            &peer,
            &child,
            "child",
            "F1 child",
            "push the child (parent in the target)",
            "≤ 0.1, bytes ≤ 1.2× (new chunks + index)",
            0.1,
            Some((new_count, new_bytes)),
        )?;

        // Pull the child onto the parent's host.
        self.pull_child_row(
            &target,
            &peer,
            &child,
            &pulled,
            (new_count, new_bytes),
            child_peer_bytes,
        )?;

        self.registry_rss(&target, f1, &child)?;
        if target.is_registry() {
            self.layout_record_rows(f1)?;
        }
        self.extra.push(format!(
            "registry rows: {reps} reps, each push into a fresh repository; ours/peer is wall time"
        ));
        drop(server);
        snapshot::remove(&self.home, &child.path.display().to_string(), true)?;
        Ok(())
    }

    /// The registry if the engine speaks to it, else a layout (labelled).
    fn pick_target(&mut self, server: &Registry) -> Res<Target> {
        let probe = format!("127.0.0.1:{}/bench/probe:x", server.port);
        let scratch = self.work.join("probe");
        fs::create_dir_all(&scratch)?;
        let result = store::open(
            &Reference::parse(&probe)?,
            &remote(),
            Access::Read,
            &scratch,
        );
        rm(&scratch);
        match result {
            Ok(_) => Ok(Target::Registry { port: server.port }),
            Err(e) if e.code() == ErrorCode::Unsupported => {
                eprintln!("  registry transport: {e}; measuring against oci: layouts instead");
                self.extra.push(format!(
                    "registry rows: **measured against `oci:DIR` layouts, not the registry**: the engine said `{e}`"
                ));
                Ok(Target::Layout {
                    dir: self.work.join("layouts"),
                })
            }
            Err(e) => Err(format!("opening {probe}: {e}").into()),
        }
    }

    /// F1's child: a sandbox from F1's snapshot, new files and scattered
    /// writes in its upper, snapshotted with merkle integrity.
    fn child_of(&mut self, f1: &Artifact) -> Res<Artifact> {
        let name = self.unique("f1-child");
        let sb = sandbox::create(
            &self.home,
            &name,
            &SandboxSource::Snapshot {
                name_or_path: f1.path.display().to_string(),
            },
            &Monitor::none(),
        )?;
        let upper = sb.upper_path.clone();
        let src = self.work.join("child-files");
        rm(&src);
        fs::create_dir_all(&src)?;
        let mut seed = 0x1405_2026_dead_beef;
        let mut cmds = String::from("mkdir /bench-child\n");
        for i in 0..CHILD_FILES {
            let p = src.join(format!("new-{i:02}"));
            fs::write(&p, random_bytes(CHILD_FILE, &mut seed))?;
            cmds.push_str(&format!("write {} /bench-child/new-{i:02}\n", p.display()));
        }
        let cmd_file = src.join("debugfs.cmds");
        fs::write(&cmd_file, cmds)?;
        sh(&format!(
            "debugfs -w -f {} {} >/dev/null 2>&1",
            q(&cmd_file),
            q(&upper)
        ))?;
        let listed = sh_out(&format!(
            "debugfs -R 'ls -l /bench-child' {} 2>/dev/null | grep -c new-",
            q(&upper)
        ));
        if listed != CHILD_FILES.to_string() {
            return Err(
                format!("debugfs wrote {listed} of {CHILD_FILES} files into the child").into(),
            );
        }
        rm(&src);
        // 500 writes inside the data extents, past the first MiB (the
        // superblock and group descriptors).
        let file = fs::OpenOptions::new().write(true).open(&upper)?;
        let extents: Vec<_> = microsnap::sparse::data_extents(&file)?
            .into_iter()
            .filter(|e| e.end() > MIB + CHILD_WRITE)
            .collect();
        let slots: u64 = extents.iter().map(|e| e.len / CHILD_WRITE).sum();
        if slots < CHILD_WRITES {
            return Err("the child's upper has too little data for the scattered writes".into());
        }
        for _ in 0..CHILD_WRITES {
            let mut pick = next(&mut seed) % slots;
            for e in &extents {
                let n = e.len / CHILD_WRITE;
                if pick < n {
                    let at = (e.offset + pick * CHILD_WRITE) / CHILD_WRITE * CHILD_WRITE;
                    file.write_all_at(&random_bytes(CHILD_WRITE, &mut seed), at.max(MIB))?;
                    break;
                }
                pick -= n;
            }
        }
        file.sync_all()?;
        drop(file);
        let art = self.snapshot(&name, Some(Algorithm::MerkleSha256V1))?;
        sandbox::remove(&self.home, &name)?;
        if art.descriptor.parent() != Some(f1.digest.as_str()) {
            return Err(format!(
                "the child's parent is {:?}, not F1's snapshot",
                art.descriptor.parent()
            )
            .into());
        }
        Ok(art)
    }

    /// One push row: ours of `art` to `bench/r<i>:tag`, the peer's of its
    /// upper to `peer/r<i>:tag`. `new` (child rows): the new chunks'
    /// count and compressed bytes, for the wire bound. Returns our last
    /// bytes_uploaded and the peer's tar.zst size.
    #[allow(clippy::too_many_arguments)]
    fn push_row(
        &mut self,
        target: &Target,
        peer: &Peer,
        art: &Artifact,
        tag: &str,
        fixture: &'static str,
        operation: &str,
        target_text: &str,
        limit: f64,
        new: Option<(u64, u64)>,
    ) -> Res<(u64, u64)> {
        let home = Home::open(self.home.root())?;
        let work = self.work.join("peer-push");
        rm(&work);
        fs::create_dir_all(&work)?;
        let upper = art.upper_path();
        let source = art.path.display().to_string();
        let mut reports = Vec::new();
        let mut tzst = 0;
        let (mut ours_cpu, mut peer_cpu) = (Duration::ZERO, Duration::ZERO);
        let samples = alternate(
            self.reps,
            |i| {
                let reference = target.ours(&format!("r{i}"), tag);
                let cpu = cpu_time(libc::RUSAGE_SELF);
                let (d, report) = timed(|| {
                    Ok(distribution::push(
                        &home,
                        &source,
                        &reference,
                        &push_options(),
                        &Monitor::none(),
                    )?)
                })?;
                ours_cpu += cpu_time(libc::RUSAGE_SELF) - cpu;
                reports.push(report);
                Ok(d)
            },
            |i| {
                let script = peer.push_script(target, &upper, &work, &format!("r{i}"), tag)?;
                let cpu = cpu_time(libc::RUSAGE_CHILDREN);
                let d = sh(&script)?;
                peer_cpu += cpu_time(libc::RUSAGE_CHILDREN) - cpu;
                tzst = fs::metadata(work.join("upper.tar.zst"))?.len();
                rm(&work.join("upper.tar.zst"));
                Ok(d)
            },
        )?;
        rm(&work);
        let last = reports.last().ok_or("no push")?;
        if reports
            .iter()
            .any(|r| r.bytes_uploaded != last.bytes_uploaded)
        {
            eprintln!("  note: bytes_uploaded differs between reps");
        }
        let mut note = format!(
            "{}; wire: ours {} ({} B, {} of {} chunks sent, {} reused) vs peer's tar.zst {} ({} B) = {:.4}×",
            target.label(),
            mib(last.bytes_uploaded),
            last.bytes_uploaded,
            last.chunks_uploaded,
            last.chunks_total,
            last.chunks_reused,
            mib(tzst),
            tzst,
            last.bytes_uploaded as f64 / tzst.max(1) as f64
        );
        note.push_str(&format!(
            "; {} (registry server's CPU in neither)",
            cpu_note(ours_cpu, peer_cpu, self.reps)
        ));
        if let Some((count, bytes)) = new {
            note.push_str(&self.wire_bound(target, tag, last.bytes_uploaded, count, bytes)?);
        }
        self.push(
            operation,
            fixture,
            &format!("`tar --sparse \\| zstd -3 -T0` + {}", peer.name()),
            samples,
            target_text,
            Some(limit),
            note,
        );
        Ok((last.bytes_uploaded, tzst))
    }

    /// The text that says whether `wire` bytes keep issue 15's bound of
    /// 1.2 × (new chunks compressed + the index blob).
    fn wire_bound(
        &self,
        target: &Target,
        tag: &str,
        wire: u64,
        count: u64,
        bytes: u64,
    ) -> Res<String> {
        let index = target.index_size("r0", tag)?;
        let bound = 1.2 * (bytes + index) as f64;
        Ok(format!(
            "; bound 1.2 × ({count} new chunks {} + index {}) = {}: {}",
            mib(bytes),
            mib(index),
            mib(bound as u64),
            if wire as f64 <= bound {
                "bytes met"
            } else {
                "**bytes missed**"
            }
        ))
    }

    /// Pull F1 into a fresh empty home each rep; the peer pulls and unpacks
    /// its tar.zst. Returns a home holding F1 (the parent's host).
    fn pull_f1_row(
        &mut self,
        target: &Target,
        peer: &Peer,
        f1: &Artifact,
        peer_bytes: u64,
    ) -> Res<Home> {
        let reference = target.ours("r0", "root");
        let homes = self.work.join("pull-homes");
        let peer_out = self.work.join("peer-pull");
        let file_name = f1
            .upper_path()
            .file_name()
            .ok_or("no upper name")?
            .to_owned();
        let (mut ours_alloc, mut peer_alloc, mut wire) = (0, 0, None);
        let (mut ours_cpu, mut peer_cpu) = (Duration::ZERO, Duration::ZERO);
        let samples = alternate(
            self.reps,
            |i| {
                let root = homes.join(format!("h{i}"));
                rm(&root);
                let home = Home::open(&root)?;
                let cpu = cpu_time(libc::RUSAGE_SELF);
                let (d, (handle, report)) = timed(|| {
                    Ok(distribution::pull(
                        &home,
                        &reference,
                        None,
                        &pull_options(None),
                        &Monitor::none(),
                    )?)
                })?;
                ours_cpu += cpu_time(libc::RUSAGE_SELF) - cpu;
                if handle.digest != f1.digest {
                    return Err(format!("pulled {} instead of {}", handle.digest, f1.digest).into());
                }
                ours_alloc = allocated(&microsnap::artifact::open_dir(&handle.path)?.upper_path());
                wire = Some(report);
                drop(home);
                rm(&root);
                Ok(d)
            },
            |_| {
                rm(&peer_out);
                let cpu = cpu_time(libc::RUSAGE_CHILDREN);
                let d = sh(&peer.pull_script(target, &peer_out, "r0", "root"))?;
                peer_cpu += cpu_time(libc::RUSAGE_CHILDREN) - cpu;
                peer_alloc = allocated(&peer_out.join(&file_name));
                rm(&peer_out);
                Ok(d)
            },
        )?;
        let report = wire.ok_or("no pull")?;
        let source = allocated(&f1.upper_path());
        let ratio = ours_alloc as f64 / source.max(1) as f64;
        let note = format!(
            "{}; wire: ours {} ({} B, {} chunks) vs peer's tar.zst {} ({} B) = {:.4}×; allocated {} = {:.3}× source ({}), peer's {}; {}",
            target.label(),
            mib(report.bytes_downloaded),
            report.bytes_downloaded,
            report.chunks_downloaded,
            mib(peer_bytes),
            peer_bytes,
            report.bytes_downloaded as f64 / peer_bytes.max(1) as f64,
            mib(ours_alloc),
            ratio,
            if ratio <= 1.05 { "met" } else { "**missed**" },
            mib(peer_alloc),
            cpu_note(ours_cpu, peer_cpu, self.reps)
        );
        self.push(
            "pull F1 into an empty home",
            "F1",
            &format!("{} pull + `zstd -dc \\| tar --sparse -xf -`", peer.name()),
            samples,
            "≤ 0.7, alloc ≤ 1.05×",
            Some(0.7),
            note,
        );
        rm(&homes);
        // The parent's host for the child rows.
        let host = Home::open(&self.work.join("parent-host"))?;
        distribution::pull(
            &host,
            &reference,
            None,
            &pull_options(Some("root".into())),
            &Monitor::none(),
        )?;
        Ok(host)
    }

    /// Pull the child onto a host that has F1 (pulled from the target).
    fn pull_child_row(
        &mut self,
        target: &Target,
        peer: &Peer,
        child: &Artifact,
        host: &Home,
        (count, bytes): (u64, u64),
        peer_bytes: u64,
    ) -> Res<()> {
        let reference = target.ours("r0", "child");
        let peer_out = self.work.join("peer-pull");
        let mut last = None;
        let (mut ours_cpu, mut peer_cpu) = (Duration::ZERO, Duration::ZERO);
        let samples = alternate(
            self.reps,
            |i| {
                let name = format!("child-{i}");
                let cpu = cpu_time(libc::RUSAGE_SELF);
                let (d, (handle, report)) = timed(|| {
                    Ok(distribution::pull(
                        host,
                        &reference,
                        None,
                        &pull_options(Some(name.clone())),
                        &Monitor::none(),
                    )?)
                })?;
                ours_cpu += cpu_time(libc::RUSAGE_SELF) - cpu;
                if handle.digest != child.digest {
                    return Err(format!(
                        "pulled {} instead of the child {}",
                        handle.digest, child.digest
                    )
                    .into());
                }
                if report.already_present {
                    return Err("the child was already on the host: nothing measured".into());
                }
                last = Some(report);
                snapshot::remove(host, &name, true)?;
                Ok(d)
            },
            |_| {
                rm(&peer_out);
                let cpu = cpu_time(libc::RUSAGE_CHILDREN);
                let d = sh(&peer.pull_script(target, &peer_out, "r0", "child"))?;
                peer_cpu += cpu_time(libc::RUSAGE_CHILDREN) - cpu;
                rm(&peer_out);
                Ok(d)
            },
        )?;
        let report = last.ok_or("no pull")?;
        let mut note = format!(
            "{}; wire: ours {} ({} B, {} of {} chunks downloaded, {} copied locally) vs peer's tar.zst {} ({} B) = {:.4}×; {}",
            target.label(),
            mib(report.bytes_downloaded),
            report.bytes_downloaded,
            report.chunks_downloaded,
            report.chunks_total,
            mib(report.bytes_copied_locally),
            mib(peer_bytes),
            peer_bytes,
            report.bytes_downloaded as f64 / peer_bytes.max(1) as f64,
            cpu_note(ours_cpu, peer_cpu, self.reps)
        );
        note.push_str(&self.wire_bound(target, "child", report.bytes_downloaded, count, bytes)?);
        self.push(
            "pull the child onto the parent's host",
            "F1 child",
            &format!(
                "{} pull + `zstd -dc \\| tar --sparse -xf -` of the child",
                peer.name()
            ),
            samples,
            "≤ 0.1, bytes ≤ 1.2× (new chunks + index)",
            Some(0.1),
            note,
        );
        Ok(())
    }

    /// For the record, where the time goes without HTTP: our push of F1 to
    /// an `oci:` layout against the peer's `tar | zstd` to a file alone, and
    /// our pull from that layout against `zstd -dc | tar -xf` of the file.
    fn layout_record_rows(&mut self, f1: &Artifact) -> Res<()> {
        let home = Home::open(self.home.root())?;
        let layouts = self.work.join("record-layouts");
        let tzst = self.work.join("record.tar.zst");
        let peer_out = self.work.join("record-peer");
        let upper = f1.upper_path();
        let dir = upper.parent().ok_or("upper has no parent")?;
        let file = Path::new(upper.file_name().ok_or("upper has no name")?);
        let source = f1.path.display().to_string();
        let make = format!(
            "tar --sparse -C {} -cf - {} | zstd -q -3 -T0 > {}",
            q(dir),
            q(file),
            q(&tzst)
        );
        let (mut ours_cpu, mut peer_cpu) = (Duration::ZERO, Duration::ZERO);
        let samples = alternate(
            self.reps,
            |i| {
                let reference = format!("oci:{}:root", layouts.join(format!("r{i}")).display());
                let cpu = cpu_time(libc::RUSAGE_SELF);
                let d = timed(|| {
                    Ok(distribution::push(
                        &home,
                        &source,
                        &reference,
                        &push_options(),
                        &Monitor::none(),
                    )?)
                })?
                .0;
                ours_cpu += cpu_time(libc::RUSAGE_SELF) - cpu;
                Ok(d)
            },
            |_| {
                rm(&tzst);
                let cpu = cpu_time(libc::RUSAGE_CHILDREN);
                let d = sh(&make)?;
                peer_cpu += cpu_time(libc::RUSAGE_CHILDREN) - cpu;
                Ok(d)
            },
        )?;
        let push_note = cpu_note(ours_cpu, peer_cpu, self.reps);
        self.push(
            "push F1 to an `oci:` layout (no HTTP; record)",
            "F1",
            "`tar --sparse \\| zstd -3 -T0` to a file, no transfer",
            samples,
            "record",
            None,
            push_note,
        );
        let reference = format!("oci:{}:root", layouts.join("r0").display());
        let homes = self.work.join("record-homes");
        let (mut ours_cpu, mut peer_cpu) = (Duration::ZERO, Duration::ZERO);
        let samples = alternate(
            self.reps,
            |i| {
                let root = homes.join(format!("h{i}"));
                rm(&root);
                let home = Home::open(&root)?;
                let cpu = cpu_time(libc::RUSAGE_SELF);
                let d = timed(|| {
                    Ok(distribution::pull(
                        &home,
                        &reference,
                        None,
                        &pull_options(None),
                        &Monitor::none(),
                    )?)
                })?
                .0;
                ours_cpu += cpu_time(libc::RUSAGE_SELF) - cpu;
                drop(home);
                rm(&root);
                Ok(d)
            },
            |_| {
                rm(&peer_out);
                fs::create_dir_all(&peer_out)?;
                let cpu = cpu_time(libc::RUSAGE_CHILDREN);
                let d = sh(&format!(
                    "zstd -dc {} | tar --sparse -xf - -C {}",
                    q(&tzst),
                    q(&peer_out)
                ))?;
                peer_cpu += cpu_time(libc::RUSAGE_CHILDREN) - cpu;
                rm(&peer_out);
                Ok(d)
            },
        )?;
        let pull_note = cpu_note(ours_cpu, peer_cpu, self.reps);
        self.push(
            "pull F1 from an `oci:` layout into an empty home (no HTTP; record)",
            "F1",
            "`zstd -dc \\| tar --sparse -xf -` of the file, no transfer",
            samples,
            "record",
            None,
            pull_note,
        );
        rm(&layouts);
        rm(&tzst);
        rm(&homes);
        Ok(())
    }

    /// Peak RSS of one push and one pull of F1 and of the child, each in a
    /// child process of its own.
    fn registry_rss(&mut self, target: &Target, f1: &Artifact, child: &Artifact) -> Res<()> {
        let root = self.home.root().display().to_string();
        let push_f1 = child_peak(&[
            "push",
            &root,
            &f1.path.display().to_string(),
            &target.ours("rss", "root"),
        ])?;
        let push_child = child_peak(&[
            "push",
            &root,
            &child.path.display().to_string(),
            &target.ours("rss", "child"),
        ])?;
        let host = self.work.join("rss-host").display().to_string();
        let pull_f1 = child_peak(&["pull", &host, &target.ours("rss", "root")])?;
        let pull_child = child_peak(&["pull", &host, &target.ours("rss", "child")])?;
        let verdict = |v: u64| if v <= RSS_LIMIT { "met" } else { "**missed**" };
        self.extra.push(format!(
            "registry rows: peak RSS of ours (target ≤ 128 MiB, {}): push F1 {} MiB ({}), pull F1 into an empty home {} MiB ({}), \
             push the child {} MiB ({}), pull the child onto the parent's host {} MiB ({})",
            target.label(),
            push_f1 / MIB,
            verdict(push_f1),
            pull_f1 / MIB,
            verdict(pull_f1),
            push_child / MIB,
            verdict(push_child),
            pull_child / MIB,
            verdict(pull_child)
        ));
        rm(Path::new(&host));
        Ok(())
    }
}

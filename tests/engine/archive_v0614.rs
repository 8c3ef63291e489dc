//! microsandbox v0.6.14 archives (`tests/vectors/msb-0.6.14/archives` and
//! `hostile/`): every member of their `save` output read back field by field
//! (`archives.tsv`), every archive imported with the recorded head, the
//! hostile corpus in their layout refused with nothing changed, and crafted
//! cases the vectors lack.
use crate::support::archive::{index_rows, new_home, tree};
use crate::support::vector_sets::v0614;
use microsnap::archive::inventory::{
    KIND_DESCRIPTOR, KIND_IMAGE_METADATA, KIND_IMAGE_OBJECT, KIND_PAYLOAD,
};
use microsnap::archive::tar_reader::TarReader;
use microsnap::archive::transport_digest::MemberHasher;
use microsnap::archive::{self, ImportReport};
use microsnap::error::Result;
use microsnap::home::Home;
use microsnap::progress::Monitor;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

pub fn tsv(rel: &str) -> Vec<Vec<String>> {
    fs::read_to_string(v0614(rel))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// The decompressed tar of an archive file.
pub fn tar_bytes(path: &Path) -> Vec<u8> {
    let raw = fs::read(path).unwrap();
    if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::decode_all(&raw[..]).unwrap()
    } else {
        raw
    }
}

/// The inventory kind of a member, from its path (SPEC-NOTES §10).
pub fn kind_of(path: &str) -> &'static str {
    if path.starts_with("snapshots/") {
        KIND_DESCRIPTOR
    } else if path.starts_with("files/") {
        KIND_PAYLOAD
    } else if path.starts_with("images/manifests/") {
        KIND_IMAGE_METADATA
    } else {
        KIND_IMAGE_OBJECT
    }
}

/// One member as `archives.tsv` describes it: the columns index,
/// header_offset, entry_name, typeflag, size_field, realsize, sparse_map,
/// ext_sparse_blocks, then sha256_of_stored_data and transport_digest.
pub fn member_rows(tar: &[u8]) -> Vec<Vec<String>> {
    let mut reader = TarReader::new(tar);
    let mut rows = Vec::new();
    let mut index = 0;
    loop {
        let before = reader.consumed();
        let Some(entry) = reader.next_entry().unwrap() else {
            break;
        };
        let header_offset = before.div_ceil(512) * 512;
        let after_header = reader.consumed();
        let ext_blocks = (after_header - header_offset) / 512 - 1;
        let flag = tar[header_offset as usize + 156];
        let name = entry.display_name();
        let data = reader.read_data_to_vec(1 << 30).unwrap();
        let (realsize, map, slots) = match &entry.sparse {
            Some(m) => (
                m.real_size.to_string(),
                m.runs
                    .iter()
                    .map(|r| format!("{}+{}", r.offset, r.len))
                    .collect::<Vec<_>>()
                    .join(","),
                m.runs.clone(),
            ),
            None => ("-".into(), "-".into(), vec![]),
        };
        let transport = if name == "archive.json" {
            "-".to_string()
        } else {
            let mut h = MemberHasher::new(
                kind_of(&name),
                &name,
                entry.size,
                entry.logical_size(),
                &slots,
            );
            h.update(&data);
            h.finish()
        };
        rows.push(vec![
            index.to_string(),
            header_offset.to_string(),
            name,
            if flag == 0 {
                "NUL".into()
            } else {
                (flag as char).to_string()
            },
            entry.size.to_string(),
            realsize,
            map,
            ext_blocks.to_string(),
            format!("sha256:{:x}", Sha256::digest(&data)),
            transport,
        ]);
        index += 1;
    }
    rows
}

/// `archives.tsv` rows of one archive, in the columns of [`member_rows`].
pub fn recorded_rows(archive: &str) -> Vec<Vec<String>> {
    tsv("archives/archives.tsv")
        .into_iter()
        .filter(|r| r[0] == archive)
        .map(|r| {
            let mut v: Vec<String> = r[1..9].to_vec();
            v.push(r[14].clone());
            v.push(r[15].clone());
            v
        })
        .collect()
}

#[test]
fn every_member_of_their_archives_reads_back_as_recorded() {
    let rows = tsv("archives/archives.tsv");
    let mut archives: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    archives.dedup();
    assert_eq!(archives.len(), 11, "{archives:?}");
    for a in archives {
        let got = member_rows(&tar_bytes(&v0614(&format!("archives/{a}"))));
        assert_eq!(got, recorded_rows(&a), "{a}");
    }
}

fn import(home: &Home, path: &Path) -> Result<ImportReport> {
    archive::import(home, path, None, &Monitor::none())
}

#[test]
fn their_archives_import_with_the_recorded_heads() {
    let mut failures = Vec::new();
    for row in tsv("archives/heads.tsv") {
        let (file, head, dir, order) = (&row[0], &row[1], &row[2], &row[3]);
        let path = v0614(&format!("archives/{file}"));
        let (_t, home) = new_home();
        let report = match import(&home, &path) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        assert_eq!(&report.head.digest, head, "{file}");
        assert_eq!(report.head.path, home.snapshots_dir().join(dir), "{file}");
        let got: Vec<&str> = report.imported.iter().map(|a| a.digest.as_str()).collect();
        assert_eq!(got, order.split(',').collect::<Vec<_>>(), "{file}");
        // Installed byte-identical: the descriptor as in the archive, never
        // migrated, and nothing else in the directory but its upper.
        let tar = tar_bytes(&path);
        for digest in order.split(',') {
            let hex = digest.trim_start_matches("sha256:");
            let installed = home.snapshots_dir().join(hex);
            let member = member_data(&tar, &format!("snapshots/{hex}/snapshot.json"));
            assert_eq!(
                fs::read(installed.join("snapshot.json")).unwrap(),
                member,
                "{file}: {hex}"
            );
            assert!(!installed.join("manifest.json").exists(), "{file}");
        }
        let indexed: Vec<String> = index_rows(&home).into_iter().map(|(_, d)| d).collect();
        for d in order.split(',') {
            assert!(indexed.iter().any(|x| x == d), "{file}: {d} not indexed");
        }
        if file == "with-image.tar" {
            assert_eq!(report.skipped.len(), 4, "{:?}", report.skipped);
            assert!(report.skipped.iter().all(|s| s.starts_with("images/")));
        } else {
            assert!(report.skipped.is_empty(), "{file}: {:?}", report.skipped);
        }
        // Imports stay sparse, as microsandbox's do.
        if file == "all-hole-upper.tar" {
            let upper = home.snapshots_dir().join(dir).join("upper.ext4");
            assert_eq!(crate::support::archive::allocated(&upper), 0);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The bytes of one member of a tar.
pub fn member_data(tar: &[u8], name: &str) -> Vec<u8> {
    let mut reader = TarReader::new(tar);
    while let Some(e) = reader.next_entry().unwrap() {
        if e.display_name() == name {
            return reader.read_data_to_vec(1 << 30).unwrap();
        }
    }
    panic!("no member {name}");
}

#[test]
fn importing_a_v0614_archive_twice_is_idempotent_and_a_name_is_honoured() {
    let path = v0614("archives/chain-with-parents.tar");
    let (_t, home) = new_home();
    let first = import(&home, &path).unwrap();
    let before = (home_tree(&home), index_rows(&home));
    let again = import(&home, &path).unwrap();
    assert_eq!(again.head.digest, first.head.digest);
    assert_eq!((home_tree(&home), index_rows(&home)), before);

    let (_t2, home2) = new_home();
    let named = archive::import_named(&home2, &path, None, Some("mine"), &Monitor::none()).unwrap();
    assert_eq!(named.head.path, home2.snapshots_dir().join("mine"));
    assert_eq!(named.head.digest, first.head.digest);
    // The parent keeps its `<64 hex>` name.
    let parent = "750815fab0592c1511e444b668cc0d75b924445b22538bedfc59c4efc2bb0230";
    assert!(home2
        .snapshots_dir()
        .join(parent)
        .join("snapshot.json")
        .exists());
}

// ---------------------------------------------------------------------------
// The hostile corpus in their layout.

struct World {
    _tmp: tempfile::TempDir,
    home: Home,
    dest: PathBuf,
}

fn world() -> World {
    let (tmp, home) = new_home();
    let dest = tmp.path().join("dest");
    World {
        _tmp: tmp,
        home,
        dest,
    }
}

/// The home, the explicit destination and the index.
fn state(w: &World) -> (Vec<String>, Vec<String>, Vec<(String, String)>) {
    (home_tree(&w.home), tree(&w.dest), index_rows(&w.home))
}

/// Every file of the home but its database files (readers touch the WAL).
fn home_tree(home: &Home) -> Vec<String> {
    let mut files = tree(home.root());
    files.retain(|p| !p.starts_with("microsnap.db"));
    files
}

/// What microsnap says of each refused case (a phrase of the message; most
/// are microsandbox's own words).
fn expected_refusal(file: &str) -> (&'static str, &'static str) {
    let (code, says) = match &file[..3] {
        "h01" => ("invalid_archive", "unsafe path"),
        "h02" => ("invalid_archive", "unsafe path"),
        "h03" => ("invalid_archive", "unsupported entry type (symlink)"),
        "h04" => ("invalid_archive", "unsupported entry type (hard link)"),
        "h05" => (
            "invalid_archive",
            "unsupported entry type (character device)",
        ),
        // The inventory comes last; the member is refused as it arrives.
        "h06" => (
            "invalid_archive",
            "extra.bin\" is outside the snapshot archive layout",
        ),
        "h07" => ("invalid_archive", "inventoried entry is missing"),
        "h08" => (
            "integrity_mismatch",
            "archive member transport integrity mismatch",
        ),
        "h09" => ("invalid_archive", "archive contains duplicate entry"),
        "h10" => ("invalid_archive", "missing upper file"),
        "h11" => ("invalid_archive", "truncated"),
        "h12" => ("invalid_archive", "archive inventory is not canonical"),
        "h13" => ("unsupported", "requires unsupported extensions"),
        "h15" => ("invalid_archive", "GNU long name"),
        "h20" => ("invalid_archive", "archive contains unsupported path"),
        "h21" => (
            "invalid_archive",
            "archive head is not exactly one listed snapshot",
        ),
        "h22" => ("invalid_archive", "archive entry size mismatch"),
        "h23" => ("invalid_archive", "archive directory has a non-empty body"),
        "h24" => ("invalid_archive", "checksum mismatch"),
        "h25" => ("integrity_mismatch", "archive entry integrity mismatch"),
        "h26" => ("invalid_archive", "GNU long name"),
        "h27" => (
            "integrity_mismatch",
            "archive member transport integrity mismatch",
        ),
        // Refused by microsnap although microsandbox imports them:
        // the upper fails its recorded BLAKE3 integrity (q01); a directory
        // no descriptor names is never installed (q02).
        "q01" => ("integrity_mismatch", "files/a052794b"),
        "q02" => ("invalid_archive", "no descriptor names it"),
        _ => panic!("no expectation for {file}"),
    };
    (code, says)
}

#[test]
fn their_hostile_corpus_is_refused_with_nothing_changed_and_the_controls_import() {
    let rows = tsv("hostile/hostile.tsv");
    let listed: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let mut on_disk: Vec<String> = fs::read_dir(v0614("hostile"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tar"))
        .collect();
    on_disk.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(on_disk, sorted, "hostile.tsv lists every file");
    let mut failures = Vec::new();
    for row in &rows {
        let file = row[0].as_str();
        let path = v0614(&format!("hostile/{file}"));
        for explicit in [false, true] {
            let w = world();
            let before = state(&w);
            let dest = explicit.then_some(w.dest.as_path());
            let result = archive::import(&w.home, &path, dest, &Monitor::none());
            let where_ = if explicit {
                "explicit dest"
            } else {
                "default dest"
            };
            match (file.starts_with('a'), result) {
                (true, Ok(r)) => {
                    let head =
                        "sha256:a052794b093cb867df61741cf889be58dcb7dbad95b851522620e1228d92daa8";
                    if r.head.digest != head {
                        failures.push(format!("{file} ({where_}): head {}", r.head.digest));
                    }
                }
                (true, Err(e)) => failures.push(format!("{file} ({where_}): refused: {e}")),
                (false, Ok(r)) => {
                    failures.push(format!("{file} ({where_}): imported {}", r.head.digest))
                }
                (false, Err(e)) => {
                    let (code, says) = expected_refusal(file);
                    if e.code().name() != code || !e.to_string().contains(says) {
                        failures.push(format!(
                            "{file} ({where_}): got {} \"{e}\", want {code} mentioning {says:?}",
                            e.code().name()
                        ));
                    }
                    let after = state(&w);
                    if after != before {
                        failures.push(format!(
                            "{file} ({where_}): the home, destination or index changed: \
                             {before:?} -> {after:?}"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Export in their layout.

/// Import one of their archives under its inventory's suggested name (so
/// the re-export's `suggested_name` can match), pin every installed file's
/// metadata to what their archive recorded, and export it again in the
/// msb-v0.6.14 format as a plain tar.
fn reexport(file: &str, home: &Home, scratch: &Path) -> Result<Vec<u8>> {
    let path = v0614(&format!("archives/{file}"));
    let tar = tar_bytes(&path);
    let inventory: serde_json::Value =
        serde_json::from_slice(&member_data(&tar, "archive.json")).unwrap();
    let name = inventory["suggested_name"].as_str().unwrap();
    let with_parents = inventory["with_parents"].as_bool().unwrap();
    let report = archive::import_named(home, &path, None, Some(name), &Monitor::none())?;
    for row in recorded_rows(file)
        .iter()
        .filter(|r| r[2] != "archive.json")
    {
        let member = &row[2];
        let full = tsv("archives/archives.tsv")
            .into_iter()
            .find(|r| r[0] == file && &r[3] == member)
            .unwrap();
        let hex = member.split('/').nth(1).unwrap();
        let leaf = member.rsplit('/').next().unwrap();
        let dir = if format!("sha256:{hex}") == report.head.digest {
            home.snapshots_dir().join(name)
        } else {
            home.snapshots_dir().join(hex)
        };
        let installed = dir.join(leaf);
        let mode = u32::from_str_radix(&full[9], 8).unwrap() & 0o7777;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&installed, fs::Permissions::from_mode(mode)).unwrap();
        let mtime = std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(full[12].parse::<u64>().unwrap());
        fs::File::options()
            .write(true)
            .open(&installed)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }
    let out = scratch.join(format!("{file}.again"));
    let opts = archive::ExportOptions {
        with_parents,
        plain_tar: true,
        format: microsnap::artifact::ArtifactFormat::MsbV0614,
        ..Default::default()
    };
    let exported = archive::export(home, name, &out, &opts, &Monitor::none())?;
    assert_eq!(exported.snapshots.last(), Some(&report.head.digest));
    Ok(fs::read(&out).unwrap())
}

#[test]
fn their_archives_exported_again_in_their_format_are_byte_identical() {
    let mut failures = Vec::new();
    for row in tsv("archives/heads.tsv") {
        let file = &row[0];
        if file.ends_with(".zst") || file == "with-image.tar" {
            continue; // the same tars as their plain siblings; images: not shipped
        }
        let (t, home) = new_home();
        let again = match reexport(file, &home, t.path()) {
            Ok(bytes) => bytes,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        // Field by field first, for a readable failure; then every byte.
        let got = member_rows(&again);
        if got != recorded_rows(file) {
            failures.push(format!(
                "{file}: members differ:\n  got  {got:?}\n  want {:?}",
                recorded_rows(file)
            ));
            continue;
        }
        let original = tar_bytes(&v0614(&format!("archives/{file}")));
        if again != original {
            failures.push(format!("{file}: same members but not byte-identical"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Lineage across formats (`with_parents`).

use microsnap::artifact::{Artifact, ArtifactFormat};
use microsnap::integrity::Algorithm;
use microsnap::snapshot::{self, CreateOptions};

/// A two-snapshot chain whose root is in `root_format` and child in
/// `child_format`, both with recorded `msb-sparse-sha256-v1` integrity (in
/// both formats' sets), in a home with the test image.
fn mixed_chain(
    root_format: ArtifactFormat,
    child_format: ArtifactFormat,
) -> (crate::support::TestHome, Artifact, Artifact) {
    let t = crate::support::TestHome::new();
    let opts = |name: &str, format| CreateOptions {
        format,
        record_integrity: true,
        integrity_algorithm: Some(Algorithm::MsbSparseSha256V1),
        ..crate::support::named(name)
    };
    t.sandbox_with("root-sb", 4 << 20, &[(0, b"root data"), (3 << 20, b"tail")]);
    let root = snapshot::create(
        &t.home,
        "root-sb",
        &opts("root", root_format),
        &Monitor::none(),
    )
    .unwrap();
    let sb = t.sandbox_from("child-sb", "root").unwrap();
    crate::support::write_at(&sb.upper_path, 1 << 20, b"child data");
    let child = snapshot::create(
        &t.home,
        "child-sb",
        &opts("child", child_format),
        &Monitor::none(),
    )
    .unwrap();
    assert_eq!(child.descriptor.parent(), Some(root.digest.as_str()));
    (t, root, child)
}

fn member_names(archive: &Path) -> Vec<String> {
    member_rows(&tar_bytes(archive))
        .into_iter()
        .map(|r| r[2].clone())
        .collect()
}

fn export_chain(t: &crate::support::TestHome, format: ArtifactFormat) -> (PathBuf, Vec<String>) {
    let out = t.outside(&format!("chain-{format}.tar"));
    let opts = archive::ExportOptions {
        with_parents: true,
        plain_tar: true,
        format,
        ..Default::default()
    };
    let report = archive::export(&t.home, "child", &out, &opts, &Monitor::none()).unwrap();
    (out, report.snapshots)
}

/// The upper bytes at the offsets the chain wrote.
fn upper_marks(art: &Artifact) -> Vec<Vec<u8>> {
    let upper = art.upper_path();
    vec![
        crate::support::read_at(&upper, 0, 9),
        crate::support::read_at(&upper, 1 << 20, 10),
    ]
}

fn check_mixed_default(root_format: ArtifactFormat, child_format: ArtifactFormat) {
    let (t, root, child) = mixed_chain(root_format, child_format);
    let (out, digests) = export_chain(&t, ArtifactFormat::MsbV063);
    // Each snapshot keeps its format, so nothing changes identity.
    assert_eq!(digests, vec![root.digest.clone(), child.digest.clone()]);
    let names = member_names(&out);
    let member_of = |art: &Artifact| match art.format() {
        ArtifactFormat::MsbV063 => format!(
            "{}/manifest.json",
            microsnap::manifest::digest_prefix(&art.digest)
        ),
        ArtifactFormat::MsbV0614 => archive::inventory::descriptor_path(&art.digest),
    };
    assert_eq!(names[0], member_of(&root), "{names:?}");
    assert_eq!(names[2], member_of(&child), "{names:?}");
    assert_eq!(names.len(), 4, "no archive.json: {names:?}");

    let (_t2, home) = new_home();
    let report = import(&home, &out).unwrap();
    assert_eq!(report.head.digest, child.digest);
    let got: Vec<(String, ArtifactFormat)> = report
        .imported
        .iter()
        .map(|a| (a.digest.clone(), a.format()))
        .collect();
    assert_eq!(
        got,
        vec![
            (root.digest.clone(), root_format),
            (child.digest.clone(), child_format)
        ]
    );
    for (src, dst) in [&root, &child].into_iter().zip(&report.imported) {
        assert_eq!(dst.descriptor_bytes(), src.descriptor_bytes());
        assert_eq!(upper_marks(dst), upper_marks(src));
        microsnap::artifact::verify_artifact(dst, &Monitor::none()).unwrap();
    }
    assert_eq!(
        report.imported[1].descriptor.parent(),
        Some(root.digest.as_str())
    );
}

fn check_mixed_theirs(root_format: ArtifactFormat, child_format: ArtifactFormat) {
    let (t, root, child) = mixed_chain(root_format, child_format);
    let (out, digests) = export_chain(&t, ArtifactFormat::MsbV0614);
    // A v0.6.3 root is converted (new identity) and its child, whatever its
    // format, is rewritten to name the new identity; a v0.6.14 root is as is.
    assert_eq!(
        digests[0] == root.digest,
        root_format == ArtifactFormat::MsbV0614
    );
    assert_eq!(
        digests[1] == child.digest,
        root_format == ArtifactFormat::MsbV0614 && child_format == ArtifactFormat::MsbV0614
    );
    let names = member_names(&out);
    assert_eq!(names.last().map(String::as_str), Some("archive.json"));
    assert!(names[..names.len() - 1]
        .iter()
        .all(|n| n.starts_with("snapshots/") || n.starts_with("files/")));

    let (_t2, home) = new_home();
    let report = import(&home, &out).unwrap();
    assert_eq!(report.head.digest, digests[1]);
    let got: Vec<&str> = report.imported.iter().map(|a| a.digest.as_str()).collect();
    assert_eq!(got, digests.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(report
        .imported
        .iter()
        .all(|a| a.format() == ArtifactFormat::MsbV0614));
    assert_eq!(
        report.imported[1].descriptor.parent(),
        Some(digests[0].as_str())
    );
    for (src, dst) in [&root, &child].into_iter().zip(&report.imported) {
        assert_eq!(upper_marks(dst), upper_marks(src));
        assert_eq!(dst.descriptor.labels(), src.descriptor.labels());
        microsnap::artifact::verify_artifact(dst, &Monitor::none()).unwrap();
    }
    // And back: the imported chain re-exported in their format is the same
    // archive content (identities are stable once converted).
    let again = home.snapshots_dir().join("again.tar");
    let head_name = digests[1].trim_start_matches("sha256:");
    let opts = archive::ExportOptions {
        with_parents: true,
        plain_tar: true,
        format: ArtifactFormat::MsbV0614,
        ..Default::default()
    };
    let report = archive::export(&home, head_name, &again, &opts, &Monitor::none()).unwrap();
    assert_eq!(report.snapshots, digests);
}

#[test]
fn a_v063_parent_with_a_v0614_child_round_trips_in_both_archive_formats() {
    check_mixed_default(ArtifactFormat::MsbV063, ArtifactFormat::MsbV0614);
    check_mixed_theirs(ArtifactFormat::MsbV063, ArtifactFormat::MsbV0614);
}

#[test]
fn a_v0614_parent_with_a_v063_child_round_trips_in_both_archive_formats() {
    check_mixed_default(ArtifactFormat::MsbV0614, ArtifactFormat::MsbV063);
    check_mixed_theirs(ArtifactFormat::MsbV0614, ArtifactFormat::MsbV063);
}

// ---------------------------------------------------------------------------
// Crafted hostile cases in their layout that the vectors lack, built from
// microsnap's own msb-v0.6.14 export in a temporary directory.

use microsnap::archive::inventory::Inventory;
use microsnap::archive::sparse_entry::{SparseMap, SparseRun};
use microsnap::archive::tar_format::EntryType;
use microsnap::archive::tar_writer::{FileMeta, TarWriter};

#[derive(Clone)]
struct Member {
    name: String,
    sparse: Option<SparseMap>,
    data: Vec<u8>,
}

fn read_members(tar: &[u8]) -> Vec<Member> {
    let mut reader = TarReader::new(tar);
    let mut out = Vec::new();
    while let Some(e) = reader.next_entry().unwrap() {
        assert!(matches!(e.kind, EntryType::Regular | EntryType::GnuSparse));
        out.push(Member {
            name: e.display_name(),
            sparse: e.sparse.clone(),
            data: reader.read_data_to_vec(1 << 30).unwrap(),
        });
    }
    out
}

fn write_members(members: &[Member]) -> Vec<u8> {
    let meta = FileMeta {
        mode: 0o100644,
        uid: 0,
        gid: 0,
        mtime: 1777636800,
    };
    let mut tar = TarWriter::new(Vec::new());
    for m in members {
        match (&m.sparse, m.name.as_str()) {
            (_, "archive.json") => tar.append_bare(m.name.as_bytes(), &m.data).unwrap(),
            (Some(map), _) => {
                tar.begin_sparse(m.name.as_bytes(), &meta, map).unwrap();
                tar.write_data(&m.data).unwrap();
            }
            (None, _) => tar.append(m.name.as_bytes(), &meta, &m.data).unwrap(),
        }
    }
    tar.finish().unwrap()
}

/// The inventory's (first) upper payload entry.
fn payload_entry(inv: &mut Inventory) -> &mut archive::inventory::InventoryEntry {
    inv.entries
        .iter_mut()
        .find(|e| e.kind == "file-payload")
        .expect("the inventory lists a payload")
}

fn edit_inventory(members: &mut [Member], f: impl FnOnce(&mut Inventory)) {
    let m = members
        .iter_mut()
        .find(|m| m.name == "archive.json")
        .unwrap();
    let mut inv = Inventory::parse(&m.data).unwrap();
    f(&mut inv);
    m.data = inv.canonical_bytes();
}

/// Their-format export of a v0.6.14 chain (root, child) and of an unrelated
/// v0.6.14 snapshot, as members.
fn crafted_base() -> (Vec<Member>, Vec<Member>) {
    let (t, _root, _child) = mixed_chain(ArtifactFormat::MsbV0614, ArtifactFormat::MsbV0614);
    let (chain, _) = export_chain(&t, ArtifactFormat::MsbV0614);
    t.sandbox_with("other-sb", 1 << 20, &[(8192, b"unrelated")]);
    let opts = CreateOptions {
        format: ArtifactFormat::MsbV0614,
        ..crate::support::named("other")
    };
    snapshot::create(&t.home, "other-sb", &opts, &Monitor::none()).unwrap();
    let out = t.outside("other.tar");
    let eopts = archive::ExportOptions {
        plain_tar: true,
        format: ArtifactFormat::MsbV0614,
        ..Default::default()
    };
    archive::export(&t.home, "other", &out, &eopts, &Monitor::none()).unwrap();
    (
        read_members(&tar_bytes(&chain)),
        read_members(&tar_bytes(&out)),
    )
}

#[test]
fn crafted_archives_in_their_layout_are_refused_with_nothing_changed() {
    let (chain, other) = crafted_base();
    let no_inventory = |ms: &[Member]| -> Vec<Member> {
        ms.iter()
            .filter(|m| m.name != "archive.json")
            .cloned()
            .collect()
    };
    let payload_with_terminator = |ms: &[Member]| {
        ms.iter()
            .position(|m| {
                m.sparse
                    .as_ref()
                    .is_some_and(|s| s.runs.last().is_some_and(|r| r.len == 0))
            })
            .expect("a sparse payload ending in a hole")
    };
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();

    // The controls: the archive as exported, and without its inventory.
    let whole = write_members(&chain);
    let bare = write_members(&no_inventory(&chain));

    let mut ms = chain.clone();
    edit_inventory(&mut ms, |inv| {
        let extra = format!("sha256:{}", "0".repeat(64));
        inv.snapshots.insert(
            0,
            microsnap::archive::inventory::InventorySnapshot {
                descriptor: archive::inventory::descriptor_path(&extra),
                snapshot_id: extra,
            },
        );
    });
    cases.push((
        "inventory lists a snapshot the archive lacks",
        write_members(&ms),
        "has no descriptor entry",
    ));

    let mut ms = chain.clone();
    edit_inventory(&mut ms, |inv| {
        let e = payload_entry(inv);
        e.included = false;
    });
    cases.push((
        "an excluded entry is present",
        write_members(&ms),
        "marked not included",
    ));

    let mut ms = chain.clone();
    edit_inventory(&mut ms, |inv| {
        let e = payload_entry(inv);
        e.integrity = None;
    });
    cases.push((
        "inventory payload integrity disagrees with the descriptor",
        write_members(&ms),
        "does not match its descriptor's",
    ));

    let mut ms = chain.clone();
    let d = ms
        .iter_mut()
        .find(|m| m.name.ends_with("snapshot.json"))
        .unwrap();
    let at = d.data.windows(8).position(|w| w == b"root-sb\"").unwrap();
    d.data[at] = b'R';
    cases.push((
        "a descriptor byte changed under an inventory",
        write_members(&ms),
        "archive member transport integrity mismatch",
    ));

    let mut ms = no_inventory(&chain);
    let d = ms
        .iter_mut()
        .find(|m| m.name.ends_with("snapshot.json"))
        .unwrap();
    d.data[at] = b'R';
    cases.push((
        "a descriptor changed without an inventory",
        write_members(&ms),
        "does not match its member path",
    ));

    let mut ms = no_inventory(&chain);
    ms.extend(no_inventory(&other));
    cases.push((
        "two unrelated heads without an inventory",
        write_members(&ms),
        "multiple heads",
    ));

    let mut ms = no_inventory(&chain);
    let i = payload_with_terminator(&ms);
    ms[i].sparse.as_mut().unwrap().runs.pop();
    cases.push((
        "a sparse map that stops before the real size",
        write_members(&ms),
        "does not end at the entry's realsize",
    ));

    let mut ms = no_inventory(&chain);
    let i = payload_with_terminator(&ms);
    let size = ms[i].sparse.as_ref().unwrap().real_size;
    ms[i].sparse = Some(SparseMap {
        real_size: size,
        runs: vec![
            SparseRun {
                offset: 0,
                len: 100,
            },
            SparseRun {
                offset: 4096,
                len: 100,
            },
            SparseRun {
                offset: size,
                len: 0,
            },
        ],
    });
    ms[i].data = vec![7u8; 200];
    cases.push((
        "a sparse run at a stored offset that is not a multiple of 512",
        write_members(&ms),
        "not a multiple of 512",
    ));

    let mut ms = no_inventory(&chain);
    let d = ms
        .iter()
        .find(|m| m.name.ends_with("snapshot.json"))
        .unwrap()
        .clone();
    ms.push(Member {
        name: d.name.replace("snapshots/", "files/"),
        ..d
    });
    cases.push((
        "two member names with one extraction target",
        write_members(&ms),
        "a data file may not be named \"snapshot.json\"",
    ));

    let mut ms = no_inventory(&chain);
    ms[0].name = ms[0].name.replace("snapshot.json", "../../escape.json");
    cases.push((
        "traversal inside snapshots/",
        write_members(&ms),
        "unsafe path",
    ));

    // Cut after the last payload, before archive.json: v0.6.14's reader
    // takes EOF at a record boundary as the end (and would import it without
    // its inventory); microsnap's requires the end-of-archive marker.
    let mut cut = write_members(&chain);
    let inventory_at = member_rows(&whole)
        .iter()
        .find(|r| r[2] == "archive.json")
        .map(|r| r[1].parse::<usize>().unwrap())
        .unwrap();
    cut.truncate(inventory_at);
    cases.push(("cut before its inventory", cut, "end-of-archive marker"));

    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("crafted.tar");
    for control in [&whole, &bare] {
        fs::write(&path, control).unwrap();
        let (_t, home) = new_home();
        import(&home, &path).unwrap();
    }
    let mut failures = Vec::new();
    for (what, bytes, says) in cases {
        fs::write(&path, &bytes).unwrap();
        let w = world();
        let before = state(&w);
        match archive::import(&w.home, &path, None, &Monitor::none()) {
            Ok(r) => failures.push(format!("{what}: imported {}", r.head.digest)),
            Err(e) if !e.to_string().contains(says) => {
                failures.push(format!("{what}: \"{e}\" does not mention {says:?}"))
            }
            Err(_) => {}
        }
        if state(&w) != before {
            failures.push(format!("{what}: the home or index changed"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A v0.6.3 snapshot recording microsnap's own SHA-256 merkle (no v0.6.14
/// form) goes into a msb-v0.6.14 archive with a BLAKE3 merkle computed from
/// its upper, which the importer checks on the stream.
#[test]
fn a_microsnap_merkle_snapshot_is_exported_in_their_format_with_blake3_integrity() {
    let t = crate::support::TestHome::new();
    t.sandbox_with("sb", 4 << 20, &[(0, b"data"), (2 << 20, b"more")]);
    let opts = CreateOptions {
        record_integrity: true,
        ..crate::support::named("mine")
    };
    let art = snapshot::create(&t.home, "sb", &opts, &Monitor::none()).unwrap();
    let rec = art.upper_spec().unwrap().integrity.clone().unwrap();
    assert_eq!(rec.algorithm, Algorithm::MerkleSha256V1.name());
    let out = t.outside("mine.tar");
    let eopts = archive::ExportOptions {
        plain_tar: true,
        format: ArtifactFormat::MsbV0614,
        ..Default::default()
    };
    let report = archive::export(&t.home, "mine", &out, &eopts, &Monitor::none()).unwrap();
    assert_ne!(report.snapshots[0], art.digest, "converted: a new identity");
    let (_t2, home) = new_home();
    let imported = import(&home, &out).unwrap().head;
    assert_eq!(imported.digest, report.snapshots[0]);
    let got = imported.upper_spec().unwrap().integrity.clone().unwrap();
    assert_eq!(got.algorithm, "msb-file-merkle-blake3-v1");
    let want = microsnap::integrity::compute(
        &art.upper_path(),
        Algorithm::from_name("msb-file-merkle-blake3-v1").unwrap(),
        &Monitor::none(),
    )
    .unwrap();
    assert_eq!(got.digest, want);
    microsnap::artifact::verify_artifact(&imported, &Monitor::none()).unwrap();
}

// ---------------------------------------------------------------------------
// Refusals found in review of the v0.6.14 archive code.

/// Import `bytes` as an archive into a fresh world; the error, with the home,
/// destination and index checked unchanged.
fn refused(what: &str, bytes: &[u8]) -> microsnap::error::Error {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("crafted.tar");
    fs::write(&path, bytes).unwrap();
    let w = world();
    let before = state(&w);
    let e = match archive::import(&w.home, &path, None, &Monitor::none()) {
        Ok(r) => panic!("{what}: imported {}", r.head.digest),
        Err(e) => e,
    };
    assert_eq!(state(&w), before, "{what}: the home or index changed ({e})");
    e
}

fn plain(name: &str, data: &[u8]) -> Member {
    Member {
        name: name.into(),
        sparse: None,
        data: data.to_vec(),
    }
}

/// With `archive.json`, nothing it does not list is installed: members of
/// the v0.6.3 layout (`oci-image/`, which install used to add to the image
/// store, and `cache/`, which was dropped unseen) are refused.
#[test]
fn an_inventoried_archive_with_v063_layout_members_is_refused() {
    let (chain, _) = crafted_base();
    let blob = b"an unlisted blob";
    let blob_name = format!("oci-image/blobs/sha256/{:x}", Sha256::digest(blob));
    let image = vec![
        plain("oci-image/oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        plain(
            "oci-image/index.json",
            br#"{"schemaVersion":2,"manifests":[]}"#,
        ),
        plain(&blob_name, blob),
    ];
    let cache = vec![plain("cache/layers/x.erofs", b"runtime cache")];
    let legacy = vec![plain("sha256-0123456789abcdef/upper.ext4", b"")];
    for (what, extra) in [
        ("oci-image", image),
        ("cache", cache),
        ("v0.6.3 dir", legacy),
    ] {
        let mut ms = chain.clone();
        let at = ms.len() - 1; // before archive.json
        ms.splice(at..at, extra);
        let e = refused(what, &write_members(&ms));
        assert_eq!(e.code().name(), "invalid_archive", "{what}: {e}");
        assert!(e.to_string().contains("non-inventoried"), "{what}: {e}");
    }
}

/// An upper name over 29 bytes makes `files/<hex>/<upper>` longer than a
/// tar header holds; the GNU long name it would need is refused by every
/// importer of the v0.6.14 layout (h26). Export refuses up front, in either
/// archive format, and writes nothing.
#[test]
fn a_v0614_snapshot_with_a_long_upper_name_is_not_exported() {
    use microsnap::snapshot_json::{SnapshotDescriptor, State};
    let t = crate::support::TestHome::new();
    t.sandbox_with("sb", 1 << 20, &[(0, b"data"), (512 << 10, b"more")]);
    let opts = CreateOptions {
        format: ArtifactFormat::MsbV0614,
        ..crate::support::named("short")
    };
    let art = snapshot::create(&t.home, "sb", &opts, &Monitor::none()).unwrap();
    let long = "u".repeat(30);
    let mut d = SnapshotDescriptor::parse(art.descriptor_bytes()).unwrap();
    let State::File { upper, .. } = &mut d.state else {
        panic!("file state")
    };
    upper.file = long.clone();
    let dir = t.outside("long-upper");
    fs::create_dir(&dir).unwrap();
    fs::copy(art.upper_path(), dir.join(&long)).unwrap();
    fs::write(dir.join("snapshot.json"), d.canonical_bytes()).unwrap();
    let out_dir = t.outside("out");
    fs::create_dir(&out_dir).unwrap();
    for format in [ArtifactFormat::MsbV0614, ArtifactFormat::MsbV063] {
        let eopts = archive::ExportOptions {
            plain_tar: true,
            format,
            ..Default::default()
        };
        let out = out_dir.join("long.tar");
        let e = archive::export(
            &t.home,
            dir.to_str().unwrap(),
            &out,
            &eopts,
            &Monitor::none(),
        )
        .unwrap_err();
        assert_eq!(e.code().name(), "unsupported", "{format}: {e}");
        assert!(e.to_string().contains(&long), "{format}: {e}");
        assert!(tree(&out_dir).is_empty(), "{format}: {:?}", tree(&out_dir));
    }
}

/// A data file named like a descriptor (`snapshot.json`, `manifest.json`,
/// `.manifest.json.legacy`) would make the staged directory open as the
/// other format, or collide with its descriptor: refused by name, in both
/// layouts, whichever member comes first.
#[test]
fn data_files_named_like_descriptors_are_refused() {
    use crate::support::archive::{make_artifact, SnapSpec};
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();

    // v0.6.3: a manifest whose upper is `snapshot.json`, holding a valid
    // checkpoint-state v0.6.14 descriptor.
    let checkpoint = fs::read(v0614("descriptors/09-checkpoint-disk-scope.json")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    make_artifact(scratch.path(), "a", &SnapSpec::default());
    let (mut m, _) = microsnap::manifest::Manifest::read_dir(&scratch.path().join("a")).unwrap();
    m.upper.file = "snapshot.json".into();
    m.upper.size_bytes = checkpoint.len() as u64;
    m.upper.integrity = None;
    for upper_first in [false, true] {
        let mut ms = vec![
            plain("legacy/manifest.json", &m.canonical_bytes()),
            plain("legacy/snapshot.json", &checkpoint),
        ];
        if upper_first {
            ms.reverse();
        }
        cases.push((
            format!("v0.6.3 upper snapshot.json (first: {upper_first})"),
            write_members(&ms),
        ));
    }

    // v0.6.14: `files/<h>/<name>` before (and after) `snapshots/<h>/snapshot.json`.
    let (chain, _) = crafted_base();
    let bare: Vec<Member> = chain
        .iter()
        .filter(|m| m.name != "archive.json")
        .cloned()
        .collect();
    let descriptor = bare[0].name.clone();
    let hex = descriptor.split('/').nth(1).unwrap().to_string();
    for name in ["snapshot.json", "manifest.json", ".manifest.json.legacy"] {
        for at in [0, 1] {
            let mut ms = bare.clone();
            ms.insert(at, plain(&format!("files/{hex}/{name}"), b"{}"));
            cases.push((format!("files/<h>/{name} at {at}"), write_members(&ms)));
        }
    }
    for (what, bytes) in cases {
        let e = refused(&what, &bytes);
        assert_eq!(e.code().name(), "invalid_archive", "{what}: {e}");
        assert!(e.to_string().contains("may not be named"), "{what}: {e}");
    }
}

/// Strings of `archive.json` are the archive's: an error shows them quoted
/// and escaped, so a newline or terminal escape cannot forge its text.
#[test]
fn inventory_strings_in_errors_are_escaped() {
    let (chain, _) = crafted_base();
    let mut ms = chain.clone();
    edit_inventory(&mut ms, |inv| {
        let mut e = inv.entries[0].clone();
        e.path = "snapshots/\n\u{1b}[2Kok".into();
        inv.entries.push(e);
        inv.entries
            .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    });
    let e = refused("a listed path with control characters", &write_members(&ms));
    let shown = e.to_string();
    assert!(shown.contains("inventoried entry is missing"), "{shown}");
    assert!(
        !shown.contains('\n') && !shown.contains('\u{1b}'),
        "{shown:?}"
    );
}

/// `archive.json/manifest.json` is not a v0.6.3 directory named
/// `archive.json` (§11.3: the layout's names are not legacy prefixes).
#[test]
fn the_inventory_name_is_not_a_snapshot_directory() {
    use crate::support::archive::{make_artifact, SnapSpec};
    let scratch = tempfile::tempdir().unwrap();
    let spec = SnapSpec {
        size: 4096,
        data: vec![(0, b"x".to_vec())],
        integrity: None,
        ..SnapSpec::default()
    };
    make_artifact(scratch.path(), "a", &spec);
    let dir = scratch.path().join("a");
    let ms = vec![
        plain(
            "archive.json/manifest.json",
            &fs::read(dir.join("manifest.json")).unwrap(),
        ),
        plain(
            "archive.json/upper.ext4",
            &fs::read(dir.join("upper.ext4")).unwrap(),
        ),
    ];
    let e = refused("archive.json/ as a v0.6.3 directory", &write_members(&ms));
    assert_eq!(e.code().name(), "invalid_archive", "{e}");
    assert!(e.to_string().contains("unsupported path"), "{e}");
}

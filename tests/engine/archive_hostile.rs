//! Replays the committed hostile corpus (`tests/fixtures/hostile/`): each
//! archive is refused with the expected code and a message naming the
//! offending entry, and afterwards the destination, the snapshots directory,
//! the images directory, staging and the index are exactly as before —
//! for the default destination and for an explicit one. The same holds for
//! a chain archive cut short at every entry boundary and at offsets between.
use crate::support::archive as archive_support;
use archive_support::corpus::{cases, COLLIDING_DIR};
use archive_support::truncation;
use archive_support::*;
use microsnap::archive;
use microsnap::progress::Monitor;
use std::fs;
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile")
}

#[test]
fn corpus_files_are_up_to_date() {
    let regenerate = std::env::var_os("MICROSNAP_REGENERATE_CORPUS").is_some();
    let cases = cases();
    assert!(
        cases.len() >= 30,
        "the issue asks for at least 30 hostile archives"
    );
    for case in &cases {
        let path = corpus_dir().join(case.file);
        if regenerate {
            fs::write(&path, &case.bytes).unwrap();
        } else {
            let committed = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(
                committed == case.bytes,
                "{} differs from the generator; regenerate",
                case.file
            );
        }
    }
    let mut on_disk: Vec<String> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('c'))
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = cases.iter().map(|c| c.file.to_string()).collect();
    expected.sort();
    assert_eq!(on_disk, expected, "stale or missing corpus files");
}

struct World {
    _tmp: tempfile::TempDir,
    home: microsnap::home::Home,
    explicit: PathBuf,
}

/// A home with one indexed snapshot, and an explicit destination; both hold
/// a *different* snapshot under the name the collision case uses.
fn world() -> World {
    let (tmp, home) = new_home();
    let explicit = tmp.path().join("explicit-dest");
    fs::create_dir_all(&explicit).unwrap();
    for dir in [home.snapshots_dir(), explicit.clone()] {
        make_artifact(&dir, "already-here", &SnapSpec::default());
        make_artifact(
            &dir,
            COLLIDING_DIR,
            &SnapSpec {
                label: "the local one",
                ..SnapSpec::default()
            },
        );
    }
    for name in ["already-here", COLLIDING_DIR] {
        let art = microsnap::snapshot::open_dir(&home.snapshots_dir().join(name)).unwrap();
        microsnap::artifact::index_artifact(&home, &art).unwrap();
    }
    World {
        _tmp: tmp,
        home,
        explicit,
    }
}

fn state(w: &World) -> Vec<Vec<String>> {
    let rows = index_rows(&w.home)
        .into_iter()
        .map(|(p, d)| format!("{p} {d}"))
        .collect();
    vec![tree(w.home.root()), tree(&w.explicit), rows]
}

#[test]
fn every_hostile_archive_is_refused_and_changes_nothing() {
    let mut failures = Vec::new();
    for case in cases() {
        let path = corpus_dir().join(case.file);
        for explicit in [false, true] {
            let w = world();
            let before = state(&w);
            let dest = explicit.then_some(w.explicit.as_path());
            let result = archive::import(&w.home, &path, dest, &Monitor::none());
            let where_ = if explicit {
                "explicit dest"
            } else {
                "default dest"
            };
            match result {
                Ok(r) => failures.push(format!(
                    "{} ({where_}): imported {}",
                    case.file, r.head.digest
                )),
                Err(e) => {
                    if e.code().name() != case.code || !e.to_string().contains(&case.says) {
                        failures.push(format!(
                            "{} ({where_}): got {} \"{e}\", want {} mentioning {:?}",
                            case.file,
                            e.code().name(),
                            case.code,
                            case.says
                        ));
                    }
                }
            }
            if state(&w) != before {
                failures.push(format!(
                    "{} ({where_}): the home, destination or index changed",
                    case.file
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What import says of a tar stream that stops without its end-of-archive
/// marker (two zero blocks): the only sign left when the cut falls on an
/// entry boundary.
const NO_END_MARKER: &str = "ends without its end-of-archive marker: truncated?";

/// A chain of three small snapshots exported with its parents: the plain tar
/// and the `.tar.zst`, and the head's digest.
fn chain_archive() -> (Vec<u8>, Vec<u8>, String) {
    let (t, src) = new_home();
    let dir = src.snapshots_dir();
    let spec = |seed: u8, parent, label| SnapSpec {
        size: 1 << 20,
        data: vec![
            (4096, pattern(seed, 8192)),
            (600 << 10, pattern(seed + 1, 3000)),
        ],
        parent,
        label,
        ..SnapSpec::default()
    };
    let root = make_artifact(&dir, "root", &spec(10, None, "root"));
    let mid = make_artifact(&dir, "mid", &spec(20, Some(&root), "mid"));
    let head = make_artifact(&dir, "head", &spec(30, Some(&mid), "head"));
    let mut out = Vec::new();
    for plain_tar in [true, false] {
        let path = t.path().join("chain.archive");
        let opts = archive::ExportOptions {
            with_parents: true,
            plain_tar,
            ..Default::default()
        };
        let report = archive::export(&src, "head", &path, &opts, &Monitor::none()).unwrap();
        assert_eq!(
            report.snapshots,
            vec![root.clone(), mid.clone(), head.clone()]
        );
        out.push(fs::read(&path).unwrap());
    }
    let zst = out.pop().unwrap();
    let tar = out.pop().unwrap();
    (tar, zst, head)
}

/// A download cut short must not install the part that arrived: cut at an
/// entry boundary, a chain archive is a valid-looking tar of its first
/// snapshots, and importing it would install an ancestor as the head.
#[test]
fn a_chain_archive_cut_short_anywhere_is_refused_and_changes_nothing() {
    let (tar, zst, head) = chain_archive();
    let layout = truncation::layout(&tar);
    assert_eq!(
        layout.entries.len(),
        6,
        "a manifest and an upper per snapshot"
    );
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("archive");

    // The uncut archives import: the harness itself is sound.
    for whole in [&tar, &zst] {
        fs::write(&path, whole).unwrap();
        let w = world();
        let report = archive::import(&w.home, &path, None, &Monitor::none()).unwrap();
        assert_eq!(report.head.digest, head);
    }

    let mut failures = Vec::new();
    let mut check = |what: String, bytes: &[u8], says: &str| {
        fs::write(&path, bytes).unwrap();
        for explicit in [false, true] {
            let w = world();
            let before = state(&w);
            let dest = explicit.then_some(w.explicit.as_path());
            let where_ = if explicit {
                "explicit dest"
            } else {
                "default dest"
            };
            match archive::import(&w.home, &path, dest, &Monitor::none()) {
                Ok(r) => failures.push(format!("{what} ({where_}): imported {}", r.head.digest)),
                Err(e) => {
                    if e.code().name() != "invalid_archive" || !e.to_string().contains(says) {
                        failures.push(format!(
                            "{what} ({where_}): got {} \"{e}\", want invalid_archive mentioning {says:?}",
                            e.code().name()
                        ));
                    }
                }
            }
            if state(&w) != before {
                failures.push(format!(
                    "{what} ({where_}): the home, destination or index changed"
                ));
            }
        }
    };
    let mut boundaries = 0;
    for cut in truncation::cuts(&layout) {
        boundaries += usize::from(cut.boundary);
        let part = &tar[..cut.at];
        let says = match (cut.at, cut.boundary) {
            (0, _) => "empty file",
            (_, true) => NO_END_MARKER,
            (_, false) => "truncated",
        };
        check(format!("plain tar cut {}", cut.what), part, says);
        // The same bytes in a complete zstd frame: the decoder ends cleanly,
        // so only the tar stream itself can tell that it was cut.
        let says = if cut.boundary {
            NO_END_MARKER
        } else {
            "truncated"
        };
        let complete_frame = zstd::encode_all(part, 3).unwrap();
        check(
            format!("complete .tar.zst of the tar cut {}", cut.what),
            &complete_frame,
            says,
        );
    }
    assert_eq!(boundaries, layout.entries.len() + 1);
    // A .tar.zst cut short: the decoder fails before the tar can end.
    for at in [zst.len() / 4, zst.len() / 2, zst.len() - 1] {
        let what = format!(".tar.zst cut at byte {at} of {}", zst.len());
        check(what, &zst[..at], "compressed stream");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

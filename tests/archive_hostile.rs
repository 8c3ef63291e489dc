//! Replays the committed hostile corpus (`tests/fixtures/hostile/`): each
//! archive is refused with the expected code and a message naming the
//! offending entry, and afterwards the destination, the snapshots directory,
//! the images directory, staging and the index are exactly as before —
//! for the default destination and for an explicit one.
mod archive_support;
mod vector_sets;
use archive_support::corpus::{cases, COLLIDING_DIR};
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

//! Db::open, migrations, transactions and concurrent writers.
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use crate::db::index::{self, IndexRow};
use crate::db::{Db, SCHEMA_VERSION};
use crate::error::{Error, ErrorCode};

fn row(path: &str, digest: &str) -> IndexRow {
    IndexRow {
        artifact_path: path.to_string(),
        digest: digest.to_string(),
        name: Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        parent_digest: None,
        image_ref: "alpine:3.20".to_string(),
        image_manifest_digest: "sha256:aaaa".to_string(),
        format: "raw".to_string(),
        fstype: "ext4".to_string(),
        size_bytes: Some(4 << 30),
        created_at: "2025-01-02T03:04:05.000000006+00:00".to_string(),
        created_at_unix_nanos: 1_735_787_045_000_000_006,
        indexed_at_unix_nanos: 1,
        labels: BTreeMap::new(),
        integrity_algorithm: None,
        artifact_format: "msb-v0.6.3".to_string(),
    }
}

fn user_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn schema_objects(db: &Db) -> Vec<(String, String)> {
    db.read(|conn| {
        let mut stmt = conn.prepare(
            "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    })
    .unwrap()
}

#[test]
fn fresh_database_gets_the_full_schema_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("microsnap.db");
    let db = Db::open(&path).unwrap();
    assert_eq!(db.path(), path);
    let objects = schema_objects(&db);
    let names: Vec<&str> = objects.iter().map(|(_, n)| n.as_str()).collect();
    for expected in [
        "sandboxes",
        "snapshot_index",
        "snapshot_index_digest",
        "snapshot_index_name",
        "snapshot_index_parent_digest",
        "snapshot_index_image_manifest_digest",
        "snapshot_index_created_at",
    ] {
        assert!(names.contains(&expected), "missing {expected} in {names:?}");
    }
    drop(db);
    assert_eq!(user_version(&path), i64::from(SCHEMA_VERSION));
}

#[test]
fn reopening_keeps_data_and_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("microsnap.db");
    let first = Db::open(&path).unwrap();
    first
        .write(|tx| index::upsert(tx, &row("/snaps/a", "sha256:01")))
        .unwrap();
    let objects_before = schema_objects(&first);
    drop(first);

    // Re-running migration 1 would fail (CREATE TABLE of an existing table)
    // or, if it somehow succeeded, could not keep the row.
    for _ in 0..3 {
        let again = Db::open(&path).unwrap();
        assert_eq!(schema_objects(&again), objects_before);
        let found = again
            .read(|conn| index::find_by_path(conn, "/snaps/a"))
            .unwrap();
        assert_eq!(found, Some(row("/snaps/a", "sha256:01")));
    }
    assert_eq!(user_version(&path), i64::from(SCHEMA_VERSION));
}

#[test]
fn newer_schema_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("microsnap.db");
    let future = i64::from(SCHEMA_VERSION) + 98;
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", future).unwrap();
    }
    let err = Db::open(&path).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unsupported, "{err}");
    let message = err.to_string();
    assert!(message.contains(&future.to_string()), "{message}");
    assert!(message.contains(&SCHEMA_VERSION.to_string()), "{message}");
    assert!(message.contains("microsnap.db"), "{message}");

    // Nothing was changed: still the version we wrote, still not WAL.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, future);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_ne!(mode.to_lowercase(), "wal");
}

#[test]
fn connection_settings_are_wal_normal_foreign_keys_and_busy_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("microsnap.db");
    let db = Db::open(&path).unwrap();
    let (mode, synchronous, foreign_keys, busy_timeout) = db
        .read(|conn| {
            let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
            let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
            let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
            let busy: i64 = conn.pragma_query_value(None, "busy_timeout", |r| r.get(0))?;
            Ok((mode, sync, fk, busy))
        })
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(synchronous, 1, "NORMAL is 1");
    assert_eq!(foreign_keys, 1);
    assert_eq!(busy_timeout, 10_000);
    // WAL is a property of the file: a plain connection sees it too.
    let plain = rusqlite::Connection::open(&path).unwrap();
    let mode: String = plain
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn open_on_a_file_that_is_not_a_database_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("microsnap.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let err = Db::open(&path).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io, "{err}");
    assert!(err.to_string().contains("microsnap.db"), "{err}");
}

#[test]
fn write_commits_on_ok_and_rolls_back_on_err() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("microsnap.db")).unwrap();

    let value = db
        .write(|tx| {
            index::upsert(tx, &row("/snaps/kept", "sha256:01"))?;
            Ok(7)
        })
        .unwrap();
    assert_eq!(value, 7);

    let err = db
        .write(|tx| {
            index::upsert(tx, &row("/snaps/discarded", "sha256:02"))?;
            index::remove_by_path(tx, "/snaps/kept")?;
            Err::<(), _>(Error::InvalidArgument("changed my mind".into()))
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(ref m) if m == "changed my mind"));

    let paths = db.read(index::all_paths).unwrap();
    assert_eq!(paths, vec!["/snaps/kept".to_string()]);
}

#[test]
fn a_panic_inside_write_rolls_back_and_the_handle_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("microsnap.db")).unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        db.write(|tx| {
            index::upsert(tx, &row("/snaps/never", "sha256:03"))?;
            panic!("boom inside a write");
            #[allow(unreachable_code)]
            Ok(())
        })
    }));
    assert!(outcome.is_err(), "the panic propagates to the caller");

    // The mutex was poisoned by the panic; the next calls recover it.
    assert_eq!(db.read(index::all_paths).unwrap(), Vec::<String>::new());
    db.write(|tx| index::upsert(tx, &row("/snaps/after", "sha256:04")))
        .unwrap();
    assert_eq!(
        db.read(index::all_paths).unwrap(),
        vec!["/snaps/after".to_string()]
    );
}

#[test]
fn read_sees_one_consistent_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("microsnap.db");
    let reader = Db::open(&path).unwrap();
    let writer = Db::open(&path).unwrap();
    reader
        .write(|tx| index::upsert(tx, &row("/snaps/one", "sha256:01")))
        .unwrap();
    let (before, after) = reader
        .read(|conn| {
            let before = index::all_paths(conn)?;
            // Another connection commits between our two queries...
            writer.write(|tx| index::upsert(tx, &row("/snaps/two", "sha256:02")))?;
            let after = index::all_paths(conn)?;
            Ok((before, after))
        })
        .unwrap();
    // ...and we do not see it until our read transaction ends.
    assert_eq!(before, after);
    assert_eq!(reader.read(index::all_paths).unwrap().len(), 2);
}

#[test]
fn concurrent_writers_on_two_handles_all_succeed() {
    const PER_THREAD: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("microsnap.db");
    // Two handles (two connections, as two processes would have), each shared
    // by two threads: contention both on a handle's mutex and on SQLite's lock.
    let handles = [
        Arc::new(Db::open(&path).unwrap()),
        Arc::new(Db::open(&path).unwrap()),
    ];
    let barrier = Arc::new(Barrier::new(4));
    let mut threads = Vec::new();
    for worker in 0..4 {
        let db = Arc::clone(&handles[worker % 2]);
        let barrier = Arc::clone(&barrier);
        threads.push(thread::spawn(move || {
            barrier.wait();
            for i in 0..PER_THREAD {
                let path = format!("/snaps/w{worker}/s{i}");
                let digest = format!("sha256:{worker:02}{i:04}");
                db.write(|tx| {
                    // Read-then-write inside one transaction: with a deferred
                    // BEGIN this is where SQLITE_BUSY would strike.
                    let seen = index::find_by_path(tx, &path)?;
                    assert!(seen.is_none());
                    index::upsert(tx, &row(&path, &digest))
                })
                .unwrap_or_else(|e| panic!("worker {worker} write {i}: {e}"));
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    for db in &handles {
        assert_eq!(db.read(index::all_paths).unwrap().len(), 4 * PER_THREAD);
    }
}

#[test]
fn concurrent_first_opens_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = Arc::new(dir.path().join("microsnap.db"));
    let barrier = Arc::new(Barrier::new(6));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let path = Arc::clone(&path);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                Db::open(&path).map(|_| ())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(user_version(&path), i64::from(SCHEMA_VERSION));
}

/// Set by `concurrent_writers_in_two_processes_all_succeed` for the child
/// processes it starts (this same test binary, running only the helper below).
const CHILD_DB_ENV: &str = "MICROSNAP_TEST_CHILD_DB";
const CHILD_TAG_ENV: &str = "MICROSNAP_TEST_CHILD_TAG";
const CROSS_PROCESS_WRITES: usize = 200;

/// Not a test on its own: the body each child process runs.
#[test]
#[ignore = "helper run by concurrent_writers_in_two_processes_all_succeed"]
fn cross_process_writer_child() {
    let (Some(path), Some(tag)) = (
        std::env::var_os(CHILD_DB_ENV),
        std::env::var_os(CHILD_TAG_ENV),
    ) else {
        return;
    };
    let tag = tag.to_string_lossy().into_owned();
    let db = Db::open(Path::new(&path)).unwrap();
    for i in 0..CROSS_PROCESS_WRITES {
        let path = format!("/snaps/{tag}/s{i}");
        db.write(|tx| {
            let _ = index::find_by_path(tx, &path)?;
            index::upsert(tx, &row(&path, "sha256:cp"))
        })
        .unwrap_or_else(|e| panic!("child {tag} write {i}: {e}"));
    }
}

#[test]
fn concurrent_writers_in_two_processes_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("microsnap.db");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ["p1", "p2"]
        .iter()
        .map(|tag| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "db::open_tests::cross_process_writer_child",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_DB_ENV, &path)
                .env(CHILD_TAG_ENV, tag)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (tag, child) in ["p1", "p2"].iter().zip(children) {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child {tag} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "child {tag} did not run the helper: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(
        db.read(index::all_paths).unwrap().len(),
        2 * CROSS_PROCESS_WRITES
    );
}

#[test]
fn opening_an_up_to_date_database_does_not_need_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("microsnap.db");
    let holder = Arc::new(Db::open(&path).unwrap());
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holding = {
        let holder = Arc::clone(&holder);
        thread::spawn(move || {
            holder.write(|_tx| {
                locked_tx.send(()).unwrap();
                // Hold the write lock until the main thread has opened (or
                // longer than the busy timeout, if open wrongly waits for it).
                let _ = release_rx.recv_timeout(std::time::Duration::from_secs(15));
                Ok(())
            })
        })
    };
    locked_rx.recv().unwrap();
    // If open took a write lock it would wait out the 10 s busy timeout and
    // fail with "database is locked".
    let opened = Db::open(&path);
    release_tx.send(()).unwrap();
    holding.join().unwrap().unwrap();
    let db = opened.unwrap();
    assert!(db.read(index::all_paths).unwrap().is_empty());
}

/// Many first opens of one new file at once: SQLite does not run the busy
/// handler for every lock the switch to WAL needs (it needs the file to
/// itself, and a connection that read the file in rollback mode must then
/// open the WAL another connection just created), so such opens failed now
/// and then with "database is locked" (seen as a flaky two-process test).
/// Every one must wait and succeed.
#[test]
fn simultaneous_first_opens_all_succeed() {
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("microsnap.db"));
        let barrier = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (Arc::clone(&path), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    Db::open(&path).map(drop)
                })
            })
            .collect();
        for t in threads {
            if let Err(e) = t.join().unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}

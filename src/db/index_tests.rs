//! The snapshot_index table.
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use crate::db::index::{self, IndexRow};
use crate::db::Db;
use crate::error::ErrorCode;

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("microsnap.db")).unwrap();
    (dir, db)
}

fn row(path: &str, digest: &str, created_nanos: i64) -> IndexRow {
    IndexRow {
        artifact_path: path.to_string(),
        digest: digest.to_string(),
        name: path.rsplit('/').next().map(str::to_string),
        parent_digest: None,
        image_ref: "alpine:3.20".to_string(),
        image_manifest_digest: "sha256:1111".to_string(),
        format: "raw".to_string(),
        fstype: "ext4".to_string(),
        size_bytes: Some(1 << 30),
        created_at: format!("created-{created_nanos}"),
        created_at_unix_nanos: created_nanos,
        indexed_at_unix_nanos: 100,
        labels: BTreeMap::new(),
        integrity_algorithm: Some("microsnap-merkle-sha256-v1".to_string()),
        artifact_format: "msb-v0.6.3".to_string(),
    }
}

fn child(path: &str, digest: &str, parent: &str) -> IndexRow {
    IndexRow {
        parent_digest: Some(parent.to_string()),
        ..row(path, digest, 5)
    }
}

#[test]
fn upsert_then_find_returns_every_field() {
    let (_dir, db) = open();
    let mut full = row("/home/u/.microsnap/snapshots/base", "sha256:aa", 42);
    full.parent_digest = Some("sha256:parent".into());
    full.labels = BTreeMap::from([
        ("team".to_string(), "infra".to_string()),
        ("quote\"and\\slash".to_string(), "ünïcode ✓".to_string()),
    ]);
    full.size_bytes = None;
    full.integrity_algorithm = None;
    full.indexed_at_unix_nanos = -7;
    db.write(|tx| index::upsert(tx, &full)).unwrap();

    let found = db
        .read(|c| index::find_by_path(c, "/home/u/.microsnap/snapshots/base"))
        .unwrap();
    assert_eq!(found, Some(full.clone()));
    assert_eq!(
        db.read(|c| index::find_by_digest(c, "sha256:aa")).unwrap(),
        vec![full]
    );
    assert_eq!(db.read(|c| index::find_by_path(c, "/nope")).unwrap(), None);
    assert!(db
        .read(|c| index::find_by_digest(c, "sha256:zz"))
        .unwrap()
        .is_empty());
}

#[test]
fn upsert_replaces_the_row_at_the_same_path() {
    let (_dir, db) = open();
    db.write(|tx| index::upsert(tx, &row("/s/a", "sha256:old", 1)))
        .unwrap();
    db.write(|tx| index::upsert(tx, &row("/s/a", "sha256:new", 2)))
        .unwrap();
    let all = db.read(index::list).unwrap();
    assert_eq!(all, vec![row("/s/a", "sha256:new", 2)]);
    assert!(db
        .read(|c| index::find_by_digest(c, "sha256:old"))
        .unwrap()
        .is_empty());
}

#[test]
fn same_name_in_two_directories_coexist() {
    let (_dir, db) = open();
    let a = row("/one/foo", "sha256:01", 1);
    let b = IndexRow {
        indexed_at_unix_nanos: 200,
        ..row("/two/foo", "sha256:02", 2)
    };
    db.write(|tx| {
        index::upsert(tx, &a)?;
        index::upsert(tx, &b)
    })
    .unwrap();
    assert_eq!(db.read(index::list).unwrap().len(), 2);
}

#[test]
fn same_digest_at_two_paths_newest_indexed_first() {
    let (_dir, db) = open();
    let older = IndexRow {
        indexed_at_unix_nanos: 10,
        ..row("/a/copy", "sha256:same", 1)
    };
    let newer = IndexRow {
        indexed_at_unix_nanos: 20,
        ..row("/b/copy", "sha256:same", 1)
    };
    db.write(|tx| {
        index::upsert(tx, &older)?;
        index::upsert(tx, &newer)
    })
    .unwrap();
    assert_eq!(
        db.read(|c| index::find_by_digest(c, "sha256:same"))
            .unwrap(),
        vec![newer, older]
    );
}

#[test]
fn sizes_round_trip_across_the_whole_u64_range() {
    let (_dir, db) = open();
    let sizes = [0, 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX];
    db.write(|tx| {
        for (i, size) in sizes.iter().enumerate() {
            let mut r = row(&format!("/s/{i}"), "sha256:ab", 1);
            r.size_bytes = Some(*size);
            index::upsert(tx, &r)?;
        }
        Ok(())
    })
    .unwrap();
    for (i, size) in sizes.iter().enumerate() {
        let found = db
            .read(|c| index::find_by_path(c, &format!("/s/{i}")))
            .unwrap()
            .unwrap();
        assert_eq!(found.size_bytes, Some(*size), "row {i}");
    }
}

#[test]
fn list_orders_newest_created_first_then_by_path() {
    let (_dir, db) = open();
    let rows = [
        row("/s/b", "sha256:1", 10),
        row("/s/a", "sha256:2", 10),
        row("/s/c", "sha256:3", 30),
        row("/s/d", "sha256:4", -5),
    ];
    db.write(|tx| rows.iter().try_for_each(|r| index::upsert(tx, r)))
        .unwrap();
    let paths: Vec<String> = db
        .read(index::list)
        .unwrap()
        .into_iter()
        .map(|r| r.artifact_path)
        .collect();
    assert_eq!(paths, ["/s/c", "/s/a", "/s/b", "/s/d"]);
}

#[test]
fn remove_by_path_reports_whether_a_row_was_there() {
    let (_dir, db) = open();
    db.write(|tx| index::upsert(tx, &row("/s/a", "sha256:1", 1)))
        .unwrap();
    assert!(db.write(|tx| index::remove_by_path(tx, "/s/a")).unwrap());
    assert!(!db.write(|tx| index::remove_by_path(tx, "/s/a")).unwrap());
    assert!(db.read(index::list).unwrap().is_empty());
}

#[test]
fn retain_paths_drops_the_rejected_rows_and_names_them() {
    let (_dir, db) = open();
    db.write(|tx| {
        for p in ["/s/keep1", "/s/gone1", "/s/keep2", "/s/gone2"] {
            index::upsert(tx, &row(p, "sha256:1", 1))?;
        }
        Ok(())
    })
    .unwrap();
    let removed = db
        .write(|tx| index::retain_paths(tx, |p| p.contains("keep")))
        .unwrap();
    assert_eq!(removed, ["/s/gone1", "/s/gone2"]);
    assert_eq!(db.read(index::all_paths).unwrap(), ["/s/keep1", "/s/keep2"]);
}

#[test]
fn child_counts_count_distinct_child_snapshots() {
    let (_dir, db) = open();
    db.write(|tx| {
        index::upsert(tx, &row("/s/root", "sha256:root", 1))?;
        // Two different children of root, one of them stored at two paths.
        index::upsert(tx, &child("/s/c1", "sha256:c1", "sha256:root"))?;
        index::upsert(tx, &child("/elsewhere/c1-copy", "sha256:c1", "sha256:root"))?;
        index::upsert(tx, &child("/s/c2", "sha256:c2", "sha256:root"))?;
        // A grandchild.
        index::upsert(tx, &child("/s/g1", "sha256:g1", "sha256:c1"))
    })
    .unwrap();

    let count = |d: &str| db.read(|c| index::child_count(c, d)).unwrap();
    assert_eq!(count("sha256:root"), 2);
    assert_eq!(count("sha256:c1"), 1);
    assert_eq!(count("sha256:c2"), 0);
    assert_eq!(count("sha256:unknown"), 0);

    let all = db.read(index::child_counts).unwrap();
    assert_eq!(
        all,
        HashMap::from([("sha256:root".to_string(), 2), ("sha256:c1".to_string(), 1)])
    );

    // Counts are derived, so removing a child updates them with no bookkeeping.
    db.write(|tx| index::remove_by_path(tx, "/s/c2")).unwrap();
    assert_eq!(count("sha256:root"), 1);
}

#[test]
fn damaged_labels_json_is_an_io_error_not_a_panic() {
    let (_dir, db) = open();
    db.write(|tx| index::upsert(tx, &row("/s/a", "sha256:1", 1)))
        .unwrap();
    db.write(|tx| {
        tx.execute("UPDATE snapshot_index SET labels_json = '[1,2'", [])?;
        Ok(())
    })
    .unwrap();
    let err = db.read(index::list).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io, "{err}");
    let err = db.read(|c| index::find_by_path(c, "/s/a")).unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io, "{err}");
}

#[test]
fn listing_100k_rows_with_child_counts() {
    const ROWS: usize = 100_000;
    let (_dir, db) = open();
    let insert_started = Instant::now();
    db.write(|tx| {
        for i in 0..ROWS {
            let mut r = row(
                &format!("/home/u/.microsnap/snapshots/snap-{i:06}"),
                &format!("sha256:{i:064x}"),
                i as i64,
            );
            // Every tenth row is a child of the row before it, some carry labels.
            if i % 10 == 1 {
                r.parent_digest = Some(format!("sha256:{:064x}", i - 1));
            }
            if i % 7 == 0 {
                r.labels.insert("n".to_string(), i.to_string());
            }
            index::upsert(tx, &r)?;
        }
        Ok(())
    })
    .unwrap();
    let inserted = insert_started.elapsed();

    let list_started = Instant::now();
    let (rows, counts) = db
        .read(|c| Ok((index::list(c)?, index::child_counts(c)?)))
        .unwrap();
    let listed = list_started.elapsed();
    println!("upserted {ROWS} rows in {inserted:?}; list + child_counts in {listed:?}");

    assert_eq!(rows.len(), ROWS);
    assert_eq!(
        rows[0].created_at_unix_nanos,
        ROWS as i64 - 1,
        "newest first"
    );
    assert_eq!(rows[ROWS - 1].created_at_unix_nanos, 0);
    assert_eq!(counts.len(), ROWS / 10);
    assert!(counts.values().all(|&n| n == 1));
    let labelled = rows.iter().filter(|r| !r.labels.is_empty()).count();
    assert_eq!(labelled, ROWS.div_ceil(7));
}

//! The sandboxes table.
use crate::db::sandbox_table::{self, SandboxRow, SandboxStatus};
use crate::db::Db;
use crate::error::{Error, ErrorCode};

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("microsnap.db")).unwrap();
    (dir, db)
}

fn sandbox(name: &str) -> SandboxRow {
    SandboxRow {
        name: name.to_string(),
        status: SandboxStatus::Created,
        image_ref: "alpine:3.20".to_string(),
        image_manifest_digest: "sha256:beef".to_string(),
        upper_file: "upper.ext4".to_string(),
        format: "raw".to_string(),
        fstype: "ext4".to_string(),
        size_bytes: 4 << 30,
        from_snapshot: None,
        created_at: "2025-01-02T03:04:05.123456789+00:00".to_string(),
        created_at_unix_nanos: 1_735_787_045_123_456_789,
    }
}

#[test]
fn status_strings_round_trip_and_unknown_ones_are_refused() {
    for status in [
        SandboxStatus::Created,
        SandboxStatus::Running,
        SandboxStatus::Stopped,
    ] {
        assert_eq!(status.as_str().parse::<SandboxStatus>().unwrap(), status);
        assert_eq!(status.to_string(), status.as_str());
    }
    let err = "crashed".parse::<SandboxStatus>().unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidArgument);
    assert!(err.to_string().contains("crashed"), "{err}");
}

#[test]
fn insert_get_list_set_status_delete() {
    let (_dir, db) = open();
    let mut from_snap = sandbox("b-from-snapshot");
    from_snap.from_snapshot = Some("sha256:parent".to_string());
    from_snap.size_bytes = u64::MAX;
    from_snap.upper_file = "upper.qcow2".to_string();
    from_snap.format = "qcow2".to_string();
    let fresh = sandbox("a-fresh");

    db.write(|tx| {
        sandbox_table::insert(tx, &from_snap)?;
        sandbox_table::insert(tx, &fresh)
    })
    .unwrap();

    assert_eq!(
        db.read(|c| sandbox_table::get(c, "b-from-snapshot"))
            .unwrap(),
        Some(from_snap.clone())
    );
    assert_eq!(db.read(|c| sandbox_table::get(c, "nope")).unwrap(), None);
    // Listed by name.
    assert_eq!(
        db.read(sandbox_table::list).unwrap(),
        vec![fresh.clone(), from_snap.clone()]
    );

    db.write(|tx| sandbox_table::set_status(tx, "a-fresh", SandboxStatus::Running))
        .unwrap();
    let got = db
        .read(|c| sandbox_table::get(c, "a-fresh"))
        .unwrap()
        .unwrap();
    assert_eq!(got.status, SandboxStatus::Running);
    assert_eq!(
        got,
        SandboxRow {
            status: SandboxStatus::Running,
            ..fresh.clone()
        },
        "only the status changed"
    );
    db.write(|tx| sandbox_table::set_status(tx, "a-fresh", SandboxStatus::Stopped))
        .unwrap();
    assert_eq!(
        db.read(|c| sandbox_table::get(c, "a-fresh"))
            .unwrap()
            .unwrap()
            .status,
        SandboxStatus::Stopped
    );

    assert!(db.write(|tx| sandbox_table::delete(tx, "a-fresh")).unwrap());
    assert!(!db.write(|tx| sandbox_table::delete(tx, "a-fresh")).unwrap());
    assert_eq!(db.read(sandbox_table::list).unwrap(), vec![from_snap]);
}

#[test]
fn duplicate_name_is_already_exists_and_keeps_the_original() {
    let (_dir, db) = open();
    let original = sandbox("web");
    db.write(|tx| sandbox_table::insert(tx, &original)).unwrap();

    let mut impostor = sandbox("web");
    impostor.image_ref = "debian:12".to_string();
    let err = db
        .write(|tx| sandbox_table::insert(tx, &impostor))
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert!(err.to_string().contains("web"), "{err}");

    assert_eq!(
        db.read(|c| sandbox_table::get(c, "web")).unwrap(),
        Some(original)
    );
}

#[test]
fn set_status_of_an_unknown_sandbox_is_sandbox_not_found() {
    let (_dir, db) = open();
    let err = db
        .write(|tx| sandbox_table::set_status(tx, "ghost", SandboxStatus::Running))
        .unwrap_err();
    assert!(
        matches!(err, Error::SandboxNotFound(ref n) if n == "ghost"),
        "{err:?}"
    );
}

#[test]
fn a_status_the_schema_does_not_know_cannot_be_stored_or_read_as_valid() {
    let (_dir, db) = open();
    db.write(|tx| sandbox_table::insert(tx, &sandbox("s")))
        .unwrap();
    // The CHECK constraint keeps other writers honest...
    let err = db
        .write(|tx| {
            tx.execute(
                "UPDATE sandboxes SET status = 'exploded' WHERE name = 's'",
                [],
            )?;
            Ok(())
        })
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::Io, "{err}");
    assert!(err.to_string().to_lowercase().contains("check"), "{err}");
    // ...and the record is unchanged.
    assert_eq!(
        db.read(|c| sandbox_table::get(c, "s"))
            .unwrap()
            .unwrap()
            .status,
        SandboxStatus::Created
    );

    // A row damaged anyway (here with the check switched off) reads back as
    // an error naming the bad value, not as a panic or a made-up status.
    db.write(|tx| {
        tx.execute_batch(
            "PRAGMA ignore_check_constraints = ON; \
             UPDATE sandboxes SET status = 'exploded' WHERE name = 's';",
        )?;
        Ok(())
    })
    .unwrap();
    for err in [
        db.read(|c| sandbox_table::get(c, "s")).unwrap_err(),
        db.read(sandbox_table::list).unwrap_err(),
    ] {
        assert_eq!(err.code(), ErrorCode::Io, "{err}");
        assert!(err.to_string().contains("exploded"), "{err}");
    }
}

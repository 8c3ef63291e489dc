//! The SQLite file `<home>/microsnap.db`: connection setup, schema migrations,
//! and the read/write transaction helpers every table module goes through.
//!
//! The database is a cache and a record store: the snapshot index can always be
//! rebuilt from the artifact directories (Reindex); the sandbox table is the
//! only copy of the sandbox records.
//!
//! Concurrency: one [`Db`] holds one connection behind a mutex, so calls on the
//! same handle are serialized. Several handles (in one process or many) share
//! the file through SQLite's own locking: WAL lets readers run beside a writer,
//! and [`Db::write`] begins its transaction IMMEDIATE so writers queue on the
//! busy timeout instead of failing half-way through.
//!
//! Do not call `read`/`write` again from inside their closures: the connection
//! mutex is not re-entrant.
pub mod index;
pub mod sandbox_table;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// How long a connection waits for another connection's lock before giving up
/// with SQLITE_BUSY. Writes are short (a few rows), so ten seconds only runs
/// out when something is wrong (a stuck process holding a write transaction).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Schema migrations, in order. Migration `i` brings the database from
/// `user_version = i` to `user_version = i + 1`, inside one transaction.
///
/// Never edit a migration once it has shipped: databases in the field have
/// already run it. Append a new one instead.
const MIGRATIONS: &[&str] = &[
    // 1: the snapshot index and the sandbox table.
    //
    // `NOT NULL` on the TEXT primary keys: SQLite (for historical reasons)
    // otherwise accepts NULL in a non-INTEGER primary key.
    //
    // `snapshot_index` is keyed by the artifact's canonical absolute path, not
    // by name or digest: two artifacts named `foo` in different directories,
    // or two copies of one digest, are separate rows. Child counts are not
    // stored; they are derived with COUNT(DISTINCT digest) so they cannot go
    // stale.
    //
    // Two indexes carry a second column so the hot queries never sort:
    // (parent_digest, digest) answers the COUNT(DISTINCT digest) child counts
    // from the index alone, and (created_at_unix_nanos DESC, artifact_path)
    // is exactly the listing order.
    //
    // `size_bytes` columns hold a u64 as its i64 bit pattern (see
    // `u64_to_sql`), so values above i64::MAX round-trip; do not ORDER BY or
    // SUM them in SQL.
    r#"
CREATE TABLE snapshot_index (
    artifact_path          TEXT PRIMARY KEY NOT NULL,
    digest                 TEXT NOT NULL,
    name                   TEXT,
    parent_digest          TEXT,
    image_ref              TEXT NOT NULL,
    image_manifest_digest  TEXT NOT NULL,
    format                 TEXT NOT NULL,
    fstype                 TEXT NOT NULL,
    size_bytes             INTEGER,
    created_at             TEXT NOT NULL,
    created_at_unix_nanos  INTEGER NOT NULL,
    indexed_at_unix_nanos  INTEGER NOT NULL,
    labels_json            TEXT NOT NULL DEFAULT '{}',
    integrity_algorithm    TEXT
);
CREATE INDEX snapshot_index_digest ON snapshot_index(digest);
CREATE INDEX snapshot_index_name ON snapshot_index(name);
CREATE INDEX snapshot_index_parent_digest ON snapshot_index(parent_digest, digest);
CREATE INDEX snapshot_index_image_manifest_digest ON snapshot_index(image_manifest_digest);
CREATE INDEX snapshot_index_created_at ON snapshot_index(created_at_unix_nanos DESC, artifact_path);

CREATE TABLE sandboxes (
    name                   TEXT PRIMARY KEY NOT NULL,
    status                 TEXT NOT NULL CHECK (status IN ('created', 'running', 'stopped')),
    image_ref              TEXT NOT NULL,
    image_manifest_digest  TEXT NOT NULL,
    upper_file             TEXT NOT NULL,
    format                 TEXT NOT NULL,
    fstype                 TEXT NOT NULL,
    size_bytes             INTEGER NOT NULL,
    from_snapshot          TEXT,
    created_at             TEXT NOT NULL,
    created_at_unix_nanos  INTEGER NOT NULL
);
"#,
    // 2: which on-disk format each artifact's descriptor is in
    // (`msb-v0.6.3` manifest.json, `msb-v0.6.14` snapshot.json). Rows of
    // version 1 were all v0.6.3: the only format that version read.
    r#"
ALTER TABLE snapshot_index ADD COLUMN artifact_format TEXT NOT NULL DEFAULT 'msb-v0.6.3';
"#,
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// An open `microsnap.db`. `Send + Sync`: share it behind an `Arc`.
pub struct Db {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Open (creating if needed) the database at `path`, switch it to WAL,
    /// and bring its schema up to [`SCHEMA_VERSION`].
    ///
    /// A database written by a newer microsnap (a higher `user_version`) is
    /// refused with [`Error::Unsupported`] rather than touched.
    pub fn open(path: &Path) -> Result<Db> {
        let conn = Connection::open(path).map_err(|e| sqlite_error("open", path, e))?;
        // The busy timeout comes first so that everything below, even the
        // journal-mode switch (which needs a lock), waits for other
        // connections instead of failing at once.
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| sqlite_error("set busy timeout on", path, e))?;
        // Refuse a newer schema before changing anything in the file.
        let version = user_version(&conn, path)?;
        check_version_known(version, path)?;
        configure(&conn, path)?;
        if version < SCHEMA_VERSION {
            // Only then take the write lock: an up-to-date database opens
            // without writing anything.
            migrate(&conn, path)?;
        }
        Ok(Db {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// The file this handle was opened on (only the tests ask).
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `f` inside a read (DEFERRED) transaction, so several queries see
    /// one consistent snapshot of the database. `f` should only read: a write
    /// here cannot queue on the busy timeout the way [`Db::write`] does.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(|e| sqlite_error("begin read transaction on", &self.path, e))?;
        finish(tx, |tx| f(tx), &self.path)
    }

    /// Run `f` inside a write transaction: committed when `f` returns `Ok`,
    /// rolled back when it returns `Err` (or panics).
    ///
    /// The transaction is BEGIN IMMEDIATE: it takes the write lock up front,
    /// so a concurrent writer in another process makes us wait (up to the
    /// busy timeout) before anything runs, instead of failing with
    /// SQLITE_BUSY half-way through when a read lock cannot be upgraded.
    pub fn write<T>(&self, f: impl FnOnce(&Transaction) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sqlite_error("begin write transaction on", &self.path, e))?;
        finish(tx, f, &self.path)
    }

    /// Lock the connection. A mutex poisoned by a panic in some earlier
    /// closure is recovered, not propagated: the panic unwound through the
    /// `Transaction`, whose drop rolled it back, so the connection is sound.
    /// Should a transaction still be open anyway, it is rolled back here so
    /// the next caller starts clean.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        match self.conn.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                self.conn.clear_poison();
                let guard = poisoned.into_inner();
                if !guard.is_autocommit() {
                    // Best effort: if even ROLLBACK fails, the next BEGIN will
                    // report the problem as an ordinary error.
                    let _ = guard.execute_batch("ROLLBACK");
                }
                guard
            }
        }
    }
}

/// Run `f` in `tx`, then commit on `Ok` or roll back on `Err`.
fn finish<T, F>(tx: Transaction<'_>, f: F, path: &Path) -> Result<T>
where
    F: FnOnce(&Transaction) -> Result<T>,
{
    match f(&tx) {
        Ok(value) => {
            tx.commit()
                .map_err(|e| sqlite_error("commit transaction on", path, e))?;
            Ok(value)
        }
        Err(err) => {
            // The caller's error is the one worth reporting; a failed
            // rollback leaves SQLite to roll back when the tx is dropped.
            let _ = tx.rollback();
            Err(err)
        }
    }
}

/// Switch the file to WAL and return the journal mode it is in now.
///
/// WAL is a property of the file, so once one connection has switched it
/// there is nothing to do: the mode is read first, which takes no write
/// lock. The switch itself needs the file to itself, and SQLite does not
/// run the busy handler for every lock it takes on the way (nor for a
/// connection that read the file in rollback mode and must now open the
/// WAL another one just created): simultaneous first opens of a new home
/// failed now and then with "database is locked". So a busy switch is
/// retried, with backoff, within the same [`BUSY_TIMEOUT`].
fn switch_to_wal(conn: &Connection, path: &Path) -> Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        let attempt = conn
            .pragma_query_value(None, "journal_mode", |row| row.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    Ok(mode)
                } else {
                    conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                }
            });
        match attempt {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            other => return other.map_err(|e| sqlite_error("enable WAL on", path, e)),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Per-connection settings (journal mode, durability, foreign keys).
fn configure(conn: &Connection, path: &Path) -> Result<()> {
    let mode = switch_to_wal(conn, path)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Unsupported(format!(
            "{}: SQLite could not enable WAL journal mode (it stayed in {mode:?}); \
             is the home on a filesystem without shared-memory support?",
            path.display()
        )));
    }

    // WAL + synchronous=NORMAL: a commit is not fsynced, only the checkpoints
    // are. Every committed transaction survives a crash of the process (the
    // WAL is in the OS page cache); only an OS crash or power loss can lose
    // the last few commits, never corrupt the file. That is what we need:
    // the index is rebuildable by Reindex, and a sandbox record lost to a
    // power cut is the same as that call not having happened; an fsync per
    // commit would cost far more on every write than this risk is worth.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| sqlite_error("set synchronous=NORMAL on", path, e))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| sqlite_error("enable foreign keys on", path, e))?;
    Ok(())
}

/// Bring the schema up to [`SCHEMA_VERSION`], one transaction per migration.
///
/// The version is re-read inside each IMMEDIATE transaction: two processes
/// opening a fresh database at once both see version 0 first, but only the
/// one that gets the write lock first migrates; the other then sees the new
/// version and skips.
fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let from = index as u32;
        let to = from + 1;
        let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
            .map_err(|e| sqlite_error("begin migration transaction on", path, e))?;
        let current = user_version(&tx, path)?;
        check_version_known(current, path)?;
        if current != from {
            // Already past this step (or another process just did it).
            tx.rollback()
                .map_err(|e| sqlite_error("end migration transaction on", path, e))?;
            continue;
        }
        tx.execute_batch(sql)
            .map_err(|e| sqlite_error(&format!("apply schema migration {to} to"), path, e))?;
        tx.pragma_update(None, "user_version", to)
            .map_err(|e| sqlite_error("record schema version in", path, e))?;
        tx.commit()
            .map_err(|e| sqlite_error(&format!("commit schema migration {to} to"), path, e))?;
    }
    Ok(())
}

fn user_version(conn: &Connection, path: &Path) -> Result<u32> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|e| sqlite_error("read schema version of", path, e))?;
    // user_version is a signed 32-bit header field; a negative value can only
    // come from some other program, so treat it as unknown (too new).
    Ok(u32::try_from(version).unwrap_or(u32::MAX))
}

fn check_version_known(version: u32, path: &Path) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(Error::Unsupported(format!(
            "{}: database schema version {version} is newer than this microsnap \
             understands (up to {SCHEMA_VERSION}); use a newer microsnap, or \
             move the file aside and let Reindex rebuild the snapshot index",
            path.display()
        )));
    }
    Ok(())
}

/// A SQLite failure while doing `what` on the database at `path`.
fn sqlite_error(what: &str, path: &Path, e: rusqlite::Error) -> Error {
    Error::Io {
        context: format!("{what} index database {}", path.display()),
        source: io::Error::other(e),
    }
}

/// Store a u64 in an SQLite INTEGER (a signed 64-bit value) losslessly: the
/// same 64 bits, reinterpreted. Values up to i64::MAX store as themselves;
/// larger ones store as negatives and come back intact via [`u64_from_sql`].
pub(crate) fn u64_to_sql(value: u64) -> i64 {
    value as i64
}

/// The inverse of [`u64_to_sql`].
pub(crate) fn u64_from_sql(value: i64) -> u64 {
    value as u64
}

#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod open_tests;
#[cfg(test)]
mod sandbox_table_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Db>();
    }

    #[test]
    fn u64_bit_pattern_round_trips_at_the_edges() {
        for value in [
            0,
            1,
            i64::MAX as u64,
            i64::MAX as u64 + 1,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(u64_from_sql(u64_to_sql(value)), value);
        }
        assert_eq!(u64_to_sql(42), 42, "small values store as themselves");
    }
}

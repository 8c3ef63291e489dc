//! The `sandboxes` table: the lifecycle record of each sandbox.
//!
//! Unlike the snapshot index this table is not a cache: a sandbox exists
//! exactly when it has a row here (its directory holds only the upper image
//! and the lock file, handled by `sandbox.rs`).
//!
//! Every function takes a plain `&Connection`; pass the `&Transaction` that
//! `Db::write` gives you (it derefs to one) when changing rows.
use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::db::{u64_from_sql, u64_to_sql};
use crate::error::{Error, Result};

/// The recorded status. `Running` means a live handle held the lock when it
/// was written; whether that holder is still alive (or the sandbox crashed)
/// is the lock's business, not this table's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SandboxStatus {
    Created,
    Running,
    Stopped,
}

impl SandboxStatus {
    /// The stored (and JSON) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxStatus::Created => "created",
            SandboxStatus::Running => "running",
            SandboxStatus::Stopped => "stopped",
        }
    }
}

impl fmt::Display for SandboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SandboxStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<SandboxStatus> {
        match s {
            "created" => Ok(SandboxStatus::Created),
            "running" => Ok(SandboxStatus::Running),
            "stopped" => Ok(SandboxStatus::Stopped),
            other => Err(Error::InvalidArgument(format!(
                "unknown sandbox status {other:?} (expected created, running or stopped)"
            ))),
        }
    }
}

impl ToSql for SandboxStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for SandboxStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        text.parse()
            .map_err(|e: Error| FromSqlError::Other(Box::new(e)))
    }
}

/// One sandbox record.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxRow {
    pub name: String,
    pub status: SandboxStatus,
    pub image_ref: String,
    pub image_manifest_digest: String,
    /// File name of the upper image inside the sandbox directory.
    pub upper_file: String,
    pub format: String,
    pub fstype: String,
    /// Logical size of the upper image.
    pub size_bytes: u64,
    /// Digest of the snapshot this sandbox was created from, if any.
    pub from_snapshot: Option<String>,
    pub created_at: String,
    pub created_at_unix_nanos: i64,
}

const COLUMNS: &str = "name, status, image_ref, image_manifest_digest, upper_file, format, \
     fstype, size_bytes, from_snapshot, created_at, created_at_unix_nanos";

/// Record a new sandbox. A sandbox of the same name already recorded is
/// [`Error::AlreadyExists`]; the existing row is left untouched.
pub fn insert(conn: &Connection, row: &SandboxRow) -> Result<()> {
    // ON CONFLICT DO NOTHING and a change count, rather than decoding the
    // constraint-violation error: it tells a duplicate name apart from any
    // other failure without depending on SQLite's extended error codes.
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT INTO sandboxes ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT(name) DO NOTHING"
    ))?;
    let inserted = stmt.execute(params![
        row.name,
        row.status,
        row.image_ref,
        row.image_manifest_digest,
        row.upper_file,
        row.format,
        row.fstype,
        u64_to_sql(row.size_bytes),
        row.from_snapshot,
        row.created_at,
        row.created_at_unix_nanos,
    ])?;
    if inserted == 0 {
        return Err(Error::AlreadyExists(format!("sandbox {:?}", row.name)));
    }
    Ok(())
}

/// The record of sandbox `name`, if there is one.
pub fn get(conn: &Connection, name: &str) -> Result<Option<SandboxRow>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sandboxes WHERE name = ?1"))?;
    Ok(stmt.query_row([name], row_from_sql).optional()?)
}

/// Every sandbox record, by name.
pub fn list(conn: &Connection) -> Result<Vec<SandboxRow>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM sandboxes ORDER BY name"))?;
    let rows = stmt.query_map([], row_from_sql)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The names of the sandboxes recorded as made from snapshot `digest`, by name.
pub fn made_from_snapshot(conn: &Connection, digest: &str) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT name FROM sandboxes WHERE from_snapshot = ?1 ORDER BY name")?;
    let rows = stmt.query_map([digest], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Record a new status for sandbox `name`; [`Error::SandboxNotFound`] if
/// there is no such sandbox.
pub fn set_status(conn: &Connection, name: &str, status: SandboxStatus) -> Result<()> {
    let mut stmt = conn.prepare_cached("UPDATE sandboxes SET status = ?2 WHERE name = ?1")?;
    if stmt.execute(params![name, status])? == 0 {
        return Err(Error::SandboxNotFound(name.to_string()));
    }
    Ok(())
}

/// Remove the record of sandbox `name`; `true` if there was one.
pub fn delete(conn: &Connection, name: &str) -> Result<bool> {
    let mut stmt = conn.prepare_cached("DELETE FROM sandboxes WHERE name = ?1")?;
    Ok(stmt.execute([name])? > 0)
}

/// Read one row selected with [`COLUMNS`].
fn row_from_sql(row: &Row<'_>) -> rusqlite::Result<SandboxRow> {
    Ok(SandboxRow {
        name: row.get(0)?,
        status: row.get(1)?,
        image_ref: row.get(2)?,
        image_manifest_digest: row.get(3)?,
        upper_file: row.get(4)?,
        format: row.get(5)?,
        fstype: row.get(6)?,
        size_bytes: u64_from_sql(row.get(7)?),
        from_snapshot: row.get(8)?,
        created_at: row.get(9)?,
        created_at_unix_nanos: row.get(10)?,
    })
}

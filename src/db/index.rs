//! The `snapshot_index` table: one row per snapshot artifact directory.
//!
//! The index is a cache of what the artifact directories say (they are the
//! source of truth; Reindex rebuilds it). A row is keyed by the artifact's
//! canonical absolute path, so the same name in two directories, or the same
//! digest copied to two places, are separate rows.
//!
//! Every function takes a plain `&Connection`; pass the `&Transaction` that
//! `Db::write` gives you (it derefs to one) when changing rows.
use std::collections::{BTreeMap, HashMap};

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::db::{u64_from_sql, u64_to_sql};
use crate::error::{Error, Result};

/// One indexed snapshot artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRow {
    /// Canonical absolute path of the artifact directory (the key).
    pub artifact_path: String,
    /// The manifest digest (`sha256:...`), the snapshot's identity.
    pub digest: String,
    /// The artifact directory's file name.
    pub name: Option<String>,
    pub parent_digest: Option<String>,
    pub image_ref: String,
    pub image_manifest_digest: String,
    pub format: String,
    pub fstype: String,
    pub size_bytes: Option<u64>,
    /// `created_at` exactly as the manifest writes it.
    pub created_at: String,
    /// `created_at` parsed; the caller's fallback when it does not parse.
    pub created_at_unix_nanos: i64,
    pub indexed_at_unix_nanos: i64,
    pub labels: BTreeMap<String, String>,
    pub integrity_algorithm: Option<String>,
    /// The descriptor's format name (`msb-v0.6.3`, `msb-v0.6.14`).
    pub artifact_format: String,
}

/// The columns in the order `row_from_sql` reads them.
const COLUMNS: &str = "artifact_path, digest, name, parent_digest, image_ref, \
     image_manifest_digest, format, fstype, size_bytes, created_at, \
     created_at_unix_nanos, indexed_at_unix_nanos, labels_json, integrity_algorithm, \
     artifact_format";

/// Insert `row`, replacing any row already indexed at the same path.
pub fn upsert(conn: &Connection, row: &IndexRow) -> Result<()> {
    let labels_json = labels_to_json(&row.labels)?;
    // Cached: Reindex upserts thousands of rows in one transaction.
    let mut stmt = conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO snapshot_index ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))?;
    stmt.execute(params![
        row.artifact_path,
        row.digest,
        row.name,
        row.parent_digest,
        row.image_ref,
        row.image_manifest_digest,
        row.format,
        row.fstype,
        row.size_bytes.map(u64_to_sql),
        row.created_at,
        row.created_at_unix_nanos,
        row.indexed_at_unix_nanos,
        labels_json,
        row.integrity_algorithm,
        row.artifact_format,
    ])?;
    Ok(())
}

/// Remove the row indexed at `artifact_path`; `true` if there was one.
pub fn remove_by_path(conn: &Connection, artifact_path: &str) -> Result<bool> {
    let mut stmt = conn.prepare_cached("DELETE FROM snapshot_index WHERE artifact_path = ?1")?;
    Ok(stmt.execute([artifact_path])? > 0)
}

/// The row indexed at `artifact_path`, if any.
pub fn find_by_path(conn: &Connection, artifact_path: &str) -> Result<Option<IndexRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM snapshot_index WHERE artifact_path = ?1"
    ))?;
    Ok(stmt.query_row([artifact_path], row_from_sql).optional()?)
}

/// Every row with this digest (the same snapshot may be stored at several
/// paths), most recently indexed first, then by path.
pub fn find_by_digest(conn: &Connection, digest: &str) -> Result<Vec<IndexRow>> {
    query_rows(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM snapshot_index WHERE digest = ?1 \
             ORDER BY indexed_at_unix_nanos DESC, artifact_path"
        ),
        digest,
    )
}

/// All rows, newest snapshot first (by parsed `created_at`), then by path.
/// One statement, no per-row queries: pair it with [`child_counts`] rather
/// than calling [`child_count`] per row. The engine streams with
/// [`for_each`]; only the tests want the rows collected.
#[cfg(test)]
pub fn list(conn: &Connection) -> Result<Vec<IndexRow>> {
    let mut rows = Vec::new();
    for_each(conn, |row| {
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

/// [`list`], handing each row to `f` as it is read; an error from `f` stops
/// the walk and is returned.
pub fn for_each(conn: &Connection, mut f: impl FnMut(IndexRow) -> Result<()>) -> Result<()> {
    let mut stmt = conn.prepare_cached(&list_sql())?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        f(row_from_sql(row)?)?;
    }
    Ok(())
}

/// How many distinct snapshots name `digest` as their parent. A child stored
/// at two paths counts once: it is one snapshot.
pub fn child_count(conn: &Connection, digest: &str) -> Result<u64> {
    let mut stmt = conn.prepare_cached(
        "SELECT COUNT(DISTINCT digest) FROM snapshot_index WHERE parent_digest = ?1",
    )?;
    let count: i64 = stmt.query_row([digest], |row| row.get(0))?;
    Ok(count_from_sql(count))
}

/// [`child_count`] for every digest that has children, in one query.
/// Digests absent from the map have no children.
pub fn child_counts(conn: &Connection) -> Result<HashMap<String, u64>> {
    let mut stmt = conn.prepare_cached(CHILD_COUNTS_SQL)?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, count_from_sql(row.get(1)?)))
    })?;
    Ok(rows.collect::<rusqlite::Result<HashMap<_, _>>>()?)
}

/// Every indexed artifact path, sorted.
pub fn all_paths(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT artifact_path FROM snapshot_index ORDER BY artifact_path")?;
    let rows = stmt.query_map([], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Keep only the rows whose path `keep` accepts; remove the others and return
/// their paths, sorted. Nothing in the engine calls it today (reindex walks
/// the rows itself); kept, with its test, for the lead to use or drop.
#[cfg(test)]
pub fn retain_paths(conn: &Connection, mut keep: impl FnMut(&str) -> bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for path in all_paths(conn)? {
        if !keep(&path) {
            remove_by_path(conn, &path)?;
            removed.push(path);
        }
    }
    Ok(removed)
}

fn list_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM snapshot_index ORDER BY created_at_unix_nanos DESC, artifact_path"
    )
}

const CHILD_COUNTS_SQL: &str = "SELECT parent_digest, COUNT(DISTINCT digest) FROM snapshot_index \
     WHERE parent_digest IS NOT NULL GROUP BY parent_digest";

fn query_rows(conn: &Connection, sql: &str, key: &str) -> Result<Vec<IndexRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([key], row_from_sql)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Read one row selected with [`COLUMNS`].
fn row_from_sql(row: &Row<'_>) -> rusqlite::Result<IndexRow> {
    Ok(IndexRow {
        artifact_path: row.get(0)?,
        digest: row.get(1)?,
        name: row.get(2)?,
        parent_digest: row.get(3)?,
        image_ref: row.get(4)?,
        image_manifest_digest: row.get(5)?,
        format: row.get(6)?,
        fstype: row.get(7)?,
        size_bytes: row.get::<_, Option<i64>>(8)?.map(u64_from_sql),
        created_at: row.get(9)?,
        created_at_unix_nanos: row.get(10)?,
        indexed_at_unix_nanos: row.get(11)?,
        labels: labels_from_json(row, 12)?,
        integrity_algorithm: row.get(13)?,
        artifact_format: row.get(14)?,
    })
}

fn labels_to_json(labels: &BTreeMap<String, String>) -> Result<String> {
    serde_json::to_string(labels)
        .map_err(|e| Error::Internal(format!("cannot serialize snapshot labels: {e}")))
}

/// Parse the `labels_json` column. A value that is not a JSON object of
/// strings is reported as a conversion failure of that column (an `io`
/// error: the index is damaged, and Reindex rebuilds it).
fn labels_from_json(row: &Row<'_>, column: usize) -> rusqlite::Result<BTreeMap<String, String>> {
    let text: String = row.get(column)?;
    // Most snapshots have no labels; skip the parser for them.
    if text == "{}" {
        return Ok(BTreeMap::new());
    }
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e)))
}

/// COUNT(*) is never negative; clamp rather than wrap if SQLite ever says so.
fn count_from_sql(count: i64) -> u64 {
    u64::try_from(count).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn query_plan(db: &Db, sql: &str) -> Vec<String> {
        db.read(|conn| {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let rows = stmt.query_map([], |row| row.get::<_, String>(3))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .unwrap()
    }

    /// The listing queries run over 100,000s of rows: they must walk an
    /// index in order, never scan and sort the table.
    #[test]
    fn listing_queries_use_indexes_and_never_sort() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("microsnap.db")).unwrap();
        for (sql, index) in [
            (list_sql(), "snapshot_index_created_at"),
            (
                CHILD_COUNTS_SQL.to_string(),
                "COVERING INDEX snapshot_index_parent_digest",
            ),
        ] {
            let plan = query_plan(&db, &sql);
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{sql}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
        }
    }
}

//! The home directory: one root holding the database, sandboxes, snapshots,
//! the local OCI image layout and a staging area on the same filesystem (so
//! publishing is a rename).
//!
//! `Home` is a cheap, clonable, thread-safe handle (an `Arc` inside) so that a
//! running sandbox or a C context can keep its home alive.
use crate::db::Db;
use crate::error::{Error, IoContext, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Environment variable naming the default home.
pub const HOME_ENV: &str = "MICROSNAP_HOME";
pub const DB_FILE: &str = "microsnap.db";

#[derive(Clone)]
pub struct Home {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    db: Db,
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Home")
            .field("root", &self.inner.root)
            .finish()
    }
}

impl Home {
    /// Open (creating on first use) the home at `root`. This only opens:
    /// bringing a home back to the truth after a crash is
    /// `crate::recovery::recover` (and `crate::open_home` does both).
    pub fn open(root: &Path) -> Result<Home> {
        if root.as_os_str().is_empty() {
            return Err(Error::InvalidArgument("home path is empty".into()));
        }
        std::fs::create_dir_all(root).ctx("create home", root)?;
        // Absolute, symlink-free root: artifact paths stored in the index and
        // compared against it must have one spelling.
        let root = root.canonicalize().ctx("resolve home", root)?;
        if !root.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "home {} is not a directory",
                root.display()
            )));
        }
        for sub in ["sandboxes", "snapshots", "images", "tmp"] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).ctx("create", &p)?;
        }
        let db = Db::open(&root.join(DB_FILE))?;
        Ok(Home {
            inner: Arc::new(Inner { root, db }),
        })
    }

    /// Open the default home: `$MICROSNAP_HOME`, else `~/.microsnap`.
    pub fn open_default() -> Result<Home> {
        Home::open(&default_root()?)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }
    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }
    pub fn snapshots_dir(&self) -> PathBuf {
        self.inner.root.join("snapshots")
    }
    pub fn sandboxes_dir(&self) -> PathBuf {
        self.inner.root.join("sandboxes")
    }
    pub fn images_dir(&self) -> PathBuf {
        self.inner.root.join("images")
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    /// Where to stage something that will be renamed into `dest_parent`
    /// (created if missing): the home's `tmp/` for a destination inside the
    /// home, else `dest_parent` itself (as a hidden staging entry), so the
    /// final step is always a rename on one filesystem.
    pub(crate) fn staging_area_for(&self, dest_parent: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dest_parent).ctx("create", dest_parent)?;
        let parent = dest_parent.canonicalize().ctx("resolve", dest_parent)?;
        Ok(if parent.starts_with(self.root()) {
            self.tmp_dir()
        } else {
            parent
        })
    }
}

/// `$MICROSNAP_HOME`, else `$HOME/.microsnap`.
pub fn default_root() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os(HOME_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".microsnap")),
        None => Err(Error::InvalidArgument(format!(
            "no home: set {HOME_ENV} or HOME"
        ))),
    }
}

/// Check a bare name (snapshot or sandbox): one plain path component that
/// cannot be mistaken for a path, a hidden staging entry, a digest or a
/// shell home reference.
pub(crate) fn validate_bare_name(kind: &str, name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid {kind} name {name:?}: {why}"
        )))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 255 {
        return bad("longer than 255 bytes");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("contains a path separator");
    }
    if name.starts_with('.') {
        return bad("starts with '.'");
    }
    if name.starts_with('~') {
        return bad("starts with '~'");
    }
    if name.contains(':') {
        return bad("contains ':' (reserved for digests)");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("contains a control character");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names() {
        for ok in ["baseline", "after-pip-install", "a_b.c", "x1", "é"] {
            validate_bare_name("snapshot", ok).unwrap();
        }
        for bad in [
            "",
            "a/b",
            ".x",
            "~x",
            "..",
            ".",
            "sha256:abc",
            "a\nb",
            "a\\b",
        ] {
            let e = validate_bare_name("snapshot", bad).unwrap_err();
            assert_eq!(
                e.code(),
                crate::error::ErrorCode::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn open_creates_layout_and_is_reopenable() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("h");
        let h = Home::open(&root).unwrap();
        for d in ["sandboxes", "snapshots", "images", "tmp"] {
            assert!(h.root().join(d).is_dir(), "{d}");
        }
        assert!(h.root().join(DB_FILE).is_file());
        drop(h);
        Home::open(&root).unwrap();
    }

    #[test]
    fn home_that_is_a_file_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = Home::open(&f).unwrap_err();
        assert_eq!(e.code(), crate::error::ErrorCode::Io);
    }
}

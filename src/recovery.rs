//! Bringing a home back to the truth after a crash.
//!
//! Every operation that changes artifacts or sandboxes holds a staging entry
//! (see `publish`) until its change is indexed or recorded. A stale one (its
//! owner's lock is free) means a process died mid-operation, perhaps between
//! changing an artifact and indexing it. Recovery removes the stale staging,
//! rebuilds the snapshot index of the snapshots directory and removes sandbox
//! directories that have no record. It sits above the modules it calls, so
//! opening a [`Home`] stays a plain open.
use crate::error::Result;
use crate::home::Home;
use crate::{publish, sandbox, snapshot};
use std::path::Path;

/// Open the home at `root` and recover it if a process died in it: what the
/// C ABI's context open and the bindings do.
pub fn open_home(root: &Path) -> Result<Home> {
    let home = Home::open(root)?;
    recover(&home)?;
    Ok(home)
}

/// Recover `home` if stale staging shows that a process died mid-operation.
/// Returns whether anything was stale. Cheap when nothing was: one read of
/// `<home>/tmp`.
pub fn recover(home: &Home) -> Result<bool> {
    if publish::clean_stale(&home.tmp_dir())? == 0 {
        return Ok(false);
    }
    snapshot::reindex(home, None)?;
    sandbox::remove_orphans(home)?;
    Ok(true)
}

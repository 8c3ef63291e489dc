//! TEMP: stand-ins for `push.rs` / `pull.rs` (the lead's), with their fixed
//! signatures, so that the binding layers build before the engine lands.
//! They check the reference as the engine will, then refuse. Drop this file
//! (and its two lines in mod.rs) when push.rs and pull.rs are merged.
use super::{PullOptions, PullReport, PushOptions, PushReport, Reference};
use crate::error::{Error, Result};
use crate::home::Home;
use crate::progress::Monitor;
use crate::snapshot::SnapshotHandle;
use std::path::Path;

pub fn push(
    _home: &Home,
    _name_or_path: &str,
    reference_text: &str,
    _opts: &PushOptions,
    _monitor: &Monitor,
) -> Result<PushReport> {
    Reference::parse(reference_text)?;
    Err(Error::Unsupported("push is not built yet".into()))
}

pub fn pull(
    _home: &Home,
    reference_text: &str,
    _dest: Option<&Path>,
    _opts: &PullOptions,
    _monitor: &Monitor,
) -> Result<(SnapshotHandle, PullReport)> {
    Reference::parse(reference_text)?;
    Err(Error::Unsupported("pull is not built yet".into()))
}

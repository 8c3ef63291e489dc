//! microsnap: a snapshot engine for microVM sandbox disks.
//!
//! The engine is plain Rust with typed errors; `ffi` is the only module that
//! knows about C. See `docs/engine.md` for the module map and who may use
//! whom.
//!
//! # Using the engine as a Rust crate
//!
//! Open a home with [`open_home`] (it runs recovery: stale staging, orphan
//! sandboxes, reindex), then call the operations of [`snapshot`],
//! [`sandbox`], [`archive`], [`distribution`] (push and pull through OCI
//! registries) and [`image`] on it; [`usage`] measures what they occupy. Every fallible function
//! returns [`error::Result`]; [`error::ErrorCode`] is the stable,
//! matchable part of an error. Long operations take a [`progress::Monitor`]
//! for cancellation and progress.
//!
//! What is stable: the modules re-exported here and the items they make
//! `pub` follow semantic versioning from 1.0 on (until then, a minor
//! version may change them and says so in its notes). Stable without
//! reservation are the C ABI (`include/microsnap.h`, `docs/abi.md`) and the
//! on-disk format (`manifest.json`, the home's layout, [`STAGING_PREFIX`]).
//! Not part of the Rust API: `ffi` (its Rust paths exist for the library's
//! own tests; C callers use the header), and, behind the `testing` cargo
//! feature, `fault` and `fuzz_targets`. Everything else (the SQLite tables,
//! publishing, timestamp formatting) is internal.
pub mod archive;
pub mod artifact;
pub(crate) mod db;
pub mod disk;
pub mod distribution;
pub mod error;
// Test machinery (docs/RELIABILITY.md): compiled in only with the `testing`
// feature; without it `fault::point` is a no-op and fuzz_targets is absent.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fault;
#[cfg(not(feature = "testing"))]
mod fault;
#[doc(hidden)]
pub mod ffi;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fuzz_targets;
pub mod home;
pub mod image;
pub mod integrity;
pub(crate) mod leaf_list;
pub mod manifest;
pub mod progress;
pub(crate) mod publish;
pub mod recovery;
pub mod sandbox;
pub mod snapshot;
pub mod snapshot_json;
pub mod sparse;
pub(crate) mod timefmt;
pub mod usage;

pub use recovery::open_home;

/// The file-name prefix of staging entries (a directory and its `.lock`)
/// of an operation in progress or of one that crashed. Part of the on-disk
/// format: a tool walking a home or a snapshot directory skips them.
pub use publish::STAGING_PREFIX;

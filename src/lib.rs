//! microsnap: a snapshot engine for microVM sandbox disks.
//!
//! The engine is plain Rust with typed errors; `ffi` is the only module that
//! knows about C. See `docs/engine.md` for the module map.
pub mod archive;
pub mod artifact;
pub mod db;
pub mod disk;
pub mod error;
// Test machinery (docs/RELIABILITY.md): compiled in only with the `testing`
// feature; without it `fault::point` is a no-op and fuzz_targets is absent.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fault;
#[cfg(not(feature = "testing"))]
mod fault;
pub mod ffi;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod fuzz_targets;
pub mod home;
pub mod image;
pub mod integrity;
pub mod manifest;
pub mod progress;
pub mod publish;
pub mod recovery;
pub mod sandbox;
pub mod snapshot;
pub mod sparse;
pub mod timefmt;

pub use recovery::open_home;

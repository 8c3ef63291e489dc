//! The engine tests' registry harness (tests/engine/support/registry.rs:
//! Debian's docker-registry on 127.0.0.1), shared with this binary for the
//! registry variant of the push/pull crash tests.
#![allow(dead_code)] // the crash tests use a few of its helpers

/// What the harness takes from its parent module.
pub use crate::support::names as names_in;

#[path = "../engine/support/registry.rs"]
pub mod registry;

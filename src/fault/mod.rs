//! Fault injection for crash-consistency tests: named points in the engine
//! where a test can make the process die or fail with an I/O error
//! (`armed.rs` has the plan, its syntax and the actions).
//!
//! Test machinery, not part of the shipped library: the points are armed
//! only when the crate is built with the `testing` cargo feature (`make
//! test`, `make stress` and the fuzz crate turn it on). Without it `point`
//! is an inline no-op that returns `Ok(())`, so the call sites are the same
//! in both builds and the release `libmicrosnap.so` reads no environment
//! variable that could kill or trace the host process (`make
//! test-release-clean` checks the built library for it).

#[cfg(feature = "testing")]
mod armed;

#[cfg(feature = "testing")]
pub use armed::{point, splitmix64, Action, Plan, FAULT_ENV};

/// A fault point. Without the `testing` feature there is nothing to arm.
#[cfg(not(feature = "testing"))]
#[inline(always)]
pub(crate) fn point(_name: &str) -> crate::error::Result<()> {
    Ok(())
}

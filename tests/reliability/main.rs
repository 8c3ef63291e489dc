//! The reliability tests as one binary: crash consistency, concurrency,
//! disk full and tamper detection (docs/RELIABILITY.md). Child processes are
//! this binary re-executed with `--exact <module>::<child test>`; see
//! `support::spawn_child`. The fuzz corpus replay stays its own binary
//! (tests/reliability_fuzz_replay.rs): it changes the process's current
//! directory, which would race with every other test here.

mod registry_support;
mod support;

mod concurrency;
mod crash;
mod crash_distribution;
mod diskfull;
mod distribution_bounds;
mod tamper;

//! The engine tests as one binary (one link, one process for `cargo test`):
//! snapshots, sandboxes, publishing, images, archives, integrity and
//! manifests through the Rust API. Shared helpers live in `support`.
//! Tests that re-execute this binary name their helper as `module::test`.

mod support;

mod archive_hostile;
mod archive_memory;
mod archive_roundtrip;
mod archive_v0614;
mod archive_vectors;
mod bad_input;
mod disk_upper;
mod distribution;
mod distribution_dedup;
mod distribution_local_stores;
mod distribution_registry;
mod ext4;
mod image_gc_consistency;
mod image_layout;
mod image_oci_tools;
mod image_prune;
mod integrity_bench;
mod integrity_blake3;
mod integrity_reference;
mod integrity_stream;
mod integrity_vectors;
mod lineage;
mod manifest_identity;
mod manifest_vectors;
mod msb0614_artifacts;
mod perf_copy_and_compute;
mod publish;
mod registry_client;
mod registry_harness;
mod registry_interop;
mod sandbox;
mod snapshot;
mod snapshot_prune;
mod sparse;
mod sparse_copy;
mod usage;

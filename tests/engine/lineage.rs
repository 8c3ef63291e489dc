//! Lineage: a snapshot of a sandbox made from a snapshot is its child; the
//! index counts children; removal respects them; forced replacement keeps
//! the counts right.
use crate::support as engine_support;

use engine_support::*;
use microsnap::error::{Error, ErrorCode};
use microsnap::progress::Monitor;
use microsnap::sandbox;
use microsnap::snapshot::{self, CreateOptions};

fn children(t: &TestHome, reference: &str) -> u64 {
    snapshot::get(&t.home, reference).unwrap().child_count
}

#[test]
fn a_snapshot_of_a_sandbox_from_a_snapshot_records_its_parent() {
    let t = TestHome::new();
    t.sandbox_with("root-sb", 4 * MIB, &[(0, b"generation 0")]);
    let root = t.snapshot("root-sb", "gen0");
    assert_eq!(root.descriptor.parent(), None);

    let sb1 = t.sandbox_from("gen1-sb", "gen0").unwrap();
    assert_eq!(sb1.from_snapshot.as_deref(), Some(root.digest.as_str()));
    write_at(&sb1.upper_path, 0, b"generation 1");
    let gen1 = t.snapshot("gen1-sb", "gen1");
    assert_eq!(gen1.descriptor.parent(), Some(root.digest.as_str()));

    // A grandchild, created from the child by digest.
    t.sandbox_from("gen2-sb", &gen1.digest).unwrap();
    let gen2 = t.snapshot("gen2-sb", "gen2");
    assert_eq!(gen2.descriptor.parent(), Some(gen1.digest.as_str()));

    let h = snapshot::get(&t.home, "gen2").unwrap();
    assert_eq!(h.parent_digest.as_deref(), Some(gen1.digest.as_str()));
    assert_eq!(children(&t, "gen0"), 1);
    assert_eq!(children(&t, "gen1"), 1);
    assert_eq!(children(&t, "gen2"), 0);
    // list reports the same counts.
    for h in snapshot::list(&t.home).unwrap() {
        let expected = if h.digest == gen2.digest { 0 } else { 1 };
        assert_eq!(h.child_count, expected, "{:?}", h.name);
    }
    // Every snapshot of the same sandbox is a child of the same parent.
    write_at(&sb1.upper_path, 0, b"generation 1b");
    t.snapshot("gen1-sb", "gen1b");
    assert_eq!(children(&t, "gen0"), 2);
    assert_eq!(children(&t, &root.digest), 2);
}

#[test]
fn removing_a_parent_is_has_children_until_forced_or_childless() {
    let t = TestHome::new();
    t.sandbox("root-sb", MIB);
    let parent = t.snapshot("root-sb", "parent");
    t.sandbox_from("kid", "parent").unwrap();
    let child = t.snapshot("kid", "child");

    let before = t.state(&[]);
    match snapshot::remove(&t.home, "parent", false) {
        Err(Error::HasChildren { digest, children }) => {
            assert_eq!(digest, parent.digest);
            assert_eq!(children, 1);
        }
        other => panic!("expected has_children, got {other:?}"),
    }
    expect_code(
        snapshot::remove(&t.home, &parent.digest, false),
        ErrorCode::HasChildren,
    );
    expect_code(
        snapshot::remove(&t.home, parent.path.to_str().unwrap(), false),
        ErrorCode::HasChildren,
    );
    assert_eq!(t.state(&[]), before);

    // Remove the child: the parent becomes removable.
    snapshot::remove(&t.home, "child", false).unwrap();
    assert_eq!(children(&t, "parent"), 0);
    snapshot::remove(&t.home, "parent", false).unwrap();

    // Again, this time forcing past the child.
    let parent = t.snapshot("root-sb", "parent2");
    sandbox::remove(&t.home, "kid").unwrap();
    t.sandbox_from("kid", "parent2").unwrap();
    let child = {
        let _ = child;
        t.snapshot("kid", "child2")
    };
    expect_code(
        snapshot::remove(&t.home, "parent2", false),
        ErrorCode::HasChildren,
    );
    snapshot::remove(&t.home, "parent2", true).unwrap();
    assert!(!parent.path.exists());
    // The orphan keeps its recorded parent and still opens.
    let orphan = snapshot::get(&t.home, "child2").unwrap();
    assert_eq!(
        orphan.parent_digest.as_deref(),
        Some(parent.digest.as_str())
    );
    snapshot::open(&t.home, "child2").unwrap();
    assert_eq!(orphan.digest, child.digest);
}

#[test]
fn a_second_copy_of_the_parent_can_be_removed_without_force() {
    let t = TestHome::new();
    t.sandbox("root-sb", MIB);
    let parent = t.snapshot("root-sb", "parent");
    t.sandbox_from("kid", "parent").unwrap();
    t.snapshot("kid", "child");
    // The same artifact, byte for byte, at a second path.
    let copy = t.outside("parent-copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["manifest.json", "upper.ext4"] {
        microsnap::sparse::copy_sparse(&parent.path.join(f), &copy.join(f), &Monitor::none())
            .unwrap();
    }
    assert_eq!(
        snapshot::get(&t.home, copy.to_str().unwrap())
            .unwrap()
            .digest,
        parent.digest
    );
    // Two copies: removing one leaves the child's parent available.
    snapshot::remove(&t.home, copy.to_str().unwrap(), false).unwrap();
    // The last copy is protected again.
    expect_code(
        snapshot::remove(&t.home, "parent", false),
        ErrorCode::HasChildren,
    );
}

#[test]
fn a_copy_that_no_longer_opens_does_not_stand_in_for_the_parent() {
    let t = TestHome::new();
    t.sandbox("root-sb", MIB);
    let parent = t.snapshot("root-sb", "parent");
    t.sandbox_from("kid", "parent").unwrap();
    t.snapshot("kid", "child");
    let copy = t.outside("parent-copy");
    std::fs::create_dir(&copy).unwrap();
    for f in ["manifest.json", "upper.ext4"] {
        std::fs::copy(parent.path.join(f), copy.join(f)).unwrap();
    }
    snapshot::get(&t.home, copy.to_str().unwrap()).unwrap();
    // The copy's row stays indexed, but its directory is malformed now.
    std::fs::remove_file(copy.join("manifest.json")).unwrap();
    expect_code(
        snapshot::remove(&t.home, "parent", false),
        ErrorCode::HasChildren,
    );
    snapshot::open(&t.home, "parent").unwrap();
    // The malformed copy itself may go: the parent still opens.
    snapshot::remove(&t.home, copy.to_str().unwrap(), false).unwrap();
    snapshot::open(&t.home, "parent").unwrap();
}

#[test]
fn forced_replacement_keeps_child_counts_right() {
    let t = TestHome::new();
    t.sandbox("root-sb", MIB);
    let parent = t.snapshot("root-sb", "parent");
    let kid = t.sandbox_from("kid", "parent").unwrap();
    let first = t.snapshot("kid", "child");
    assert_eq!(children(&t, "parent"), 1);

    // Replace the child in place, several times: still one child.
    let forced = CreateOptions {
        force: true,
        ..named("child")
    };
    for round in 0..3u8 {
        write_at(&kid.upper_path, 0, &[round + 1]);
        let replaced = snapshot::create(&t.home, "kid", &forced, &Monitor::none()).unwrap();
        assert_ne!(replaced.digest, first.digest);
        assert_eq!(replaced.descriptor.parent(), Some(parent.digest.as_str()));
        assert_eq!(children(&t, "parent"), 1, "round {round}");
    }
    assert_eq!(snapshot::list(&t.home).unwrap().len(), 2);

    // Replace the child with a snapshot of an unrelated sandbox: no children.
    let forced_other = CreateOptions {
        force: true,
        ..named("child")
    };
    snapshot::create(&t.home, "root-sb", &forced_other, &Monitor::none()).unwrap();
    assert_eq!(children(&t, "parent"), 0);
    snapshot::remove(&t.home, "parent", false).unwrap();

    // Replace a parent: the new parent has no children, and the old digest
    // is gone from the index.
    let p = t.snapshot("root-sb", "p");
    t.sandbox_from("kid2", "p").unwrap();
    t.snapshot("kid2", "c");
    assert_eq!(children(&t, "p"), 1);
    write_at(
        &sandbox::get(&t.home, "root-sb").unwrap().upper_path,
        0,
        b"new parent",
    );
    let forced_p = CreateOptions {
        force: true,
        ..named("p")
    };
    let p2 = snapshot::create(&t.home, "root-sb", &forced_p, &Monitor::none()).unwrap();
    assert_ne!(p2.digest, p.digest);
    assert_eq!(children(&t, "p"), 0);
    expect_code(
        snapshot::get(&t.home, &p.digest),
        ErrorCode::SnapshotNotFound,
    );
    // After a full reindex the counts are the same.
    snapshot::reindex(&t.home, None).unwrap();
    assert_eq!(children(&t, "p"), 0);
    assert_eq!(
        snapshot::get(&t.home, "c")
            .unwrap()
            .parent_digest
            .as_deref(),
        Some(p.digest.as_str())
    );
}

/// Lineage does not care which format each generation's descriptor is in:
/// a v0.6.14 child of a v0.6.3 parent, and a v0.6.3 grandchild of that,
/// each name their parent by its own identity, and counts, removal rules and
/// booting follow the chain.
#[test]
fn a_chain_may_mix_descriptor_formats() {
    use microsnap::artifact::ArtifactFormat;
    let t = TestHome::new();
    t.sandbox_with("root-sb", 4 * MIB, &[(0, b"v0.6.3 root")]);
    let root = t.snapshot("root-sb", "root");
    assert_eq!(root.format(), ArtifactFormat::MsbV063);

    let sb1 = t.sandbox_from("mid-sb", "root").unwrap();
    write_at(&sb1.upper_path, 4096, b"v0.6.14 child");
    let mid = snapshot::create(
        &t.home,
        "mid-sb",
        &CreateOptions {
            format: ArtifactFormat::MsbV0614,
            ..named("mid")
        },
        &Monitor::none(),
    )
    .unwrap();
    assert_eq!(mid.format(), ArtifactFormat::MsbV0614);
    assert_eq!(mid.descriptor.parent(), Some(root.digest.as_str()));

    let sb2 = t.sandbox_from("leaf-sb", "mid").unwrap();
    assert_eq!(sb2.from_snapshot.as_deref(), Some(mid.digest.as_str()));
    assert_eq!(read_at(&sb2.upper_path, 4096, 13), b"v0.6.14 child");
    let leaf = t.snapshot("leaf-sb", "leaf");
    assert_eq!(leaf.format(), ArtifactFormat::MsbV063);
    assert_eq!(leaf.descriptor.parent(), Some(mid.digest.as_str()));

    assert_eq!(children(&t, "root"), 1);
    assert_eq!(children(&t, "mid"), 1);
    assert_eq!(
        code_of(snapshot::remove(&t.home, "mid", false)),
        ErrorCode::HasChildren
    );
    snapshot::remove(&t.home, "leaf", false).unwrap();
    snapshot::remove(&t.home, "mid", false).unwrap();
    assert_eq!(children(&t, "root"), 0);
}

"""Snapshot: create, open, get, list, list_dir, remove, reindex, verify."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, datetime

import pytest
from conftest import IMAGE, UPPER_SIZE, stopped_sandbox, write_pattern

import microsnap

ALGORITHMS = ["microsnap-merkle-sha256-v1", "msb-file-merkle-blake3-v1", "msb-sparse-sha256-v1", "sha256"]


def test_create_by_name_and_its_artifact(home):
    base = stopped_sandbox(home, "baseline")
    art = home.Snapshot.create("baseline", name="x", labels={"stage": "post-deps"})
    assert isinstance(art, microsnap.SnapshotArtifact)
    assert art.path == home.path / "snapshots" / "x"
    assert art.digest.startswith("sha256:") and len(art.digest) == 71
    assert (art.format, art.fstype, art.image_ref) == ("raw", "ext4", IMAGE)
    assert art.image_manifest_digest == base.image_manifest_digest
    assert art.labels == {"stage": "post-deps"}
    assert art.size_bytes == UPPER_SIZE
    assert art.source_sandbox == "baseline"
    assert art.parent is None
    assert art.integrity is None
    assert art.schema == 1
    assert isinstance(art.created_at, datetime) and art.created_at.tzinfo is not None
    assert abs((datetime.now(UTC) - art.created_at).total_seconds()) < 60
    assert art.upper_path.read_bytes() == base.upper_path.read_bytes()


def test_returned_objects_are_frozen_dataclasses(home):
    stopped_sandbox(home, "baseline")
    art = home.Snapshot.create("baseline", name="x")
    for obj in (art, home.Snapshot.get("x"), home.Sandbox.get("baseline"), art.verify()):
        assert dataclasses.is_dataclass(obj)
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.digest = "changed"  # type: ignore[misc]
    assert hash(art) == hash(home.Snapshot.open("x"))
    assert art == home.Snapshot.open("x")


def test_handle_snapshot_and_snapshot_to(home, tmp_path):
    h = stopped_sandbox(home, "baseline")
    a = h.snapshot("after-setup")
    assert a.path == home.path / "snapshots" / "after-setup"
    b = h.snapshot_to(tmp_path / "elsewhere" / "snap")
    assert b.path == tmp_path / "elsewhere" / "snap"
    assert a.digest != b.digest or a.path != b.path
    assert b.upper_path.read_bytes() == a.upper_path.read_bytes()


def test_create_needs_a_stopped_sandbox(home):
    with home.Sandbox.create("running", image=IMAGE, size=UPPER_SIZE), pytest.raises(microsnap.SandboxRunning):
        home.Snapshot.create("running", name="x")
    assert not (home.path / "snapshots" / "x").exists()


def test_create_force_replaces(home):
    stopped_sandbox(home, "baseline")
    first = home.Snapshot.create("baseline", name="x")
    with pytest.raises(microsnap.AlreadyExists):
        home.Snapshot.create("baseline", name="x")
    with home.Sandbox.start("baseline") as sb:
        write_pattern(sb.info().upper_path, {0: b"changed"})
    second = home.Snapshot.create("baseline", name="x", force=True)
    assert second.digest != first.digest
    assert home.Snapshot.get("x").digest == second.digest


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_record_integrity_with_each_algorithm(home, algorithm):
    stopped_sandbox(home, "baseline")
    art = home.Snapshot.create("baseline", name="x", record_integrity=True, integrity_algorithm=algorithm)
    assert art.integrity is not None
    assert art.integrity.algorithm == algorithm
    report = art.verify()
    assert report.verified
    assert (report.upper.kind, report.upper.algorithm, report.upper.digest) == (
        "verified",
        algorithm,
        art.integrity.digest,
    )


def test_default_integrity_algorithm(home):
    stopped_sandbox(home, "baseline")
    art = home.Snapshot.create("baseline", name="x", record_integrity=True, integrity_algorithm=None)
    assert art.integrity is not None and art.integrity.algorithm == "microsnap-merkle-sha256-v1"


def test_unknown_integrity_algorithm(home):
    stopped_sandbox(home, "baseline")
    with pytest.raises(microsnap.InvalidArgument, match="md5"):
        home.Snapshot.create("baseline", name="x", record_integrity=True, integrity_algorithm="md5")


def test_verify_without_recorded_integrity(home):
    stopped_sandbox(home, "baseline")
    art = home.Snapshot.create("baseline", name="x")
    report = home.Snapshot.verify("x")
    assert isinstance(report, microsnap.VerifyReport)
    assert not report.verified
    assert report.upper == microsnap.UpperVerify("not_recorded", "", "")
    assert (report.digest, report.path) == (art.digest, art.path)


def test_verify_detects_tampering(home):
    stopped_sandbox(home, "baseline")
    art = home.Snapshot.create("baseline", name="x", record_integrity=True)
    write_pattern(art.upper_path, {UPPER_SIZE - 4096: b"tampered"})
    with pytest.raises(microsnap.IntegrityMismatch) as e:
        art.verify()
    assert e.value.expected == art.integrity.digest
    assert e.value.actual and e.value.actual != e.value.expected
    assert e.value.code == "integrity_mismatch" and e.value.status == 7
    with pytest.raises(microsnap.IntegrityMismatch):
        home.Snapshot.get("x").verify()
    # booting from a corrupted snapshot is refused too
    with pytest.raises(microsnap.IntegrityMismatch):
        home.Sandbox.create("worker", snapshot="x")


def test_open_and_get_by_name_digest_and_path(home):
    stopped_sandbox(home, "baseline")
    art = home.Snapshot.create("baseline", name="x")
    assert home.Snapshot.open("x") == art
    assert home.Snapshot.open(str(art.path)) == art
    h = home.Snapshot.get("x")
    assert isinstance(h, microsnap.SnapshotHandle)
    assert (h.digest, h.name, h.path, h.image_ref, h.format, h.size_bytes) == (
        art.digest,
        "x",
        art.path,
        IMAGE,
        "raw",
        UPPER_SIZE,
    )
    assert isinstance(h.created_at, datetime)
    assert h.created_at == art.created_at
    assert abs(h.created_at_unix_nanos / 1e9 - h.created_at.timestamp()) < 1e-5
    assert home.Snapshot.get(art.digest) == h
    assert home.Snapshot.get(str(art.path)) == h
    assert h.open() == art


def test_not_found(home):
    with pytest.raises(microsnap.SnapshotNotFound) as e:
        home.Snapshot.open("nope")
    assert isinstance(e.value, LookupError)
    with pytest.raises(microsnap.SnapshotNotFound):
        home.Snapshot.get("sha256:" + "0" * 64)
    with pytest.raises(microsnap.SnapshotNotFound):
        home.Snapshot.remove("nope")
    with pytest.raises(microsnap.SandboxNotFound):
        home.Snapshot.create("no-such-sandbox", name="x")


def test_list_newest_first(home):
    stopped_sandbox(home, "baseline")
    names = ["one", "two", "three"]
    for n in names:
        home.Snapshot.create("baseline", name=n)
    listed = home.Snapshot.list()
    assert [h.name for h in listed] == list(reversed(names))
    assert all(isinstance(h, microsnap.SnapshotHandle) for h in listed)


def test_list_dir_reports_skipped_entries(home, tmp_path):
    h = stopped_sandbox(home, "baseline")
    d = tmp_path / "dir"
    a = h.snapshot_to(d / "a")
    b = h.snapshot_to(d / "b")
    shutil.copytree(a.path, d / "copy")  # an artifact the index never saw
    (d / "junk").mkdir()
    (d / "junk" / "manifest.json").write_text("{not json")
    indexed = home.Snapshot.list()
    listing = home.Snapshot.list_dir(d)
    assert isinstance(listing, microsnap.DirListing)
    assert sorted(x.path for x in listing) == [a.path, b.path, d / "copy"]
    assert len(listing) == 3
    assert [s.path for s in listing.skipped] == [d / "junk"]
    skipped = listing.skipped[0]
    assert skipped.code == "invalid_manifest"
    assert isinstance(skipped.error(), microsnap.InvalidManifest)
    assert home.Snapshot.list() == indexed, "list_dir does not touch the index"


def test_remove_and_handle_remove(home):
    stopped_sandbox(home, "baseline")
    home.Snapshot.create("baseline", name="x")
    home.Snapshot.create("baseline", name="y")
    home.Snapshot.remove("x")
    assert not (home.path / "snapshots" / "x").exists()
    home.Snapshot.get("y").remove()
    assert home.Snapshot.list() == []


def test_remove_with_children_needs_force(home):
    stopped_sandbox(home, "baseline")
    parent = home.Snapshot.create("baseline", name="parent")
    with home.Sandbox.create("worker", snapshot="parent") as sb:
        write_pattern(sb.info().upper_path, {0: b"child"})
    child = home.Sandbox.get("worker").snapshot("child")
    assert child.parent == parent.digest
    assert home.Snapshot.get("child").parent_digest == parent.digest
    assert home.Snapshot.get("parent").child_count == 1
    with pytest.raises(microsnap.HasChildren) as e:
        home.Snapshot.remove("parent")
    assert e.value.digest == parent.digest
    assert e.value.children == 1
    home.Snapshot.remove("parent", force=True)
    assert not parent.path.exists()


def test_reindex(home, tmp_path):
    h = stopped_sandbox(home, "baseline")
    h.snapshot("a")
    h.snapshot("b")
    shutil.rmtree(home.path / "snapshots" / "a")
    assert home.Snapshot.reindex() == 1
    assert [s.name for s in home.Snapshot.list()] == ["b"]
    elsewhere = tmp_path / "elsewhere"
    h.snapshot_to(elsewhere / "c")
    h.snapshot_to(elsewhere / "d")
    assert home.Snapshot.reindex(elsewhere) == 2
    listed = home.Snapshot.list()
    # Outside the snapshots directory an artifact has no bare name: its path.
    assert sorted(s.name or s.path.name for s in listed) == ["b", "c", "d"]
    assert sorted(s.name for s in listed if s.name) == ["b"]


def test_invalid_manifest(home):
    stopped_sandbox(home, "baseline")
    art = home.Snapshot.create("baseline", name="x")
    manifest = art.path / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["format"] = "vmdk"
    manifest.write_text(json.dumps(doc))
    with pytest.raises(microsnap.InvalidManifest):
        home.Snapshot.open("x")


def test_module_level_snapshot_api(default_home):
    with microsnap.Sandbox.create("baseline", image=IMAGE, size=UPPER_SIZE) as sb:
        write_pattern(sb.info().upper_path, {0: b"data"})
    h = microsnap.Sandbox.get("baseline")
    snap = h.snapshot("after-setup")
    assert snap.path.parent == default_home / "snapshots"
    snap = microsnap.Snapshot.create(
        "baseline", name="x", path=None, labels={}, force=False, record_integrity=False, integrity_algorithm=None
    )
    assert microsnap.Snapshot.open("x") == snap
    got = microsnap.Snapshot.get("x")
    assert got.open() == snap
    assert [s.name for s in microsnap.Snapshot.list()] == ["x", "after-setup"]
    assert len(microsnap.Snapshot.list_dir(default_home / "snapshots")) == 2
    assert microsnap.Snapshot.reindex() == 2
    assert microsnap.Snapshot.verify("x").upper.kind == "not_recorded"
    with microsnap.Sandbox.create("worker", snapshot="x") as sb:
        assert sb.info().from_snapshot == snap.digest
    microsnap.Snapshot.remove("x", force=False)
    assert [s.name for s in microsnap.Snapshot.list()] == ["after-setup"]

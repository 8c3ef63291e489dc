"""Snapshot.export and Snapshot.import_: archives, parents, images, options, failures."""

from __future__ import annotations

import tarfile

import pytest
from conftest import IMAGE, UPPER_SIZE, StrPath, stopped_sandbox, write_pattern

import microsnap

MARKER = b"MICROSNAP-PYTHON-ARCHIVE-MARKER"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@pytest.fixture
def other(tmp_path):
    """A second, empty home (no images) to import into."""
    with microsnap.Home(tmp_path / "other") as h:
        yield h


def snapshot_with_marker(home, name="x", sandbox="baseline"):
    h = stopped_sandbox(home, sandbox)
    with home.Sandbox.start(sandbox) as sb:
        write_pattern(sb.info().upper_path, {4096: MARKER})
    return h.snapshot(name, record_integrity=True)


def test_export_zstd_and_import_round_trip(home, other, tmp_path):
    art = snapshot_with_marker(home)
    result = home.Snapshot.export("x", tmp_path / "x.tar.zst")
    assert isinstance(result, microsnap.ExportResult)
    assert result.path == tmp_path / "x.tar.zst"
    assert result.snapshots == (art.digest,)
    assert result.bytes_written == result.path.stat().st_size > 0
    assert result.path.read_bytes()[:4] == ZSTD_MAGIC
    imported = other.Snapshot.import_(result.path)
    assert isinstance(imported, microsnap.SnapshotHandle)
    assert imported.digest == art.digest
    assert imported.path.parent == other.path / "snapshots"
    assert imported.labels == art.labels and imported.size_bytes == UPPER_SIZE
    assert other.Snapshot.verify(imported).upper.digest == art.integrity.digest
    assert imported.open().upper_path.read_bytes() == art.upper_path.read_bytes()
    assert [s.digest for s in other.Snapshot.list()] == [art.digest]


def test_plain_tar_holds_manifest_and_upper(home, tmp_path):
    art = snapshot_with_marker(home)
    result = home.Snapshot.export(art, tmp_path / "x.tar", plain_tar=True)
    with tarfile.open(result.path) as tar:
        names = tar.getnames()
    assert any(n.endswith("/manifest.json") for n in names)
    assert any(n.endswith("/" + art.upper_file) for n in names)


def test_dense_stores_holes_sparse_does_not(home, tmp_path):
    snapshot_with_marker(home)
    sparse = home.Snapshot.export("x", tmp_path / "sparse.tar", plain_tar=True)
    dense = home.Snapshot.export("x", tmp_path / "dense.tar", plain_tar=True, dense=True)
    assert sparse.bytes_written < UPPER_SIZE // 4
    assert dense.bytes_written >= UPPER_SIZE


def test_level_and_threads(home, other, tmp_path):
    art = snapshot_with_marker(home)
    result = home.Snapshot.export("x", tmp_path / "x.tar.zst", level=19, threads=2)
    assert other.Snapshot.import_(result.path).digest == art.digest


def test_with_parents_and_with_image(home, other, tmp_path):
    parent = snapshot_with_marker(home, "parent")
    with home.Sandbox.create("worker", snapshot="parent") as sb:
        write_pattern(sb.info().upper_path, {8192: b"child data"})
    child = home.Sandbox.get("worker").snapshot("child")
    alone = home.Snapshot.export("child", tmp_path / "alone.tar.zst")
    assert alone.snapshots == (child.digest,)
    full = home.Snapshot.export("child", tmp_path / "full.tar.zst", with_parents=True, with_image=True)
    assert full.snapshots == (parent.digest, child.digest)
    assert other.Image.list() == []
    head = other.Snapshot.import_(full.path)
    assert head.digest == child.digest and head.parent_digest == parent.digest
    assert {s.digest for s in other.Snapshot.list()} == {parent.digest, child.digest}
    assert [i.ref for i in other.Image.list()] == [IMAGE]
    # the imported snapshot boots in the new home: its image came along
    with other.Sandbox.create("booted", snapshot=head) as sb:
        assert sb.info().upper_path.read_bytes() == child.upper_path.read_bytes()


def test_import_into_dest(home, other, tmp_path):
    snapshot_with_marker(home)
    archive = home.Snapshot.export("x", tmp_path / "x.tar.zst").path
    dest = tmp_path / "dest"
    head = other.Snapshot.import_(archive, dest=dest)
    assert head.path.parent == dest


def test_import_under_a_name(home, other, tmp_path):
    snapshot_with_marker(home)
    archive = home.Snapshot.export("x", tmp_path / "x.tar.zst").path
    head = other.Snapshot.import_(archive, name="mine")
    assert head.name == "mine"
    assert other.Snapshot.get("mine").digest == head.digest
    with pytest.raises(microsnap.InvalidArgument):
        other.Snapshot.import_(archive, name="../up")


def test_pathlike_arguments(home, other, tmp_path):
    snapshot_with_marker(home)
    result = home.Snapshot.export("x", StrPath(tmp_path / "p.tar.zst"))
    assert result.path == tmp_path / "p.tar.zst"
    head = other.Snapshot.import_(StrPath(result.path), dest=StrPath(tmp_path / "d"))
    assert head.path.parent == tmp_path / "d"


def test_garbage_is_an_invalid_archive(other, tmp_path):
    junk = tmp_path / "junk.tar.zst"
    junk.write_bytes(b"this is not an archive" * 100)
    with pytest.raises(microsnap.InvalidArchive) as e:
        other.Snapshot.import_(junk)
    assert e.value.code == "invalid_archive" and e.value.status == 10
    assert other.Snapshot.list() == []


def test_tampered_archive_is_an_integrity_mismatch(home, other, tmp_path):
    snapshot_with_marker(home)
    archive = home.Snapshot.export("x", tmp_path / "x.tar", plain_tar=True).path
    data = bytearray(archive.read_bytes())
    at = data.find(MARKER)
    assert at > 0
    data[at] ^= 0xFF
    archive.write_bytes(bytes(data))
    with pytest.raises(microsnap.IntegrityMismatch):
        other.Snapshot.import_(archive)
    assert other.Snapshot.list() == []
    assert not any((other.path / "snapshots").iterdir())


def test_export_errors(home, tmp_path):
    with pytest.raises(microsnap.SnapshotNotFound):
        home.Snapshot.export("nope", tmp_path / "n.tar.zst")
    with pytest.raises(microsnap.IoError, match="missing.tar.zst"):
        home.Snapshot.import_(tmp_path / "missing.tar.zst")
    snapshot_with_marker(home)
    with pytest.raises(microsnap.IoError):
        home.Snapshot.export("x", tmp_path / "no-such-dir" / "x.tar.zst")


@pytest.mark.parametrize(
    ("arg", "value"), [("threads", -1), ("threads", 1 << 32), ("level", 1 << 31), ("level", -(1 << 31) - 1)]
)
def test_export_int_outside_the_abi_is_an_invalid_argument_naming_it(home, tmp_path, arg, value):
    snapshot_with_marker(home)
    with pytest.raises(microsnap.InvalidArgument) as e:
        home.Snapshot.export("x", tmp_path / "x.tar.zst", **{arg: value})
    assert e.value.message.startswith(f"{arg} ") and str(value) in e.value.message
    assert not (tmp_path / "x.tar.zst").exists()


@pytest.mark.parametrize("arg", ["threads", "level"])
def test_export_int_that_is_not_an_int_is_a_type_error(home, tmp_path, arg):
    snapshot_with_marker(home)
    for value in (True, 2.0, "3"):
        with pytest.raises(TypeError, match=rf"^{arg} must be an int"):
            home.Snapshot.export("x", tmp_path / "x.tar.zst", **{arg: value})


def test_progress_phases(home, other, tmp_path):
    snapshot_with_marker(home)
    export_phases: list[str] = []
    result = home.Snapshot.export("x", tmp_path / "x.tar.zst", progress=lambda p, d, t: export_phases.append(p))
    assert "export" in export_phases
    import_events: list[tuple[str, int, int]] = []
    other.Snapshot.import_(result.path, progress=lambda *e: import_events.append(e))
    assert "import" in [p for p, _, _ in import_events]


def test_cancelled_export_leaves_no_file(home, tmp_path):
    snapshot_with_marker(home)
    cancel = microsnap.Cancel()

    def progress(phase, done, total):
        if phase == "export":
            cancel.cancel()

    out = tmp_path / "x.tar"
    with pytest.raises(microsnap.Cancelled):
        home.Snapshot.export("x", out, plain_tar=True, progress=progress, cancel=cancel)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("x.tar")) == []


def test_cancelled_import_leaves_nothing(home, other, tmp_path):
    snapshot_with_marker(home)
    archive = home.Snapshot.export("x", tmp_path / "x.tar.zst").path

    def progress(phase, done, total):
        if done > 0:
            raise KeyboardInterrupt  # as if Ctrl-C landed in the callback

    with pytest.raises(KeyboardInterrupt):
        other.Snapshot.import_(archive, progress=progress)
    assert other.Snapshot.list() == []
    assert not any((other.path / "snapshots").iterdir())


def test_module_level_export_import(default_home, tmp_path):
    snapshot_with_marker(microsnap.Home(default_home))
    result = microsnap.Snapshot.export("x", tmp_path / "x.tar.zst", with_parents=False, with_image=False,
                                       plain_tar=False, dense=False, level=None, threads=None)
    microsnap.Snapshot.remove("x")
    head = microsnap.Snapshot.import_(result.path, dest=None)
    assert head.digest == result.snapshots[-1]
    assert microsnap.Snapshot.get(head.digest).path.parent == default_home / "snapshots"

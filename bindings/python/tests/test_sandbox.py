"""Sandbox: create from image / snapshot / adopted upper, start, stop, close, list, remove."""

from __future__ import annotations

import os

import pytest
from conftest import IMAGE, UPPER_SIZE, qcow2_upper, raw_upper, stopped_sandbox

import microsnap


def test_create_from_image_runs_and_stops(home):
    sb = home.Sandbox.create("baseline", image=IMAGE)
    assert isinstance(sb, microsnap.Sandbox)
    info = sb.info()
    assert (info.name, info.state, info.image_ref) == ("baseline", "running", IMAGE)
    assert info.size_bytes == 4 << 30, "default fresh upper is 4 GiB"
    assert info.upper_path.stat().st_size == 4 << 30
    assert info.upper_path.stat().st_blocks == 0, "fresh upper is sparse"
    stopped = sb.stop()
    assert stopped.state == "stopped"
    assert sb.stop().state == "stopped", "stopping twice is a no-op"
    assert sb.info().state == "stopped"
    sb.close()
    sb.close()  # idempotent
    assert sb.closed
    assert home.Sandbox.get("baseline").state == "stopped"


def test_create_fresh_with_size(home):
    with home.Sandbox.create("fresh", image=IMAGE, size=4 << 30) as sb:
        assert sb.info().size_bytes == 4 << 30
    with home.Sandbox.create("small", image=IMAGE, size=UPPER_SIZE) as sb:
        assert sb.info().upper_path.stat().st_size == UPPER_SIZE


def test_context_manager_stops_and_closes(home):
    with home.Sandbox.create("cm", image=IMAGE, size=UPPER_SIZE) as sb:
        assert home.Sandbox.get("cm").state == "running"
    assert sb.closed and sb.stopped
    assert home.Sandbox.get("cm").state == "stopped"


def test_close_without_stop_reads_as_crashed_and_mark_stopped_clears_it(home):
    sb = home.Sandbox.create("crashy", image=IMAGE, size=UPPER_SIZE)
    sb.close()
    assert home.Sandbox.get("crashy").state == "crashed"
    assert home.Sandbox.mark_stopped("crashy").state == "stopped"
    assert home.Sandbox.get("crashy").state == "stopped"


def test_handle_methods_start_refresh_mark_stopped_remove(home):
    created = home.Sandbox.create("h", image=IMAGE, size=UPPER_SIZE, start=False)
    assert isinstance(created, microsnap.SandboxHandle)
    assert created.state == "created"
    sb = created.start()
    assert created.refresh().state == "running"
    with pytest.raises(microsnap.SandboxRunning):
        created.start()
    with pytest.raises(microsnap.SandboxRunning):
        created.mark_stopped()
    with pytest.raises(microsnap.SandboxRunning):
        created.remove()
    sb.close()
    assert created.refresh().state == "crashed"
    assert created.mark_stopped().state == "stopped"
    created.remove()
    with pytest.raises(microsnap.SandboxNotFound):
        created.refresh()


def test_start_by_name(home):
    home.Sandbox.create("s", image=IMAGE, size=UPPER_SIZE, start=False)
    with home.Sandbox.start("s") as sb:
        assert sb.name == "s"
        assert sb.info().state == "running"
        with pytest.raises(microsnap.SandboxRunning):
            home.Sandbox.start("s")


def test_list_and_remove(home):
    for name in ("b", "a", "c"):
        home.Sandbox.create(name, image=IMAGE, size=UPPER_SIZE, start=False)
    assert [s.name for s in home.Sandbox.list()] == ["a", "b", "c"]
    home.Sandbox.remove("b")
    assert [s.name for s in home.Sandbox.list()] == ["a", "c"]
    assert not (home.path / "sandboxes" / "b").exists()
    with pytest.raises(microsnap.SandboxNotFound):
        home.Sandbox.remove("b")


def test_create_from_snapshot_copies_its_upper(home):
    base = stopped_sandbox(home, "baseline")
    snap = base.snapshot("x")
    with home.Sandbox.create("worker", snapshot="x") as sb:
        info = sb.info()
        assert info.from_snapshot == snap.digest
        assert info.image_ref == IMAGE
        assert info.upper_path.read_bytes() == base.upper_path.read_bytes()
    # a SnapshotHandle works as the source too
    with home.Sandbox.create("worker2", snapshot=home.Snapshot.get("x")) as sb:
        assert sb.info().from_snapshot == snap.digest


def test_adopt_raw_upper(home, tmp_path):
    upper = raw_upper(tmp_path / "upper.ext4")
    with home.Sandbox.create("adopted", image=IMAGE, upper=str(upper), fstype="ext4") as sb:
        info = sb.info()
        assert (info.format, info.fstype, info.size_bytes) == ("raw", "ext4", UPPER_SIZE)
        assert info.upper_path != upper
        assert info.upper_path.read_bytes() == upper.read_bytes()


def test_adopt_qcow2_upper_is_detected(home, tmp_path):
    upper = qcow2_upper(tmp_path / "disk.img")
    with home.Sandbox.create("q", image=IMAGE, upper=upper, fstype="ext4") as sb:
        info = sb.info()
        assert info.format == "qcow2"
        assert info.upper_path.name == "upper.qcow2"


def test_adopt_qcow2_with_backing_file_is_unsupported(home, tmp_path):
    upper = qcow2_upper(tmp_path / "backed.qcow2", backing_offset=512)
    with pytest.raises(microsnap.Unsupported) as e:
        home.Sandbox.create("backed", image=IMAGE, upper=upper, fstype="ext4")
    assert "backing file" in e.value.message
    assert not (home.path / "sandboxes" / "backed").exists()


def test_create_errors(home):
    with pytest.raises(microsnap.ImageNotFound):
        home.Sandbox.create("x", image="nope:1")
    with pytest.raises(microsnap.SnapshotNotFound):
        home.Sandbox.create("x", snapshot="nope")
    with pytest.raises(microsnap.InvalidArgument):
        home.Sandbox.create("x")  # no source
    with pytest.raises(microsnap.InvalidArgument):
        home.Sandbox.create("bad/name", image=IMAGE)
    home.Sandbox.create("dup", image=IMAGE, size=UPPER_SIZE, start=False)
    with pytest.raises(microsnap.AlreadyExists):
        home.Sandbox.create("dup", image=IMAGE, size=UPPER_SIZE)
    assert [s.name for s in home.Sandbox.list()] == ["dup"]


@pytest.mark.parametrize("size", [1 << 63, (1 << 64) + 1, -1, -(1 << 63)])
def test_size_outside_the_abi_is_an_invalid_argument_naming_it(home, size):
    """Python ints are unbounded; the ABI's size is 0..2**63-1 bytes (issue 19 §3)."""
    with pytest.raises(microsnap.InvalidArgument) as e:
        home.Sandbox.create("big", image=IMAGE, size=size)
    assert isinstance(e.value, ValueError)
    assert e.value.message.startswith("size ") and str(size) in e.value.message
    assert "out of range integral type conversion" not in e.value.message
    assert home.Sandbox.list() == []
    assert not (home.path / "sandboxes" / "big").exists()


@pytest.mark.parametrize("size", [True, False, 1.5, 4.0, "4G", b"1"])
def test_size_that_is_not_an_int_is_a_type_error(home, size):
    """A float must not become a 1-byte upper, nor True a 1-byte one."""
    with pytest.raises(TypeError, match=r"^size must be an int"):
        home.Sandbox.create("odd", image=IMAGE, size=size)
    assert home.Sandbox.list() == []


def test_size_bounds_are_the_abi_s():
    from microsnap._ints import SIZE_MAX, int_arg

    assert int_arg("size", 0, 0, SIZE_MAX) == 0
    assert int_arg("size", (1 << 63) - 1, 0, SIZE_MAX) == SIZE_MAX == (1 << 63) - 1
    with pytest.raises(microsnap.InvalidArgument) as e:
        int_arg("size", 1 << 63, 0, SIZE_MAX, " bytes")
    assert e.value.message == "size must be 0 to 2**63-1 bytes, not 9223372036854775808"


def test_size_accepts_any_integer_type(home):
    """What operator.index accepts (numpy ints, IntEnum, ...) is an int size."""

    class Bytes:
        def __index__(self) -> int:
            return UPPER_SIZE

    with home.Sandbox.create("indexed", image=IMAGE, size=Bytes()) as sb:
        assert sb.info().size_bytes == UPPER_SIZE


def test_module_level_api_uses_microsnap_home(default_home):
    with microsnap.Sandbox.create("baseline", image=IMAGE, size=UPPER_SIZE) as sb:
        assert sb.info().upper_path.is_relative_to(default_home)
    h = microsnap.Sandbox.get("baseline")
    assert isinstance(h, microsnap.SandboxHandle)
    assert [s.name for s in microsnap.Sandbox.list()] == ["baseline"]
    microsnap.Sandbox.remove("baseline")
    assert microsnap.Sandbox.list() == []


def test_microsnap_home_change_is_honoured(home_dir, tmp_path, monkeypatch, image_layout):
    other = tmp_path / "other"
    monkeypatch.setenv("MICROSNAP_HOME", str(home_dir))
    microsnap.Sandbox.create("one", image=IMAGE, size=UPPER_SIZE, start=False)
    monkeypatch.setenv("MICROSNAP_HOME", str(other))
    assert microsnap.Sandbox.list() == []
    assert (other / "sandboxes").is_dir() or other.is_dir()


def test_bound_classes_are_subclasses(home):
    assert issubclass(home.Sandbox, microsnap.Sandbox)
    assert issubclass(home.Snapshot, microsnap.Snapshot)
    with home.Sandbox.create("i", image=IMAGE, size=UPPER_SIZE) as sb:
        assert isinstance(sb, microsnap.Sandbox)
    with pytest.raises(TypeError):
        microsnap.Snapshot()


def test_closed_home_is_an_invalid_argument(home_dir):
    h = microsnap.Home(home_dir)
    h.close()
    h.close()
    with pytest.raises(microsnap.InvalidArgument, match="closed"):
        h.Sandbox.list()


def test_forgotten_sandbox_releases_its_lock_when_collected(home):
    import gc

    sb = home.Sandbox.create("gc", image=IMAGE, size=UPPER_SIZE)
    del sb
    gc.collect()
    assert home.Sandbox.get("gc").state == "crashed"
    with home.Sandbox.start("gc"):
        pass


def test_upper_is_a_private_copy(home, tmp_path):
    upper = raw_upper(tmp_path / "u.ext4")
    with home.Sandbox.create("p", image=IMAGE, upper=upper, fstype="ext4") as sb:
        path = sb.info().upper_path
    os.truncate(upper, 0)
    assert path.stat().st_size == UPPER_SIZE

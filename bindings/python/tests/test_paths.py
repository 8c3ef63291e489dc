"""Every path argument takes str, pathlib.Path and any other os.PathLike."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import IMAGE, StrPath, raw_upper, stopped_sandbox

import microsnap

KINDS = [str, Path, StrPath]


@pytest.mark.parametrize("kind", KINDS, ids=["str", "Path", "PathLike"])
def test_path_arguments(home_dir, tmp_path, kind):
    with microsnap.Home(kind(home_dir)) as home:
        assert home.path == home_dir
        h = stopped_sandbox(home, "baseline")
        out = tmp_path / "out"
        art = home.Snapshot.create("baseline", path=kind(out / "a"))
        assert art.path == out / "a"
        h.snapshot_to(kind(out / "b"))
        assert home.Snapshot.open(kind(out / "a")) == art
        assert home.Snapshot.get(kind(out / "a")).digest == art.digest
        assert sorted(a.path.name for a in home.Snapshot.list_dir(kind(out))) == ["a", "b"]
        assert home.Snapshot.verify(kind(out / "a")).digest == art.digest
        assert home.Snapshot.reindex(kind(out)) == 2
        upper = raw_upper(tmp_path / "adopt.ext4")
        with home.Sandbox.create("adopted", image=IMAGE, upper=kind(upper), fstype="ext4") as sb:
            assert sb.info().format == "raw"
        with home.Sandbox.create("from-path", snapshot=kind(out / "a")) as sb:
            assert sb.info().from_snapshot == art.digest
        home.Snapshot.remove(kind(out / "b"))
        assert not (out / "b").exists()
        assert home.Image.import_(kind(home_dir / "images"))[0].ref == IMAGE


def test_relative_pathlike_is_a_path_not_a_name(home, tmp_path, monkeypatch):
    """A relative Path("x") means ./x, even when a snapshot is named x."""
    h = stopped_sandbox(home, "baseline")
    named = h.snapshot("x")
    monkeypatch.chdir(tmp_path)
    local = h.snapshot_to(Path("x"))
    assert local.path == tmp_path / "x"
    assert home.Snapshot.open(Path("x")) == local
    assert home.Snapshot.open("x") == named


def test_non_path_is_a_type_error(home):
    with pytest.raises(TypeError):
        home.Snapshot.list_dir(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        home.Snapshot.open(3.5)  # type: ignore[arg-type]


def test_bytes_pathlike_is_decoded(home, tmp_path):
    class BytesPath(os.PathLike):
        def __fspath__(self) -> bytes:
            return os.fsencode(tmp_path / "bytes")

    stopped_sandbox(home, "baseline")
    art = home.Snapshot.create("baseline", path=BytesPath())
    assert art.path == tmp_path / "bytes"

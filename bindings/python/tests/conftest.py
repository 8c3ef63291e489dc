"""Shared fixtures: a real OCI image layout, fresh homes, sparse uppers.

The tests import the package from bindings/python/src (no install needed)
and the library from the repository's cargo output unless MICROSNAP_LIB
says otherwise.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE_SRC = Path(__file__).resolve().parents[1] / "src"
REPO = Path(__file__).resolve().parents[3]
IMAGE_FIXTURE = REPO / "tests" / "fixtures" / "make_oci_image.py"
HEADER = REPO / "include" / "microsnap.h"
IMAGE = "alpine:3.20"
MIB = 1 << 20
UPPER_SIZE = 64 * MIB

if str(PACKAGE_SRC) not in sys.path:
    sys.path.insert(0, str(PACKAGE_SRC))

import microsnap


@pytest.fixture(scope="session")
def image_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI layout holding alpine:3.20, built once by the shared generator."""
    layout = tmp_path_factory.mktemp("oci") / "images"
    subprocess.run([sys.executable, str(IMAGE_FIXTURE), str(layout), IMAGE], check=True, capture_output=True)
    return layout


@pytest.fixture
def home_dir(tmp_path: Path, image_layout: Path) -> Path:
    """A fresh home directory whose image layout holds alpine:3.20."""
    root = tmp_path / "home"
    root.mkdir()
    shutil.copytree(image_layout, root / "images")
    return root


@pytest.fixture
def home(home_dir: Path) -> Iterator[microsnap.Home]:
    with microsnap.Home(home_dir) as h:
        yield h


@pytest.fixture
def default_home(home_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the module-level API at a fresh home through MICROSNAP_HOME."""
    monkeypatch.setenv("MICROSNAP_HOME", str(home_dir))
    return home_dir


def write_pattern(path: Path, chunks: dict[int, bytes]) -> None:
    """Write data at offsets into an existing (sparse) file."""
    with open(path, "r+b") as f:
        for offset, data in chunks.items():
            f.seek(offset)
            f.write(data)


def data_chunks(seed: int, count: int = 4, size: int = MIB) -> dict[int, bytes]:
    """``count`` chunks of distinct bytes spread over a 64 MiB upper."""
    step = UPPER_SIZE // count
    return {i * step: os.urandom(16) + bytes([seed % 256, i]) * (size // 2 - 8) for i in range(count)}


def stopped_sandbox(home: microsnap.Home, name: str, data: dict[int, bytes] | None = None) -> microsnap.SandboxHandle:
    """A sandbox on alpine:3.20 with a 64 MiB sparse upper holding ``data``, stopped."""
    with home.Sandbox.create(name, image=IMAGE, size=UPPER_SIZE) as sb:
        write_pattern(sb.info().upper_path, data if data is not None else data_chunks(len(name)))
    return home.Sandbox.get(name)


def raw_upper(path: Path, size: int = UPPER_SIZE) -> Path:
    """A sparse raw upper file with a little data."""
    with open(path, "wb") as f:
        f.truncate(size)
    write_pattern(path, {0: b"raw upper" * 100, size // 2: os.urandom(4096)})
    return path


def qcow2_upper(path: Path, virtual_size: int = UPPER_SIZE, backing_offset: int = 0) -> Path:
    """A qcow2 v3 image header (104 bytes) padded to one cluster."""
    header = struct.pack(
        ">4sIQIIQ",
        b"QFI\xfb",
        3,  # version
        backing_offset,  # backing_file_offset
        8 if backing_offset else 0,  # backing_file_size
        16,  # cluster_bits
        virtual_size,
    )
    header = header.ljust(104, b"\0")
    with open(path, "wb") as f:
        f.write(header)
        if backing_offset:
            f.seek(backing_offset)
            f.write(b"/etc/pwd")
        f.truncate(1 << 16)
    return path


class StrPath(os.PathLike):
    """An os.PathLike that is neither str nor pathlib.Path."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self._path = os.fspath(path)

    def __fspath__(self) -> str:
        return self._path

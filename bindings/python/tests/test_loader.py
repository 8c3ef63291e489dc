"""Finding libmicrosnap: MICROSNAP_LIB, bundled, repository build, system; ABI check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PACKAGE_SRC, REPO

import microsnap
from microsnap import _lib


def test_version_and_loaded_path():
    assert microsnap.library_version() == "0.1.0"
    assert Path(microsnap.library_path()).name.startswith("libmicrosnap.so")


def test_version_names_package_library_and_abi():
    want = f"{microsnap.__version__} (libmicrosnap {microsnap.library_version()}, ABI {microsnap.ABI_VERSION})"
    assert microsnap.version() == want


def test_candidate_order(monkeypatch):
    monkeypatch.delenv("MICROSNAP_LIB", raising=False)
    kinds = [where for where, _ in _lib.candidates()]
    assert kinds[0] == "bundled"
    assert kinds[-1] == "system loader"
    assert set(kinds[1:-1]) == {"repository build"}
    repo_paths = [Path(p) for where, p in _lib.candidates() if where == "repository build"]
    assert all(p.parent.parent == REPO / "target" for p in repo_paths)


def test_microsnap_lib_is_the_only_candidate(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere" / "libmicrosnap.so"
    monkeypatch.setenv("MICROSNAP_LIB", str(missing))
    assert _lib.candidates() == [("MICROSNAP_LIB", str(missing))]
    with pytest.raises(microsnap.LibraryError) as e:
        _lib.load()
    assert str(missing) in str(e.value) and "MICROSNAP_LIB" in str(e.value)
    assert isinstance(e.value, ImportError)


def test_microsnap_lib_loads_a_copy(monkeypatch, tmp_path):
    copy = tmp_path / "libmicrosnap.so"
    shutil.copyfile(microsnap.library_path(), copy)
    monkeypatch.setenv("MICROSNAP_LIB", str(copy))
    lib = _lib.load()
    assert lib._name == str(copy)
    assert lib.msnap_abi_version() == _lib.ABI_VERSION


def test_error_names_everything_tried(monkeypatch, tmp_path):
    monkeypatch.delenv("MICROSNAP_LIB", raising=False)
    monkeypatch.setattr(_lib, "_bundled", lambda: tmp_path / "bundled" / "libmicrosnap.so")
    monkeypatch.setattr(_lib, "_repo_build_outputs", lambda: [tmp_path / "target" / "libmicrosnap.so"])
    monkeypatch.setattr(_lib.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(_lib, "SYSTEM_NAME", "libmicrosnap-absent-for-test.so.0")
    with pytest.raises(microsnap.LibraryError) as e:
        _lib.load()
    text = str(e.value)
    for expected in ("bundled", "repository build", "system loader", "libmicrosnap-absent-for-test.so.0", str(tmp_path)):
        assert expected in text


def test_bundled_library_comes_before_the_repository_build(monkeypatch, tmp_path):
    monkeypatch.delenv("MICROSNAP_LIB", raising=False)
    bundled = tmp_path / "_native" / "libmicrosnap.so"
    bundled.parent.mkdir()
    shutil.copyfile(microsnap.library_path(), bundled)
    monkeypatch.setattr(_lib, "_bundled", lambda: bundled)
    assert _lib.load()._name == str(bundled)


def test_wrong_abi_version_is_refused(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a fake library")
    src = tmp_path / "fake.c"
    src.write_text("unsigned int msnap_abi_version(void) { return 99; }\n")
    fake = tmp_path / "libmicrosnap.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(fake), str(src)], check=True)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import microsnap\n"
        "try:\n    microsnap.Sandbox.list()\n"
        "except microsnap.LibraryError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(PACKAGE_SRC)],
        env={"MICROSNAP_LIB": str(fake), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ABI version 99" in out and f"version {_lib.ABI_VERSION}" in out and str(fake) in out


def test_import_does_not_load_the_library():
    """`import microsnap` works without a library; the first call reports it."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import microsnap, microsnap._lib as l\n"
        "print(l._loaded is None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(PACKAGE_SRC)],
        env={"MICROSNAP_LIB": "/nonexistent/libmicrosnap.so", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "True"

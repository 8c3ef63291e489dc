"""The wheel `make wheel` leaves in dist/, installed the way a user would.

A fresh virtualenv outside the clone, the README's own install lines (its
"Python wheel" block), then the README's Python quick start, all with no
environment but PATH and HOME: no MICROSNAP_LIB, no PYTHONPATH, so the
package can only work through the library it bundles.

Run by `make test-wheel` (part of `make test`), which builds the wheel first.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
VERSION = re.search(r'(?m)^version = "([^"]+)"', (REPO / "Cargo.toml").read_text()).group(1)


def _readme():
    """tests/readme/test_readme.py's README parser: the same blocks it claims."""
    spec = importlib.util.spec_from_file_location("readme_blocks", REPO / "tests" / "readme" / "test_readme.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


readme = _readme()


@pytest.fixture(scope="module")
def wheel() -> pathlib.Path:
    found = sorted((REPO / "dist").glob("microsnap-*.whl"))
    assert len(found) == 1, f"want one wheel in dist/, got {found}: run `make wheel`"
    return found[0]


@pytest.fixture(scope="module")
def user_home(tmp_path_factory) -> pathlib.Path:
    home = tmp_path_factory.mktemp("user-home")
    assert REPO not in home.resolve().parents, "the install must happen outside the clone"
    return home


def user_env(home: pathlib.Path) -> dict[str, str]:
    # Only PATH and HOME. python3 is this interpreter (a pyenv shim would need
    # the real HOME to find its versions).
    return {"PATH": f"{pathlib.Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(home)}


def run(script: str, cwd: pathlib.Path, env: dict[str, str]) -> str:
    proc = subprocess.run(["bash", "-c", "set -euo pipefail\n" + script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- script\n{script}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc.stdout


def test_wheel_is_tagged_for_the_platform(wheel: pathlib.Path) -> None:
    # name-version-python-abi-platform.whl
    _, version, python, abi, platform = wheel.stem.split("-")
    assert version == VERSION
    assert (python, abi) == ("py3", "none"), wheel.name  # ctypes: any CPython 3
    # auditwheel repair retagged it with the policy the library meets.
    assert re.fullmatch(r"manylinux_\d+_\d+_x86_64", platform), wheel.name
    with zipfile.ZipFile(wheel) as z:
        assert "Root-Is-Purelib: false" in z.read(f"microsnap-{version}.dist-info/WHEEL").decode()
        bundled = z.read("microsnap/_native/libmicrosnap.so")
    # The stripped release library, as `make install` ships it.
    assert bundled == (REPO / "build" / "dist-release" / f"libmicrosnap.so.{VERSION}").read_bytes()


@pytest.fixture(scope="module")
def installed(wheel: pathlib.Path, user_home: pathlib.Path) -> pathlib.Path:
    """The README's "Python wheel" block, run as written from the clone."""
    out = run(readme.block("Python wheel", "sh"), REPO, user_env(user_home))
    assert out.splitlines()[-1] == f"{VERSION} (libmicrosnap {VERSION}, ABI 1)", out
    python = user_home / "venvs" / "microsnap" / "bin" / "python"
    assert python.exists(), out
    return python


def test_installed_package_loads_its_bundled_library(installed: pathlib.Path, user_home: pathlib.Path) -> None:
    code = "import microsnap; print(microsnap.__file__); print(microsnap.library_path())"
    module_file, library = run(f"{installed} -c '{code}'", user_home, user_env(user_home)).split()
    package = pathlib.Path(module_file).parent
    assert package.parent.name == "site-packages" and REPO not in package.parents, module_file
    assert pathlib.Path(library) == package / "_native" / "libmicrosnap.so"


def test_readme_python_quick_start_on_the_wheel(installed: pathlib.Path, user_home: pathlib.Path,
                                                tmp_path: pathlib.Path) -> None:
    work = tmp_path / "qs"
    work.mkdir()
    # The image the quick starts import, made by the clone's fixture tool (the
    # README's image block); everything after it runs on the installed wheel.
    run(readme.block("Quick starts", "sh", 1), work, dict(user_env(user_home), MICROSNAP_SRC=str(REPO)))
    (work / "quickstart.py").write_text(readme.block("Python", "python"))
    lines = run(f"{installed} quickstart.py", work, user_env(user_home)).splitlines()
    assert readme.DIGEST_NOT_RECORDED.fullmatch(lines[-2]), lines
    assert lines[-1] == "['after-setup']", lines
    assert (work / "after-setup.tar.zst").stat().st_size > 0

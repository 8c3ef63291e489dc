"""`pip install ./bindings/python` gives a package that loads its bundled library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import microsnap

PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def test_pip_install_bundles_the_library(tmp_path):
    # Build from a copy so the source tree gets no build/ directory.
    source = tmp_path / "src-copy"
    shutil.copytree(PACKAGE_ROOT, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MICROSNAP_LIB")}
    build_env = dict(env, MICROSNAP_LIB=microsnap.library_path())
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(source)],
        check=True,
        env=build_env,
        capture_output=True,
    )
    home = tmp_path / "home"
    code = "import microsnap; print(microsnap.library_path()); print(microsnap.Sandbox.list())"
    out = subprocess.run(
        [str(python), "-c", code],
        check=True,
        env=dict(env, MICROSNAP_HOME=str(home)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(venv)) and out[0].endswith("microsnap/_native/libmicrosnap.so")
    assert out[1] == "[]"
    package = Path(out[0]).parents[1]
    assert (package / "py.typed").is_file()

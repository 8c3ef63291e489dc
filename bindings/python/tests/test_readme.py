"""The README's Python quick start runs as written (on a temporary home)."""
from __future__ import annotations

import contextlib
import io
import pathlib
import re
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[3]


def test_readme_python_quick_start_runs(tmp_path: pathlib.Path) -> None:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python quick start", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block, "no python block in the README's Python quick start"
    code = block.group(1).replace("/tmp/msnap-quickstart", str(tmp_path / "home"))
    subprocess.run(
        [sys.executable, str(REPO / "tests/fixtures/make_oci_image.py"),
         str(tmp_path / "home" / "images"), "alpine:3.20"],
        check=True, capture_output=True,
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"sha256:[0-9a-f]{64} not_recorded", lines[0]), lines
    assert lines[1] == "['after-setup']", lines
    assert (tmp_path / "home" / "after-setup.tar.zst").stat().st_size > 0

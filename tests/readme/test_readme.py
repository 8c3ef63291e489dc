"""Every code block of README.md, run as written, outside the repository.

The blocks are read from README.md here, so the README and this test cannot
drift apart: a block that no test claims fails `test_every_block_is_claimed`.
Each quick start runs in a fresh temporary directory (outside the clone), as
`bash -e` after the README's own setup block (run in the clone) and its image
block (run in that directory), so a failing command fails the test.

Run by `make test-readme` (part of `make test`), which builds bin/microsnap and
the library first.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import shlex
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
README = REPO / "README.md"
LIB = REPO / "target" / "debug" / "libmicrosnap.so"


@dataclasses.dataclass
class Block:
    section: str  # the nearest heading above the block
    lang: str  # the fence's info string ("" for none)
    code: str


def readme_blocks() -> list[Block]:
    blocks: list[Block] = []
    section = ""
    lines = README.read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"#+ (.*)", line)
        fence = re.match(r"```(\w*)\s*$", line)
        if heading:
            section = heading.group(1).strip()
        elif fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            blocks.append(Block(section, fence.group(1), "".join(lines[i + 1 : end])))
            i = end
        i += 1
    return blocks


def block(section: str, lang: str, nth: int = 0) -> str:
    found = [b.code for b in readme_blocks() if b.section == section and b.lang == lang]
    assert len(found) > nth, f"README.md has no {lang or 'plain'} block #{nth} under {section!r}"
    return found[nth]


# Which test runs each block, in README order.
CLAIMED = [
    ("Two commands", "sh", "test_make_blocks_name_real_targets"),
    ("Quick starts", "sh", "every quick start (the setup, run in the clone)"),
    ("Quick starts", "sh", "every quick start (the image layout)"),
    ("CLI", "sh", "test_cli_quick_start"),
    ("Go", "go", "test_go_quick_start"),
    ("Go", "sh", "test_go_quick_start"),
    ("Python", "python", "test_python_quick_start"),
    ("Python", "sh", "test_python_quick_start"),
    ("C", "c", "test_c_quick_start"),
    ("C", "sh", "test_c_quick_start"),
    ("Share snapshots through a registry", "sh", "test_registry_quick_start"),
    ("Command line", "", "test_cli_synopsis_matches_the_cli"),
    ("Install", "sh", "test_make_blocks_name_real_targets"),
    ("Python wheel", "sh", "tests/wheel/test_wheel.py (make test-wheel)"),
    ("Go module", "sh", "tests/install/go_module.sh (make test-install)"),
]


def test_every_block_is_claimed() -> None:
    got = [(b.section, b.lang) for b in readme_blocks()]
    want = [(s, lang) for s, lang, _ in CLAIMED]
    assert got == want, "README.md's code blocks changed: claim each new block in CLAIMED and run it"


def run_quick_start(workdir: pathlib.Path, snippet: str, env: dict[str, str] | None = None) -> str:
    """The README's setup (in the clone), its image block and `snippet` (in
    `workdir`), as one `bash -e` script; returns stdout, fails on any error."""
    script = "\n".join([
        "set -euo pipefail",
        f"cd {shlex.quote(str(REPO))}",
        block("Quick starts", "sh", 0),
        f"cd {shlex.quote(str(workdir))}",
        block("Quick starts", "sh", 1),
        snippet,
    ])
    proc = subprocess.run(["bash", "-c", script], cwd=workdir, env=clean_env(env),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- script\n{script}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc.stdout


def clean_env(extra: dict[str, str] | None) -> dict[str, str]:
    """The caller's environment without anything that would point the
    snippets at another home or library than the README says."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MICROSNAP_HOME", "MICROSNAP_LIB", "MICROSNAP_SRC", "PYTHONPATH")}
    env.update(extra or {})
    return env


@pytest.fixture
def workdir(tmp_path: pathlib.Path) -> pathlib.Path:
    d = tmp_path / "qs"
    d.mkdir()
    assert REPO not in d.resolve().parents, "the quick starts must run outside the clone"
    return d


@pytest.fixture(scope="session", autouse=True)
def built() -> None:
    for path in (LIB, REPO / "bin" / "microsnap"):
        assert path.exists(), f"{path} missing: run `make test-readme` (it builds them)"


DIGEST_NOT_RECORDED = re.compile(r"sha256:[0-9a-f]{64} not_recorded")


def test_cli_quick_start(workdir: pathlib.Path) -> None:
    out = run_quick_start(workdir, block("CLI", "sh"))
    assert "imported alpine:3.20 sha256:" in out, out
    digest = re.search(r"created .*/snapshots/after-setup\n\s+digest (sha256:[0-9a-f]{64})", out)
    assert digest, out
    assert re.search(r"after-setup: verified ", out), out
    assert (workdir / "msnap-home" / "sandboxes" / "worker").is_dir()
    assert (workdir / "after-setup.tar.zst").stat().st_size > 0
    # The second home lists the imported snapshot under the archive's name.
    listing = out[out.rindex("imported after-setup.tar.zst"):]
    assert "sha256-" + digest.group(1)[7:23] in listing, out


def test_go_quick_start(workdir: pathlib.Path) -> None:
    (workdir / "main.go").write_text(block("Go", "go"))
    # Offline and with the local toolchain: nothing may be downloaded.
    out = run_quick_start(workdir, block("Go", "sh"),
                          {"GOPROXY": "off", "GOTOOLCHAIN": "local", "GOFLAGS": ""})
    assert DIGEST_NOT_RECORDED.fullmatch(out.strip().splitlines()[-1]), out


def test_python_quick_start(workdir: pathlib.Path) -> None:
    (workdir / "quickstart.py").write_text(block("Python", "python"))
    out = run_quick_start(workdir, block("Python", "sh"))
    lines = out.splitlines()
    assert DIGEST_NOT_RECORDED.fullmatch(lines[-2]), out
    assert lines[-1] == "['after-setup']", out
    assert (workdir / "after-setup.tar.zst").stat().st_size > 0


def test_c_quick_start(workdir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    # `make install` into a scratch prefix (the debug build, as test-install does).
    prefix = tmp_path / "prefix"
    subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "install",
                    f"PREFIX={prefix}", "INSTALL_PROFILE=debug"],
                   check=True, capture_output=True)
    (workdir / "quickstart.c").write_text(block("C", "c"))
    out = run_quick_start(workdir, block("C", "sh"),
                          {"PKG_CONFIG_PATH": str(prefix / "lib" / "pkgconfig")})
    lines = out.splitlines()
    assert lines[-3].startswith("open: {"), out
    assert lines[-2].startswith("import: {\"images\":[{"), out
    assert '"ref":"alpine:3.20"' in lines[-1], out


def json_objects(text: str) -> list[dict]:
    """Every JSON object printed from the start of a line of `text`."""
    decoder, found, end = json.JSONDecoder(), [], 0
    for match in re.finditer(r"^\{", text, re.M):
        if match.start() >= end:
            obj, end = decoder.raw_decode(text, match.start())
            found.append(obj)
    return found


def test_registry_quick_start(workdir: pathlib.Path) -> None:
    out = run_quick_start(workdir, block("Share snapshots through a registry", "sh"))
    # The two --json outputs: the child's push report, then the pull's.
    objects = json_objects(out)
    assert len(objects) == 2, out
    push, pull = objects
    assert push["chunks_uploaded"] == 1 and push["chunks_reused"] == 16, push
    report = pull["report"]
    assert report["snapshot_digest"] == push["snapshot_digest"], pull
    assert report["chunks_downloaded"] == 1, report
    assert report["bytes_copied_locally"] == 16 * 65536, report
    assert re.search(r"v2: verified ", out), out
    assert (workdir / "host-b" / "sandboxes" / "worker").is_dir()


def test_make_blocks_name_real_targets() -> None:
    # `make test` cannot run inside `make test`, and `make install
    # PREFIX=/usr/local` would write outside the build: these blocks are
    # checked as a dry run (`make -n`) of exactly their arguments. The
    # install itself runs for real in test_c_quick_start.
    for section in ("Two commands", "Install"):
        for line in block(section, "sh").splitlines():
            command = line.split("#", 1)[0].split()
            if not command:
                continue
            assert command[0] == "make", f"{section}: not a make line: {line}"
            dry = subprocess.run(["make", "-n", *command[1:]], cwd=REPO, capture_output=True, text=True)
            assert dry.returncode == 0, f"{line}: {dry.stderr}"


def split_top_level(s: str, sep: str = " | ") -> list[str]:
    """Split on `sep` outside () and []: `(--image REF | --snapshot NAME)` is one."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(s):
        if s[i] in "([":
            depth += 1
        elif s[i] in ")]":
            depth -= 1
        elif depth == 0 and s.startswith(sep, i):
            parts.append(s[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    parts.append(s[start:])
    return parts


def cli_commands(*path: str) -> list[str]:
    """The commands `microsnap PATH --help` lists under "Available Commands"."""
    help_text = subprocess.run([str(REPO / "bin" / "microsnap"), *path, "--help"],
                               capture_output=True, text=True, check=True).stdout
    section = help_text.split("Available Commands:", 1)
    if len(section) == 1:
        return []
    names = []
    for line in section[1].splitlines():
        if line.startswith("  "):
            names.append(line.split()[0])
        elif names:  # the blank line that ends the section
            break
    return [n for n in names if n != "help"]


def test_cli_synopsis_matches_the_cli() -> None:
    # What the CLI offers: (group, command) for the grouped commands, (command,
    # None) for a top-level one; `completion`'s shells are one entry, as the
    # README writes them.
    offered = set()
    for top in cli_commands():
        subs = [] if top == "completion" else cli_commands(top)
        offered |= {(top, sub) for sub in subs} if subs else {(top, None)}
    groups = {g for g, sub in offered if sub is not None}
    documented = set()
    for line in block("Command line", "").splitlines():
        words = line.split()
        assert words[:1] == ["microsnap"], line
        if words[1] in groups:
            for usage in split_top_level(" ".join(words[2:])):
                documented.add((words[1], usage.split()[0]))
        else:
            for usage in split_top_level(" ".join(words[1:])):
                documented.add((usage.split()[0], None))
    assert documented == offered, (
        f"in the README only: {sorted(documented - offered, key=str)}; "
        f"in the CLI's help only: {sorted(offered - documented, key=str)}")

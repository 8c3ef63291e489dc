"""Bundle the already-built libmicrosnap.so into the package (no compiler runs).

The library comes from $MICROSNAP_LIB if set, else the repository's
target/release, else target/debug (run `cargo build --lib` first). Without
one, the package installs without a bundled library and finds one at run
time (MICROSNAP_LIB, the repository build, the system loader).
"""

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution
from setuptools.command.bdist_wheel import bdist_wheel

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LIBRARY = "libmicrosnap.so"


def built_library():
    explicit = os.environ.get("MICROSNAP_LIB")
    if explicit:
        return Path(explicit)
    for profile in ("release", "debug"):
        candidate = REPO / "target" / profile / LIBRARY
        if candidate.is_file():
            return candidate
    return None


class BuildPyWithLibrary(build_py):
    def run(self):
        super().run()
        source = built_library()
        if source is None:
            print(f"microsnap: no built {LIBRARY} found; installing without a bundled library")
            return
        target = Path(self.build_lib) / "microsnap" / "_native" / LIBRARY
        target.parent.mkdir(parents=True, exist_ok=True)
        # copyfile resolves symlinks: the wheel gets the real file.
        shutil.copyfile(source, target)
        os.chmod(target, 0o755)
        print(f"microsnap: bundled {source}")


class BinaryDistribution(Distribution):
    """A wheel holding a native library is platform-specific."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """Tagged py3-none-<platform>: the package is pure Python (ctypes), so any
    Python 3 runs it, but the bundled library is built for one platform.
    `make wheel` then lets auditwheel turn linux_x86_64 into the manylinux
    tag the library qualifies for."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


setup(
    cmdclass={"build_py": BuildPyWithLibrary, "bdist_wheel": PlatformWheel},
    distclass=BinaryDistribution,
)

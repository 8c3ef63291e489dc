"""Finding and loading libmicrosnap, and the ctypes signature of every function.

Every function of ``include/microsnap.h`` is declared in ``SIGNATURES`` with
its exact argument and result types (a test compares the table with the
header), so ctypes converts and checks each argument instead of guessing.
Handles are distinct opaque pointer types, so passing a cancel token where a
context is expected is a ``ctypes.ArgumentError`` before the call is made.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from pathlib import Path

#: The ABI version this package was written for (``MSNAP_ABI_VERSION``).
ABI_VERSION = 1

LIBRARY_NAME = "libmicrosnap.so"
#: What the system loader is asked for when ldconfig does not know the library.
SYSTEM_NAME = "libmicrosnap.so.0"


class LibraryError(ImportError):
    """libmicrosnap could not be found or loaded, or speaks another ABI."""

    # Shown (and pickled) by the name users import it by.
    __module__ = "microsnap"


# ---- C types -------------------------------------------------------------


class msnap_context(ctypes.Structure):
    """Opaque: a context bound to one home directory."""


class msnap_cancel(ctypes.Structure):
    """Opaque: a cancellation token."""


class msnap_sandbox(ctypes.Structure):
    """Opaque: a running sandbox (holds its lock)."""


ContextPtr = ctypes.POINTER(msnap_context)
CancelPtr = ctypes.POINTER(msnap_cancel)
SandboxPtr = ctypes.POINTER(msnap_sandbox)

#: A library-owned string (``char *``). Not ``c_char_p``, which would copy it
#: into ``bytes`` and lose the pointer that ``msnap_string_free`` needs.
OwnedString = ctypes.POINTER(ctypes.c_char)

#: ``int32_t (*)(const char *phase, uint64_t done, uint64_t total, void *payload)``
PROGRESS_FN = ctypes.CFUNCTYPE(
    ctypes.c_int32, ctypes.c_char_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_void_p
)

_i32 = ctypes.c_int32
_str = ctypes.c_char_p  # const char * argument (JSON in)
_out = ctypes.POINTER(OwnedString)  # char **out
_long_tail = [CancelPtr, PROGRESS_FN, ctypes.c_void_p]

#: name -> (restype, argtypes), in header order.
SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "msnap_abi_version": (ctypes.c_uint32, []),
    "msnap_version": (ctypes.c_char_p, []),
    "msnap_string_free": (None, [OwnedString]),
    "msnap_context_open": (_i32, [ctypes.POINTER(ContextPtr), _out, _str]),
    "msnap_context_free": (_i32, [ContextPtr]),
    # Deprecated alias of msnap_context_free, still in the header.
    "msnap_context_close": (_i32, [ContextPtr]),
    "msnap_cancel_new": (_i32, [ctypes.POINTER(CancelPtr)]),
    "msnap_cancel_trigger": (_i32, [CancelPtr]),
    "msnap_cancel_free": (_i32, [CancelPtr]),
    "msnap_sandbox_create": (
        _i32,
        [ctypes.POINTER(SandboxPtr), _out, ContextPtr, _str, *_long_tail],
    ),
    "msnap_sandbox_start": (_i32, [ctypes.POINTER(SandboxPtr), _out, ContextPtr, _str]),
    "msnap_sandbox_stop": (_i32, [_out, SandboxPtr]),
    "msnap_sandbox_info": (_i32, [_out, SandboxPtr]),
    "msnap_sandbox_free": (_i32, [SandboxPtr]),
    "msnap_sandbox_get": (_i32, [_out, ContextPtr, _str]),
    "msnap_sandbox_list": (_i32, [_out, ContextPtr, _str]),
    "msnap_sandbox_mark_stopped": (_i32, [_out, ContextPtr, _str]),
    "msnap_sandbox_remove": (_i32, [_out, ContextPtr, _str]),
    "msnap_image_list": (_i32, [_out, ContextPtr, _str]),
    "msnap_image_import": (_i32, [_out, ContextPtr, _str]),
    "msnap_image_prune": (_i32, [_out, ContextPtr, _str, *_long_tail]),
    "msnap_home_usage": (_i32, [_out, ContextPtr, _str]),
    "msnap_snapshot_create": (_i32, [_out, ContextPtr, _str, *_long_tail]),
    "msnap_snapshot_open": (_i32, [_out, ContextPtr, _str]),
    "msnap_snapshot_get": (_i32, [_out, ContextPtr, _str]),
    "msnap_snapshot_list": (_i32, [_out, ContextPtr, _str]),
    "msnap_snapshot_list_dir": (_i32, [_out, ContextPtr, _str]),
    "msnap_snapshot_remove": (_i32, [_out, ContextPtr, _str]),
    "msnap_snapshot_reindex": (_i32, [_out, ContextPtr, _str]),
    "msnap_snapshot_verify": (_i32, [_out, ContextPtr, _str, *_long_tail]),
    "msnap_snapshot_prune": (_i32, [_out, ContextPtr, _str, *_long_tail]),
    "msnap_snapshot_export": (_i32, [_out, ContextPtr, _str, *_long_tail]),
    "msnap_snapshot_import": (_i32, [_out, ContextPtr, _str, *_long_tail]),
    "msnap_snapshot_push": (_i32, [_out, ContextPtr, _str, *_long_tail]),
    "msnap_snapshot_pull": (_i32, [_out, ContextPtr, _str, *_long_tail]),
}


# ---- discovery -----------------------------------------------------------


def _bundled() -> Path:
    return Path(__file__).resolve().parent / "_native" / LIBRARY_NAME


def _repo_build_outputs() -> list[Path]:
    """The repository's cargo outputs, newest first, when running from a checkout.

    This file is ``<repo>/bindings/python/src/microsnap/_lib.py``.
    """
    here = Path(__file__).resolve()
    if len(here.parents) < 5:
        return []
    repo = here.parents[4]
    outputs = [repo / "target" / profile / LIBRARY_NAME for profile in ("debug", "release")]
    existing = [p for p in outputs if p.is_file()]
    # The most recently built one is the one the developer means.
    existing.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return existing or outputs


def candidates() -> list[tuple[str, str]]:
    """(where, path-or-name) in the order they are tried."""
    explicit = os.environ.get("MICROSNAP_LIB")
    if explicit:
        # An explicit choice is the only one tried: falling back silently
        # would load a library the user did not ask for.
        return [("MICROSNAP_LIB", explicit)]
    found: list[tuple[str, str]] = [("bundled", str(_bundled()))]
    found += [("repository build", str(p)) for p in _repo_build_outputs()]
    found.append(("system loader", ctypes.util.find_library("microsnap") or SYSTEM_NAME))
    return found


def _declare(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in SIGNATURES.items():
        try:
            func = getattr(lib, name)
        except AttributeError as e:
            raise LibraryError(f"{lib._name}: missing function {name}") from e
        func.restype = restype
        func.argtypes = argtypes


def _open(where: str, path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    version = lib.msnap_abi_version
    version.restype = ctypes.c_uint32
    version.argtypes = []
    got = version()
    if got != ABI_VERSION:
        raise LibraryError(
            f"{path} ({where}) implements microsnap ABI version {got}; "
            f"this package needs version {ABI_VERSION}"
        )
    _declare(lib)
    return lib


_lock = threading.Lock()
_loaded: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on first use, then cached)."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            _loaded = load()
        return _loaded


def load() -> ctypes.CDLL:
    """Load the first library that exists, in the documented order."""
    tried: list[str] = []
    for where, path in candidates():
        is_file_path = os.sep in path
        if is_file_path and not os.path.exists(path):
            tried.append(f"{where}: {path} (no such file)")
            continue
        try:
            return _open(where, path)
        except OSError as e:
            tried.append(f"{where}: {path} ({e})")
        except LibraryError:
            # A library that exists but speaks another ABI is an answer,
            # not a reason to look further.
            raise
    raise LibraryError(
        "cannot load libmicrosnap; tried:\n  "
        + "\n  ".join(tried)
        + "\nset MICROSNAP_LIB to the library's path, or build it with `cargo build --lib`"
    )

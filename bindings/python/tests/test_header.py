"""The ctypes declarations match include/microsnap.h exactly.

The header is parsed here independently of _lib.SIGNATURES, and each C
type is mapped to the ctypes type it must be; a function added to the
header without a declaration, or declared with a wrong type, fails.
"""

from __future__ import annotations

import ctypes
import re

import pytest
from conftest import HEADER

from microsnap import _errors, _lib

C_TYPES = {
    "void": None,
    "int32_t": ctypes.c_int32,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "const char *": ctypes.c_char_p,
    "char *": _lib.OwnedString,
    "char **": ctypes.POINTER(_lib.OwnedString),
    "void *": ctypes.c_void_p,
    "msnap_progress_fn": _lib.PROGRESS_FN,
    "msnap_context *": _lib.ContextPtr,
    "const msnap_context *": _lib.ContextPtr,
    "msnap_context **": ctypes.POINTER(_lib.ContextPtr),
    "msnap_cancel *": _lib.CancelPtr,
    "const msnap_cancel *": _lib.CancelPtr,
    "msnap_cancel **": ctypes.POINTER(_lib.CancelPtr),
    "msnap_sandbox *": _lib.SandboxPtr,
    "const msnap_sandbox *": _lib.SandboxPtr,
    "msnap_sandbox **": ctypes.POINTER(_lib.SandboxPtr),
}


def _normalize(c_type: str) -> str:
    c_type = re.sub(r"\s+", " ", c_type.strip())
    c_type = re.sub(r"\s*\*", " *", c_type)
    return c_type.replace("* *", "**")


def header_functions() -> dict[str, tuple[str, list[str]]]:
    text = re.sub(r"//[^\n]*|/\*.*?\*/|^\s*#[^\n]*", "", HEADER.read_text(), flags=re.DOTALL | re.MULTILINE)
    found = {}
    for m in re.finditer(r"([\w\s\*]+?)\b(msnap_\w+)\s*\(([^;{]*?)\)\s*;", text):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        if "typedef" in ret:
            continue
        args = []
        for p in params.split(","):
            p = p.strip()
            if p in ("void", ""):
                continue
            # Drop the parameter name: the last identifier.
            args.append(_normalize(re.sub(r"\w+$", "", p)))
        found[name] = (_normalize(ret), args)
    return found


def header_defines() -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"#define (MSNAP_\w+) (\d+)", HEADER.read_text())}


def test_parser_sees_the_header():
    funcs = header_functions()
    assert "msnap_snapshot_verify" in funcs
    assert funcs["msnap_snapshot_verify"] == (
        "int32_t",
        ["char **", "const msnap_context *", "const char *", "const msnap_cancel *", "msnap_progress_fn", "void *"],
    )


def test_every_header_function_is_declared_and_nothing_else():
    assert sorted(header_functions()) == sorted(_lib.SIGNATURES)


@pytest.mark.parametrize("name", sorted(header_functions()))
def test_signature_matches_header(name):
    ret, args = header_functions()[name]
    restype, argtypes = _lib.SIGNATURES[name]
    unknown = [t for t in [ret, *args] if t not in C_TYPES]
    assert not unknown, f"{name}: C types without a ctypes mapping: {unknown}"
    # msnap_version returns a static string that is never freed: c_char_p.
    assert restype is C_TYPES[ret], f"{name}: restype"
    assert list(argtypes) == [C_TYPES[a] for a in args], f"{name}: argtypes"


@pytest.mark.parametrize("name", sorted(_lib.SIGNATURES))
def test_loaded_function_carries_the_declaration(name):
    func = getattr(_lib.lib(), name)
    restype, argtypes = _lib.SIGNATURES[name]
    assert func.restype is restype
    assert list(func.argtypes) == list(argtypes)


def test_abi_version_matches_header_and_library():
    assert header_defines()["MSNAP_ABI_VERSION"] == _lib.ABI_VERSION
    assert _lib.lib().msnap_abi_version() == _lib.ABI_VERSION


def test_error_codes_match_header():
    defines = header_defines()
    codes = {k[len("MSNAP_ERR_") :].lower(): v for k, v in defines.items() if k.startswith("MSNAP_ERR_")}
    ours = {cls.CODE: cls.STATUS for cls in _errors.ERROR_CLASSES}
    assert ours == codes
    assert defines["MSNAP_OK"] == 0


def test_wrong_handle_type_is_refused_before_the_call():
    lib = _lib.lib()
    with pytest.raises(ctypes.ArgumentError):
        lib.msnap_context_free(_lib.CancelPtr())
    with pytest.raises(ctypes.ArgumentError):
        lib.msnap_sandbox_free(_lib.ContextPtr())

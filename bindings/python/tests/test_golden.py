"""Every tests/golden/*.json file decodes strictly into this binding's types.

The golden files pin the JSON each C ABI call returns (tests/ffi/golden.rs
writes and checks them). Here each one is decoded with ``strict=True``
(an unknown field is an error) by the type the binding decodes that call's
result with, and encoded back field by field: a field added in Rust and
forgotten in Python fails, and so does one read under the wrong name. A
golden file with no decoder below fails too, so a new call cannot be missed.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

import microsnap
from microsnap import _errors, _types
from microsnap._wire import WireMismatch

GOLDEN = REPO / "tests" / "golden"
#: The normalizer writes "<time>" for every created_at; decode a real one.
TIME = "2026-12-01T12:34:13.123456+00:00"


def nothing(d: Any, *, strict: bool = False) -> None:
    """A call whose result the binding does not read: it must stay ``{}``."""
    if strict and d != {}:
        raise WireMismatch(f"the binding reads nothing of this result, but it has {sorted(d)}")


#: Golden file stem -> how the binding decodes that call's result.
DECODERS: dict[str, Callable[..., Any]] = {
    "context_open": _types.ContextOpen.from_json,
    "home_usage": _types.Usage.from_json,
    "image_list": _types.ImageList.from_json,
    "image_prune": _types.ImagePruneReport.from_json,
    "image_prune_dry_run": _types.ImagePruneReport.from_json,
    "sandbox_create": _types.SandboxHandle.from_json,
    "sandbox_create_from_snapshot": _types.SandboxHandle.from_json,
    "sandbox_get": _types.SandboxHandle.from_json,
    "sandbox_info": _types.SandboxHandle.from_json,
    "sandbox_list": _types.SandboxList.from_json,
    "sandbox_remove": nothing,
    "sandbox_stop": _types.SandboxHandle.from_json,
    "sandbox_stop_fork": _types.SandboxHandle.from_json,
    "snapshot_create": _types.SnapshotArtifact.from_json,
    "snapshot_create_child": _types.SnapshotArtifact.from_json,
    "snapshot_export": _types.ExportResult.from_json,
    "snapshot_get": _types.SnapshotHandle.from_json,
    "snapshot_import": _types.SnapshotImport.from_json,
    "snapshot_list": _types.SnapshotList.from_json,
    "snapshot_list_dir": _types.DirListing.from_json,
    "snapshot_open": _types.SnapshotArtifact.from_json,
    "snapshot_prune": _types.PruneReport.from_json,
    "snapshot_pull": _types.PullResult.from_json,
    "snapshot_push": _types.PushReport.from_json,
    "snapshot_reindex": _types.SnapshotReindex.from_json,
    "snapshot_remove": nothing,
    "snapshot_verify": _types.VerifyReport.from_json,
}


def golden_files() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def load(path: Path) -> tuple[int, Any]:
    golden = json.loads(path.read_text())
    assert set(golden) == {"status", "out"}, f"{path.name}: not a golden call record"
    return golden["status"], with_real_times(golden["out"])


def with_real_times(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: TIME if k == "created_at" and x == "<time>" else with_real_times(x) for k, x in v.items()}
    if isinstance(v, list):
        return [with_real_times(x) for x in v]
    return v


def decode(stem: str, status: int, out: Any, *, strict: bool) -> Any:
    if status != 0:
        return _errors.error_from(status, json.dumps(out), strict=strict)
    return DECODERS[stem](out, strict=strict)


def to_wire(v: Any) -> Any:
    """A decoded value as the JSON it came from (the inverse of from_json)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: to_wire(getattr(v, f.name)) for f in dataclasses.fields(v) if not f.name.startswith("_")}
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return [to_wire(x) for x in v]
    if isinstance(v, dict):
        return {k: to_wire(x) for k, x in v.items()}
    return v


def test_every_golden_file_has_a_decoder():
    stems = {p.stem for p in golden_files()}
    assert stems, f"no golden files in {GOLDEN}"
    results = {s for s in stems if not s.startswith("error_")}
    assert sorted(results - set(DECODERS)) == [], "golden files this binding has no type for"
    assert sorted(set(DECODERS) - results) == [], "decoders for golden files that no longer exist"


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.stem)
def test_golden_decodes_strictly_and_round_trips(path):
    status, out = load(path)
    if path.stem.startswith("error_"):
        assert status != 0, f"{path.name}: an error record with status 0"
        err = decode(path.stem, status, out, strict=True)
        assert type(err) is not microsnap.Error, f"status {status} has no class"
        assert (err.status, err.code, err.message) == (status, out["code"], out["message"])
        for name in type(err).FIELDS:
            if name in out:
                assert getattr(err, name) == out[name], f"{type(err).__name__}.{name}"
        assert err.details == out
        return
    assert status == 0, f"{path.name}: status {status} for a result; name error records error_*"
    decoded = decode(path.stem, status, out, strict=True)
    assert to_wire(decoded) == (None if decoded is None else out)


def objects(v: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The location of every JSON object in ``v`` that has fixed fields (not labels)."""
    if isinstance(v, dict):
        yield at
        for k, x in v.items():
            if k != "labels":
                yield from objects(x, (*at, k))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from objects(x, (*at, i))


def with_field_added(out: Any, at: tuple[Any, ...]) -> Any:
    out = copy.deepcopy(out)
    target = out
    for step in at:
        target = target[step]
    target["added_in_rust"] = 1
    return out


@pytest.mark.parametrize("path", golden_files(), ids=lambda p: p.stem)
def test_a_field_added_anywhere_fails_strictly_and_is_ignored_otherwise(path):
    """The check above can fail: each object of each file, given one more field."""
    status, out = load(path)
    places = list(objects(out))
    assert places, f"{path.name}: no JSON object"
    for at in places:
        changed = with_field_added(out, at)
        with pytest.raises(WireMismatch, match="added_in_rust"):
            decode(path.stem, status, changed, strict=True)
        if status == 0 and path.stem in DECODERS and DECODERS[path.stem] is not nothing:
            # Tolerant at run time: a newer library of the same ABI version still works.
            assert to_wire(decode(path.stem, status, changed, strict=False)) == out, at


def test_error_code_must_match_its_status():
    with pytest.raises(WireMismatch, match="says 'sandbox_not_found'"):
        _errors.error_from(1, json.dumps({"code": "sandbox_not_found", "message": "m"}), strict=True)
    with pytest.raises(WireMismatch, match="no error class"):
        _errors.error_from(99, json.dumps({"code": "future", "message": "m"}), strict=True)
    with pytest.raises(WireMismatch, match="expected a JSON object"):
        _errors.error_from(8, "not json", strict=True)
    # Tolerant, the same text is still an exception to raise.
    assert type(_errors.error_from(8, "not json")) is microsnap.InvalidArgument

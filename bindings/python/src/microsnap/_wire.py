"""Strict decoding: the library's JSON objects hold only fields the binding knows.

At run time the binding decodes tolerantly (see ``_types``). The tests decode
every golden file with ``strict=True``, which runs the checks here, so that a
field the library gains and the binding does not read fails a test.
"""

from collections.abc import Iterable, Mapping
from typing import Any


class WireMismatch(ValueError):
    """A strict decode met JSON the binding's types do not describe."""


def check_fields(name: str, d: Any, known: Iterable[str], strict: bool) -> Any:
    """``d`` as the JSON object ``name``; with ``strict``, only ``known`` fields allowed."""
    if strict:
        if not isinstance(d, Mapping):
            raise WireMismatch(f"{name}: expected a JSON object, not {type(d).__name__}")
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise WireMismatch(f"{name}: unknown field(s) {', '.join(map(repr, unknown))}")
    return d

"""Turning the str / os.PathLike arguments of the API into JSON strings."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from ._types import SnapshotArtifact, SnapshotHandle

PathArg = Union[str, "os.PathLike[str]"]
#: A snapshot reference: a bare name or path (str), a path (os.PathLike),
#: or an object the API returned.
SnapshotRef = Union[str, "os.PathLike[str]", "SnapshotHandle", "SnapshotArtifact"]


def path_arg(p: PathArg) -> str:
    """A path argument as text (``bytes`` paths are decoded the os way)."""
    if not isinstance(p, (str, os.PathLike)):
        raise TypeError(f"expected a str or os.PathLike path, not {type(p).__name__}")
    return os.fsdecode(os.fspath(p))


def snapshot_ref(ref: SnapshotRef) -> str:
    """The ``ref`` string the library resolves.

    A str is passed as given (the library tells a bare name from a path or a
    digest). An os.PathLike is always a path, so it is made absolute: a
    relative ``Path("x")`` must not be read as the bare name ``x``.
    """
    from ._types import SnapshotArtifact, SnapshotHandle

    if isinstance(ref, SnapshotHandle):
        return ref.digest
    if isinstance(ref, SnapshotArtifact):
        return str(ref.path)
    if isinstance(ref, str):
        return ref
    if isinstance(ref, os.PathLike):
        return os.path.abspath(path_arg(ref))
    raise TypeError(
        f"expected a snapshot name, path, SnapshotHandle or SnapshotArtifact, "
        f"not {type(ref).__name__}"
    )

"""Snapshot: create, open, look up, list, remove, reindex, verify, export and import snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from . import _lib
from ._bound import BoundToHome
from ._call import ProgressCallback, call_long, encode_args
from ._cancel import Cancel
from ._ints import I32_MAX, I32_MIN, U32_MAX, int_arg
from ._paths import PathArg, SnapshotRef, path_arg, snapshot_ref
from ._types import (
    DirListing,
    ExportResult,
    SandboxHandle,
    SnapshotArtifact,
    SnapshotHandle,
    SnapshotImport,
    SnapshotList,
    SnapshotReindex,
    VerifyReport,
)

if TYPE_CHECKING:
    from ._sandbox import Sandbox


class Snapshot(BoundToHome):
    """Snapshot operations on a home (the default one, or ``Home(path).Snapshot``).

    Not instantiated: every operation is a class method.
    """

    def __init__(self) -> None:
        raise TypeError("microsnap.Snapshot is a namespace; use its class methods")

    @classmethod
    def create(
        cls,
        sandbox: str | SandboxHandle | Sandbox,
        name: str | None = None,
        path: PathArg | None = None,
        labels: Mapping[str, str] | None = None,
        force: bool = False,
        record_integrity: bool = False,
        integrity_algorithm: str | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> SnapshotArtifact:
        """Snapshot a stopped, crashed or never-started sandbox.

        Give ``name`` (into the home's snapshots directory) or ``path`` (a new
        directory anywhere). ``integrity_algorithm`` is one of
        ``"microsnap-merkle-sha256-v1"`` (the default, also for None),
        ``"msb-file-merkle-blake3-v1"`` (microsandbox v0.6.14's; its digest
        is ``"blake3:<hex>"``), ``"msb-sparse-sha256-v1"`` (v0.6.3's) or
        ``"sha256"``; it implies nothing unless ``record_integrity`` is set.
        """
        source = sandbox if isinstance(sandbox, str) else sandbox.name
        home = cls._home()
        args = {
            "source_sandbox": source,
            "name": name,
            "path": path_arg(path) if path is not None else None,
            "labels": dict(labels) if labels else None,
            "force": force,
            "record_integrity": record_integrity,
            "integrity_algorithm": integrity_algorithm,
        }
        lib = _lib.lib()
        data = call_long(
            lib.msnap_snapshot_create,
            home.context(),
            encode_args(args),
            cancel=cancel,
            progress=progress,
        )
        return SnapshotArtifact.from_json(data, home)

    @classmethod
    def open(cls, ref: SnapshotRef) -> SnapshotArtifact:
        """Open an artifact by bare name or path (metadata checks only)."""
        home, data = cls._call("msnap_snapshot_open", {"ref": snapshot_ref(ref)})
        return SnapshotArtifact.from_json(data, home)

    @classmethod
    def get(cls, ref: SnapshotRef) -> SnapshotHandle:
        """Look up an indexed snapshot by bare name, digest or path."""
        home, data = cls._call("msnap_snapshot_get", {"ref": snapshot_ref(ref)})
        return SnapshotHandle.from_json(data, home)

    @classmethod
    def list(cls) -> list[SnapshotHandle]:
        """Indexed snapshots, newest first."""
        home, data = cls._call("msnap_snapshot_list")
        return list(SnapshotList.from_json(data, home).snapshots)

    @classmethod
    def list_dir(cls, d: PathArg) -> DirListing:
        """Read every artifact directly inside ``d`` without touching the index.

        Entries that are not valid artifacts are in ``.skipped`` with the reason.
        """
        home, data = cls._call("msnap_snapshot_list_dir", {"dir": path_arg(d)})
        return DirListing.from_json(data, home)

    @classmethod
    def remove(cls, ref: SnapshotRef, force: bool = False) -> None:
        """Remove an artifact and its index entry; ``force`` even if it has children."""
        cls._call("msnap_snapshot_remove", {"ref": snapshot_ref(ref), "force": force})

    @classmethod
    def reindex(cls, d: PathArg | None = None) -> int:
        """Rebuild the index from ``d``'s artifacts (default: the home's snapshots)."""
        _, data = cls._call("msnap_snapshot_reindex", {"dir": path_arg(d) if d is not None else None})
        return SnapshotReindex.from_json(data).indexed

    @classmethod
    def verify(
        cls,
        ref: SnapshotRef,
        *,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> VerifyReport:
        """Recompute the recorded integrity; a mismatch raises IntegrityMismatch."""
        home = cls._home()
        data = call_long(
            _lib.lib().msnap_snapshot_verify,
            home.context(),
            encode_args({"ref": snapshot_ref(ref)}),
            cancel=cancel,
            progress=progress,
        )
        return VerifyReport.from_json(data)

    @classmethod
    def export(
        cls,
        ref: SnapshotRef,
        out: PathArg,
        with_parents: bool = False,
        with_image: bool = False,
        plain_tar: bool = False,
        dense: bool = False,
        level: int | None = None,
        threads: int | None = None,
        *,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> ExportResult:
        """Bundle a snapshot into a ``.tar.zst`` archive at ``out`` (a plain tar with ``plain_tar``).

        ``with_parents`` adds its ancestors, ``with_image`` its base image;
        ``dense`` stores holes as data; ``level`` and ``threads`` tune zstd
        (None: the library's defaults). ``level`` must be an int that fits an
        i32 and ``threads`` one that fits a u32 (TypeError for another type,
        InvalidArgument out of range); the library judges the value itself.
        A cancelled export leaves no file.
        """
        home = cls._home()
        args = {
            "ref": snapshot_ref(ref),
            "out": path_arg(out),
            "with_parents": with_parents,
            "with_image": with_image,
            "plain_tar": plain_tar,
            "dense": dense,
            "level": int_arg("level", level, I32_MIN, I32_MAX) if level is not None else None,
            "threads": int_arg("threads", threads, 0, U32_MAX) if threads is not None else None,
        }
        data = call_long(
            _lib.lib().msnap_snapshot_export,
            home.context(),
            encode_args(args),
            cancel=cancel,
            progress=progress,
        )
        return ExportResult.from_json(data)

    @classmethod
    def import_(
        cls,
        archive: PathArg,
        dest: PathArg | None = None,
        *,
        name: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> SnapshotHandle:
        """Unpack an archive into the home's snapshots (or ``dest``); the head snapshot.

        Every entry is checked and recorded integrity verified; parents and
        an image in the archive are imported too. ``name`` installs the head
        as ``dest/name`` instead of the directory name the archive carries. A
        failed or cancelled import leaves the destination and the index as
        they were.
        """
        home = cls._home()
        args = {
            "archive": path_arg(archive),
            "dest": path_arg(dest) if dest is not None else None,
            "name": name,
        }
        data = call_long(
            _lib.lib().msnap_snapshot_import,
            home.context(),
            encode_args(args),
            cancel=cancel,
            progress=progress,
        )
        return SnapshotImport.from_json(data, home).head

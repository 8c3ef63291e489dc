"""The objects calls return: frozen dataclasses over the library's JSON.

Each is built from one JSON object of docs/abi.md by its ``from_json``; the
dataclass's public fields are the object's fields, name for name. Objects
that can act (verify an artifact, snapshot a sandbox, ...) remember the
:class:`Home` they came from, so ``microsnap.Home(path).Snapshot.open("x")
.verify()`` acts on that home.

Decoding is tolerant by default: a field the library adds later is ignored,
so an installed package keeps working with a newer library of the same ABI
version (the loader accepts any library whose ``msnap_abi_version`` matches,
and adding a field is not an ABI break). ``strict=True`` makes an unknown
field an error instead; the tests decode every ``tests/golden/*.json`` file
that way, so a field added in Rust and forgotten here fails a test.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import Error, InvalidManifest
from ._formats import FORMAT_MSB_V063
from ._wire import check_fields

if TYPE_CHECKING:
    from ._call import ProgressCallback
    from ._cancel import Cancel
    from ._home import Home
    from ._sandbox import Sandbox

_HOME = field(default=None, repr=False, compare=False, hash=False)


def parse_time(text: str, unix_nanos: int | None = None) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (microsecond precision)."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        if unix_nanos is None:
            raise InvalidManifest(f"unreadable timestamp {text!r}") from None
        return datetime.fromtimestamp(unix_nanos / 1e9, tz=UTC)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


@functools.cache
def wire_fields(cls: type) -> frozenset[str]:
    """The JSON fields a result dataclass reads: its public fields."""
    return frozenset(f.name for f in dataclasses.fields(cls) if not f.name.startswith("_"))


def _object(cls: type, d: Any, strict: bool) -> Mapping[str, Any]:
    # Tolerant decoding (the default) costs nothing per object.
    return check_fields(cls.__name__, d, wire_fields(cls), strict) if strict else d


def _artifact_format(d: Mapping[str, Any]) -> str:
    # A library of the same ABI from before the member wrote only v0.6.3.
    return str(d.get("artifact_format") or FORMAT_MSB_V063)


def _labels(d: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (d.get("labels") or {}).items()}


@dataclass(frozen=True)
class Integrity:
    """The integrity digest a manifest records for its upper."""

    algorithm: str
    digest: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> Integrity:
        d = _object(cls, d, strict)
        return cls(algorithm=d["algorithm"], digest=d["digest"])


@dataclass(frozen=True)
class SnapshotArtifact:
    """A snapshot artifact on disk (a directory with its descriptor and an upper).

    ``artifact_format`` is the descriptor's format: ``"msb-v0.6.3"``
    (``manifest.json``) or ``"msb-v0.6.14"`` (``snapshot.json``, current
    microsandbox). A v0.6.14 checkpoint-state snapshot has no disk upper:
    its ``format``, ``fstype`` and ``upper_file`` are ``""`` and
    ``size_bytes`` 0.
    """

    path: Path
    digest: str
    artifact_format: str
    schema: int
    format: str
    fstype: str
    image_ref: str
    image_manifest_digest: str
    parent: str | None
    created_at: datetime
    labels: dict[str, str] = field(hash=False)
    upper_file: str
    size_bytes: int
    integrity: Integrity | None
    source_sandbox: str | None
    _home: Home | None = _HOME

    @classmethod
    def from_json(cls, d: Mapping[str, Any], home: Home | None = None, *, strict: bool = False) -> SnapshotArtifact:
        d = _object(cls, d, strict)
        integrity = d.get("integrity")
        return cls(
            path=Path(d["path"]),
            digest=d["digest"],
            artifact_format=_artifact_format(d),
            schema=int(d["schema"]),
            format=d["format"],
            fstype=d["fstype"],
            image_ref=d["image_ref"],
            image_manifest_digest=d["image_manifest_digest"],
            parent=d.get("parent"),
            created_at=parse_time(d["created_at"]),
            labels=_labels(d),
            upper_file=d["upper_file"],
            size_bytes=int(d["size_bytes"]),
            integrity=Integrity.from_json(integrity, strict=strict) if integrity else None,
            source_sandbox=d.get("source_sandbox"),
            _home=home,
        )

    @property
    def upper_path(self) -> Path:
        return self.path / self.upper_file

    def verify(
        self, *, progress: ProgressCallback | None = None, cancel: Cancel | None = None
    ) -> VerifyReport:
        """Recompute the recorded integrity of this artifact's upper."""
        return _home_of(self).Snapshot.verify(self.path, progress=progress, cancel=cancel)


@dataclass(frozen=True)
class SnapshotHandle:
    """A snapshot as the home's index knows it.

    ``artifact_format`` is as on :class:`SnapshotArtifact`; ``size_bytes`` is
    None (and ``format``, ``fstype`` empty) for a checkpoint-state snapshot.
    """

    digest: str
    name: str | None
    parent_digest: str | None
    image_ref: str
    image_manifest_digest: str
    format: str
    fstype: str
    size_bytes: int | None
    path: Path
    created_at: datetime
    created_at_unix_nanos: int
    labels: dict[str, str] = field(hash=False)
    child_count: int
    artifact_format: str
    _home: Home | None = _HOME

    @classmethod
    def from_json(cls, d: Mapping[str, Any], home: Home | None = None, *, strict: bool = False) -> SnapshotHandle:
        d = _object(cls, d, strict)
        nanos = int(d.get("created_at_unix_nanos") or 0)
        size = d.get("size_bytes")
        return cls(
            digest=d["digest"],
            name=d.get("name"),
            parent_digest=d.get("parent_digest"),
            image_ref=d["image_ref"],
            image_manifest_digest=d["image_manifest_digest"],
            format=d["format"],
            fstype=d["fstype"],
            size_bytes=int(size) if size is not None else None,
            path=Path(d["path"]),
            created_at=parse_time(d["created_at"], nanos),
            created_at_unix_nanos=nanos,
            labels=_labels(d),
            child_count=int(d.get("child_count") or 0),
            artifact_format=_artifact_format(d),
            _home=home,
        )

    def open(self) -> SnapshotArtifact:
        """The artifact on disk behind this index entry."""
        return _home_of(self).Snapshot.open(self.path)

    def remove(self, force: bool = False) -> None:
        """Remove the artifact and its index entry (``force``: even with children)."""
        _home_of(self).Snapshot.remove(self.digest, force=force)

    def verify(
        self, *, progress: ProgressCallback | None = None, cancel: Cancel | None = None
    ) -> VerifyReport:
        """Recompute the recorded integrity of this snapshot's upper."""
        return _home_of(self).Snapshot.verify(self.digest, progress=progress, cancel=cancel)


@dataclass(frozen=True)
class UpperVerify:
    """What verification found for the upper.

    ``kind`` is ``"verified"`` or ``"not_recorded"`` (then ``algorithm`` and
    ``digest`` are empty); a mismatch is raised as IntegrityMismatch instead.
    """

    kind: str
    algorithm: str
    digest: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> UpperVerify:
        d = _object(cls, d, strict)
        return cls(kind=d["kind"], algorithm=d.get("algorithm", ""), digest=d.get("digest", ""))


@dataclass(frozen=True)
class VerifyReport:
    """The result of verifying a snapshot."""

    digest: str
    path: Path
    upper: UpperVerify

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> VerifyReport:
        d = _object(cls, d, strict)
        return cls(
            digest=d["digest"],
            path=Path(d["path"]),
            upper=UpperVerify.from_json(d["upper"], strict=strict),
        )

    @property
    def verified(self) -> bool:
        """True when a recorded digest was recomputed and matched."""
        return self.upper.kind == "verified"


@dataclass(frozen=True)
class SkippedArtifact:
    """A directory entry list_dir could not read as an artifact, and why."""

    path: Path
    code: str
    message: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> SkippedArtifact:
        d = _object(cls, d, strict)
        return cls(path=Path(d["path"]), code=d.get("code", ""), message=d.get("message", ""))

    def error(self) -> Error:
        """The exception this entry would have raised."""
        from ._errors import ERROR_CLASSES

        for cls in ERROR_CLASSES:
            if cls.CODE == self.code:
                return cls(self.message)
        return Error(self.message, code=self.code)


@dataclass(frozen=True)
class DirListing:
    """The artifacts directly inside a directory; iterating yields the artifacts."""

    artifacts: tuple[SnapshotArtifact, ...]
    skipped: tuple[SkippedArtifact, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], home: Home | None = None, *, strict: bool = False) -> DirListing:
        d = _object(cls, d, strict)
        return cls(
            artifacts=tuple(SnapshotArtifact.from_json(a, home, strict=strict) for a in d.get("artifacts", [])),
            skipped=tuple(SkippedArtifact.from_json(s, strict=strict) for s in d.get("skipped", [])),
        )

    def __iter__(self) -> Iterator[SnapshotArtifact]:
        return iter(self.artifacts)

    def __len__(self) -> int:
        return len(self.artifacts)


@dataclass(frozen=True)
class SandboxHandle:
    """A sandbox as its record and lock say it is now.

    ``state`` is ``created`` (never started), ``running`` (a live handle
    holds its lock), ``stopped`` or ``crashed`` (recorded running, but its
    holder died).
    """

    name: str
    state: str
    image_ref: str
    image_manifest_digest: str
    upper_path: Path
    format: str
    fstype: str
    size_bytes: int
    from_snapshot: str | None
    created_at: datetime
    _home: Home | None = _HOME

    @classmethod
    def from_json(cls, d: Mapping[str, Any], home: Home | None = None, *, strict: bool = False) -> SandboxHandle:
        d = _object(cls, d, strict)
        return cls(
            name=d["name"],
            state=d["state"],
            image_ref=d["image_ref"],
            image_manifest_digest=d["image_manifest_digest"],
            upper_path=Path(d["upper_path"]),
            format=d["format"],
            fstype=d["fstype"],
            size_bytes=int(d["size_bytes"]),
            from_snapshot=d.get("from_snapshot"),
            created_at=parse_time(d["created_at"]),
            _home=home,
        )

    def snapshot(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        force: bool = False,
        record_integrity: bool = False,
        integrity_algorithm: str | None = None,
        format: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> SnapshotArtifact:
        """Snapshot this (stopped) sandbox into the home's snapshots, as ``name``."""
        return _home_of(self).Snapshot.create(
            self.name,
            name=name,
            labels=labels,
            force=force,
            record_integrity=record_integrity,
            integrity_algorithm=integrity_algorithm,
            format=format,
            progress=progress,
            cancel=cancel,
        )

    def snapshot_to(
        self,
        path: str | os.PathLike[str],
        *,
        labels: Mapping[str, str] | None = None,
        force: bool = False,
        record_integrity: bool = False,
        integrity_algorithm: str | None = None,
        format: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> SnapshotArtifact:
        """Snapshot this (stopped) sandbox into the directory ``path``."""
        return _home_of(self).Snapshot.create(
            self.name,
            path=path,
            labels=labels,
            force=force,
            record_integrity=record_integrity,
            integrity_algorithm=integrity_algorithm,
            format=format,
            progress=progress,
            cancel=cancel,
        )

    def start(self) -> Sandbox:
        """Start this sandbox: a running Sandbox that holds its lock."""
        return _home_of(self).Sandbox.start(self.name)

    def mark_stopped(self) -> SandboxHandle:
        """Record it stopped when no handle holds it (clears ``crashed``)."""
        return _home_of(self).Sandbox.mark_stopped(self.name)

    def remove(self) -> None:
        """Remove this sandbox (it must not be running)."""
        _home_of(self).Sandbox.remove(self.name)

    def refresh(self) -> SandboxHandle:
        """This sandbox as it is now."""
        return _home_of(self).Sandbox.get(self.name)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the archive, and the snapshots in it (head last)."""

    path: Path
    snapshots: tuple[str, ...]
    bytes_written: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> ExportResult:
        d = _object(cls, d, strict)
        return cls(
            path=Path(d["path"]),
            snapshots=tuple(d.get("snapshots") or ()),
            bytes_written=int(d["bytes_written"]),
        )


def _prune_time(text: str) -> datetime | None:
    """A prune entry's created_at; None when the artifact's text does not parse."""
    try:
        return parse_time(text)
    except InvalidManifest:
        return None


@dataclass(frozen=True)
class PrunedSnapshot:
    """A snapshot a prune removed (in a dry run: would remove).

    ``group`` is the group the keep rules saw it in (its source sandbox, or
    the ``group_by`` label's value; None without one). ``allocated_bytes``
    is what its files took on disk, not their logical size.
    """

    digest: str
    name: str | None
    path: Path
    created_at: datetime | None
    group: str | None
    allocated_bytes: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> PrunedSnapshot:
        d = _object(cls, d, strict)
        return cls(
            digest=d["digest"],
            name=d.get("name"),
            path=Path(d["path"]),
            created_at=_prune_time(d["created_at"]),
            group=d.get("group"),
            allocated_bytes=int(d["allocated_bytes"]),
        )


@dataclass(frozen=True)
class KeptSnapshot:
    """A snapshot a prune kept, and why.

    ``reasons`` (never empty) are codes: ``keep_last``, ``keep_within``,
    ``not_old_enough``, ``not_selected``, ``unreadable``,
    ``has_children:<child>``, ``used_by_sandbox:<sandbox>`` (docs/abi.md, Prune).
    """

    digest: str
    name: str | None
    path: Path
    created_at: datetime | None
    group: str | None
    reasons: tuple[str, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> KeptSnapshot:
        d = _object(cls, d, strict)
        return cls(
            digest=d["digest"],
            name=d.get("name"),
            path=Path(d["path"]),
            created_at=_prune_time(d["created_at"]),
            group=d.get("group"),
            reasons=tuple(str(r) for r in d["reasons"]),
        )


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed (children first) and kept (newest first); every
    indexed snapshot is in one of the two. ``bytes_freed`` sums the removed
    ones' ``allocated_bytes``."""

    dry_run: bool
    removed: tuple[PrunedSnapshot, ...]
    kept: tuple[KeptSnapshot, ...]
    bytes_freed: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> PruneReport:
        d = _object(cls, d, strict)
        return cls(
            dry_run=bool(d["dry_run"]),
            removed=tuple(PrunedSnapshot.from_json(s, strict=strict) for s in d["removed"]),
            kept=tuple(KeptSnapshot.from_json(s, strict=strict) for s in d["kept"]),
            bytes_freed=int(d["bytes_freed"]),
        )


@dataclass(frozen=True)
class ImageInfo:
    """An image in the home's OCI layout."""

    ref: str
    manifest_digest: str
    config_digest: str
    layers: int
    size: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> ImageInfo:
        d = _object(cls, d, strict)
        return cls(
            ref=d["ref"],
            manifest_digest=d["manifest_digest"],
            config_digest=d["config_digest"],
            layers=int(d["layers"]),
            size=int(d["size"]),
        )


@dataclass(frozen=True)
class ImagePin:
    """An image reference and the manifest digest it resolved to."""

    ref: str
    manifest_digest: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> ImagePin:
        d = _object(cls, d, strict)
        return cls(ref=d["ref"], manifest_digest=d["manifest_digest"])


@dataclass(frozen=True)
class PrunedBlob:
    """A blob image prune removed (or, in a dry run, would remove)."""

    digest: str
    #: The file's length in bytes.
    size: int
    #: What it occupied on disk (``st_blocks * 512``).
    allocated_bytes: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> PrunedBlob:
        d = _object(cls, d, strict)
        return cls(digest=d["digest"], size=int(d["size"]), allocated_bytes=int(d["allocated_bytes"]))


@dataclass(frozen=True)
class ImagePruneReport:
    """What :meth:`Image.prune` did (or, with ``dry_run``, would do)."""

    dry_run: bool
    #: Blobs removed, in digest order.
    removed: tuple[PrunedBlob, ...]
    #: Digests of the unnamed ``index.json`` entries dropped (nothing pinned them).
    untagged_removed: tuple[str, ...]
    blobs_kept: int
    #: Of those, unneeded blobs modified after the prune started.
    blobs_kept_young: int
    #: Allocated bytes of what was removed.
    bytes_freed: int
    logical_bytes_freed: int
    temp_files_removed: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> ImagePruneReport:
        d = _object(cls, d, strict)
        return cls(
            dry_run=bool(d["dry_run"]),
            removed=tuple(PrunedBlob.from_json(b, strict=strict) for b in d["removed"]),
            untagged_removed=tuple(d["untagged_removed"]),
            blobs_kept=int(d["blobs_kept"]),
            blobs_kept_young=int(d["blobs_kept_young"]),
            bytes_freed=int(d["bytes_freed"]),
            logical_bytes_freed=int(d["logical_bytes_freed"]),
            temp_files_removed=int(d["temp_files_removed"]),
        )


@dataclass(frozen=True)
class Space:
    """Logical, allocated (``st_blocks * 512``) and shared bytes."""

    logical_bytes: int
    allocated_bytes: int
    #: Allocated bytes in extents the filesystem reports shared (reflinks on
    #: XFS or btrfs, 0 on ext4); for an image also blobs another image needs.
    shared_bytes: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> Space:
        d = _object(cls, d, strict)
        return cls(
            logical_bytes=int(d["logical_bytes"]),
            allocated_bytes=int(d["allocated_bytes"]),
            shared_bytes=int(d["shared_bytes"]),
        )


@dataclass(frozen=True)
class UsageItem:
    """One snapshot, sandbox or image of :meth:`Home.usage`."""

    #: Snapshot bare name (else its path), sandbox name, or image ref (else digest).
    name: str
    #: Snapshot or image digest; None for a sandbox.
    digest: str | None
    #: Snapshot or sandbox directory; None for an image.
    path: Path | None
    logical_bytes: int
    allocated_bytes: int
    shared_bytes: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> UsageItem:
        d = _object(cls, d, strict)
        return cls(
            name=d["name"],
            digest=d["digest"],
            path=None if d["path"] is None else Path(d["path"]),
            logical_bytes=int(d["logical_bytes"]),
            allocated_bytes=int(d["allocated_bytes"]),
            shared_bytes=int(d["shared_bytes"]),
        )


@dataclass(frozen=True)
class Usage:
    """What a home's snapshots, sandboxes and images occupy (:meth:`Home.usage`)."""

    snapshots: tuple[UsageItem, ...]
    sandboxes: tuple[UsageItem, ...]
    images: tuple[UsageItem, ...]
    #: What :meth:`Image.prune` would reclaim.
    unreferenced_images: Space
    #: The home's ``cache/`` directory: derived data (leaf lists for push
    #: and pull), rebuilt when needed if deleted.
    cache: Space
    #: Every file once (a blob two images share counts once).
    total: Space

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> Usage:
        d = _object(cls, d, strict)

        def items(key: str) -> tuple[UsageItem, ...]:
            return tuple(UsageItem.from_json(i, strict=strict) for i in d[key])

        return cls(
            snapshots=items("snapshots"),
            sandboxes=items("sandboxes"),
            images=items("images"),
            unreferenced_images=Space.from_json(d["unreferenced_images"], strict=strict),
            cache=Space.from_json(d["cache"], strict=strict),
            total=Space.from_json(d["total"], strict=strict),
        )


# ---- The envelopes some calls wrap their results in. The API returns what
# ---- is inside; these exist so that every result is decoded by a type.


@dataclass(frozen=True)
class ContextOpen:
    """``msnap_context_open``'s result: the home as the library resolved it."""

    home: Path

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> ContextOpen:
        d = _object(cls, d, strict)
        return cls(home=Path(d["home"]))


@dataclass(frozen=True)
class SandboxList:
    """``msnap_sandbox_list``'s result."""

    sandboxes: tuple[SandboxHandle, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], home: Home | None = None, *, strict: bool = False) -> SandboxList:
        d = _object(cls, d, strict)
        return cls(sandboxes=tuple(SandboxHandle.from_json(s, home, strict=strict) for s in d["sandboxes"]))


@dataclass(frozen=True)
class SnapshotList:
    """``msnap_snapshot_list``'s result."""

    snapshots: tuple[SnapshotHandle, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], home: Home | None = None, *, strict: bool = False) -> SnapshotList:
        d = _object(cls, d, strict)
        return cls(snapshots=tuple(SnapshotHandle.from_json(h, home, strict=strict) for h in d["snapshots"]))


@dataclass(frozen=True)
class SnapshotReindex:
    """``msnap_snapshot_reindex``'s result: how many artifacts were indexed."""

    indexed: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> SnapshotReindex:
        d = _object(cls, d, strict)
        return cls(indexed=int(d["indexed"]))


@dataclass(frozen=True)
class SnapshotImport:
    """``msnap_snapshot_import``'s result: the head, every snapshot installed, the images.

    ``skipped`` are the archive members checked but not installed (a
    microsandbox v0.6.14 archive's ``images/…`` cache files).
    """

    head: SnapshotHandle
    imported: tuple[SnapshotHandle, ...]
    images: tuple[str, ...]
    skipped: tuple[str, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], home: Home | None = None, *, strict: bool = False) -> SnapshotImport:
        d = _object(cls, d, strict)
        return cls(
            head=SnapshotHandle.from_json(d["head"], home, strict=strict),
            imported=tuple(SnapshotHandle.from_json(h, home, strict=strict) for h in d.get("imported") or ()),
            images=tuple(str(i) for i in d.get("images") or ()),
            skipped=tuple(str(m) for m in d.get("skipped") or ()),
        )


@dataclass(frozen=True)
class PushedSnapshot:
    """One snapshot a push sent, with the tags it was given."""

    snapshot_digest: str
    manifest_digest: str
    tags: tuple[str, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> PushedSnapshot:
        d = _object(cls, d, strict)
        return cls(
            snapshot_digest=d["snapshot_digest"],
            manifest_digest=d["manifest_digest"],
            tags=tuple(str(t) for t in d.get("tags") or ()),
        )


@dataclass(frozen=True)
class PushReport:
    """What a push did (docs/abi.md, "push report").

    ``chunks_total`` counts the non-zero 64 KiB chunks of every snapshot
    pushed: ``chunks_uploaded`` went into packs that were sent,
    ``chunks_reused`` the target held already (``bytes_reused`` their
    compressed bytes). ``bytes_uploaded`` is every blob byte sent.
    ``snapshots`` is root first, the head last.
    """

    reference: str
    manifest_digest: str
    snapshot_digest: str
    chunks_total: int
    chunks_uploaded: int
    chunks_reused: int
    bytes_uploaded: int
    bytes_reused: int
    snapshots: tuple[PushedSnapshot, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> PushReport:
        d = _object(cls, d, strict)
        return cls(
            reference=d["reference"],
            manifest_digest=d["manifest_digest"],
            snapshot_digest=d["snapshot_digest"],
            chunks_total=int(d["chunks_total"]),
            chunks_uploaded=int(d["chunks_uploaded"]),
            chunks_reused=int(d["chunks_reused"]),
            bytes_uploaded=int(d["bytes_uploaded"]),
            bytes_reused=int(d["bytes_reused"]),
            snapshots=tuple(PushedSnapshot.from_json(s, strict=strict) for s in d.get("snapshots") or ()),
        )


@dataclass(frozen=True)
class PullReport:
    """What a pull did (docs/abi.md, "pull report").

    ``chunks_reused`` were copied from a local artifact instead of
    downloaded (``bytes_reused`` compressed, ``bytes_copied_locally``
    uncompressed). ``already_present``: the snapshot was there already and
    nothing was written. ``path`` is where the head is.
    """

    reference: str
    manifest_digest: str
    snapshot_digest: str
    chunks_total: int
    chunks_downloaded: int
    chunks_reused: int
    bytes_downloaded: int
    bytes_reused: int
    bytes_copied_locally: int
    already_present: bool
    path: Path

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> PullReport:
        d = _object(cls, d, strict)
        return cls(
            reference=d["reference"],
            manifest_digest=d["manifest_digest"],
            snapshot_digest=d["snapshot_digest"],
            chunks_total=int(d["chunks_total"]),
            chunks_downloaded=int(d["chunks_downloaded"]),
            chunks_reused=int(d["chunks_reused"]),
            bytes_downloaded=int(d["bytes_downloaded"]),
            bytes_reused=int(d["bytes_reused"]),
            bytes_copied_locally=int(d["bytes_copied_locally"]),
            already_present=bool(d["already_present"]),
            path=Path(d["path"]),
        )


@dataclass(frozen=True)
class PullResult:
    """``msnap_snapshot_pull``'s result: the head's handle and the report."""

    head: SnapshotHandle
    report: PullReport

    @classmethod
    def from_json(cls, d: Mapping[str, Any], home: Home | None = None, *, strict: bool = False) -> PullResult:
        d = _object(cls, d, strict)
        return cls(
            head=SnapshotHandle.from_json(d["head"], home, strict=strict),
            report=PullReport.from_json(d["report"], strict=strict),
        )


@dataclass(frozen=True)
class ImageList:
    """``msnap_image_list``'s result."""

    images: tuple[ImageInfo, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> ImageList:
        d = _object(cls, d, strict)
        return cls(images=tuple(ImageInfo.from_json(i, strict=strict) for i in d["images"]))


@dataclass(frozen=True)
class ImageImport:
    """``msnap_image_import``'s result: each image copied, with its manifest digest."""

    images: tuple[ImagePin, ...]

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, strict: bool = False) -> ImageImport:
        d = _object(cls, d, strict)
        return cls(images=tuple(ImagePin.from_json(i, strict=strict) for i in d["images"]))


def _home_of(obj: SnapshotArtifact | SnapshotHandle | SandboxHandle) -> Home:
    home = obj._home
    if home is None:
        from ._home import default_home

        return default_home()
    return home

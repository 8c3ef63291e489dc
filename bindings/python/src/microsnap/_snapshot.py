"""Snapshot: create, open, look up, list, remove, prune, reindex, verify, export, import, push and pull snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from . import _lib
from ._bound import BoundToHome
from ._call import ProgressCallback, call_long, encode_args
from ._cancel import Cancel
from ._errors import InvalidArgument
from ._formats import format_arg
from ._ints import I32_MAX, I32_MIN, U32_MAX, U64_MAX, int_arg
from ._paths import PathArg, SnapshotRef, path_arg, snapshot_ref
from ._types import (
    DirListing,
    ExportResult,
    PruneReport,
    PullResult,
    PushReport,
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
        format: str | None = None,
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
        ``format`` is the artifact's layout: None or ``"msb-v0.6.3"``
        (``manifest.json``, the default) or ``"msb-v0.6.14"``
        (``snapshot.json``, which current microsandbox reads without
        migrating it). In that format None means
        ``"msb-file-merkle-blake3-v1"``, and ``"microsnap-merkle-sha256-v1"``
        cannot be recorded (Unsupported). Another format is InvalidArgument.
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
            "format": format_arg(format),
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
    def prune(
        cls,
        *,
        labels: Mapping[str, str] | None = None,
        older_than: str | timedelta | None = None,
        keep_last: int | None = None,
        group_by: str | None = None,
        keep_within: str | timedelta | None = None,
        dry_run: bool = False,
        force: bool = False,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> PruneReport:
        """Remove the snapshots a retention policy does not keep, as restic's forget.

        Only snapshots carrying every ``labels`` pair are candidates. They are
        grouped by source sandbox (``group_by="label:KEY"``: by that label's
        value), and one stays if any rule keeps it: ``keep_last`` newest of
        its group, created within ``keep_within`` of its group's newest, or
        not older than ``older_than``. At least one rule is needed. A
        snapshot whose child stays, or that a sandbox was made from, stays
        unless ``force``. Durations are text (``"90m"``, ``"36h"``, ``"7d"``,
        ``"2w"``) or a ``timedelta`` (to the second). ``dry_run`` removes
        nothing and reports the same. A cancelled prune stops between two
        removals.
        """
        home = cls._home()
        args = {
            "labels": dict(labels) if labels else None,
            "older_than": _duration("older_than", older_than),
            "keep_last": int_arg("keep_last", keep_last, 1, U32_MAX) if keep_last is not None else None,
            "group_by": group_by,
            "keep_within": _duration("keep_within", keep_within),
            "dry_run": dry_run,
            "force": force,
        }
        data = call_long(
            _lib.lib().msnap_snapshot_prune,
            home.context(),
            encode_args(args),
            cancel=cancel,
            progress=progress,
        )
        return PruneReport.from_json(data)

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
        format: str | None = None,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> ExportResult:
        """Bundle a snapshot into a ``.tar.zst`` archive at ``out`` (a plain tar with ``plain_tar``).

        ``with_parents`` adds its ancestors, ``with_image`` its base image;
        ``dense`` stores holes as data; ``level`` and ``threads`` tune zstd
        (None: the library's defaults). ``level`` must be an int that fits an
        i32 and ``threads`` one that fits a u32 (TypeError for another type,
        InvalidArgument out of range); the library judges the value itself.
        ``format`` is the archive's layout: None or ``"msb-v0.6.3"`` (the
        default) or ``"msb-v0.6.14"`` (current microsandbox's); another value
        is InvalidArgument, and a library that cannot write the layout raises
        Unsupported. A cancelled export leaves no file.
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
            "format": format_arg(format),
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

    @classmethod
    def push(
        cls,
        name_or_path: SnapshotRef,
        ref: str,
        *,
        with_parents: bool = False,
        since: SnapshotRef | None = None,
        plain_http: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: PathArg | None = None,
        docker_config: PathArg | None = None,
        max_in_flight: int | None = None,
        timeout_seconds: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> PushReport:
        """Send a local snapshot to ``ref``; only the chunks it lacks are sent.

        ``ref`` is ``HOST[:PORT]/REPO[:TAG|@sha256:…]`` (a registry, HTTPS
        unless ``plain_http``), ``oci:DIR[:TAG]`` (an OCI image layout) or
        ``oci-archive:FILE[:TAG]``. ``with_parents`` pushes the chain too,
        each ancestor tagged ``sha256-<hex>``; ``since`` (``oci-archive:``
        only) leaves out what that local ancestor holds. Credentials:
        ``username`` with ``password`` (both or neither), else docker's
        config (``docker_config``, else ``$DOCKER_CONFIG/config.json``, else
        ``~/.docker/config.json``). ``ca_file`` is a PEM bundle to verify
        the registry's certificate against. ``max_in_flight`` (default 4)
        and ``timeout_seconds`` (without progress; default 30) tune the
        transfer. Refused credentials raise Unauthorized, a registry that
        is down or answers nonsense RegistryError.
        """
        home = cls._home()
        args = {
            "ref": snapshot_ref(name_or_path),
            "reference": _reference(ref),
            "with_parents": with_parents,
            "since": snapshot_ref(since) if since is not None else None,
            **_remote(plain_http, username, password, ca_file, docker_config, max_in_flight, timeout_seconds),
        }
        data = call_long(
            _lib.lib().msnap_snapshot_push,
            home.context(),
            encode_args(args),
            cancel=cancel,
            progress=progress,
        )
        return PushReport.from_json(data)

    @classmethod
    def pull(
        cls,
        ref: str,
        dest: PathArg | None = None,
        *,
        name: str | None = None,
        with_parents: bool = False,
        plain_http: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: PathArg | None = None,
        docker_config: PathArg | None = None,
        max_in_flight: int | None = None,
        timeout_seconds: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> SnapshotHandle:
        """Fetch a snapshot from ``ref`` (as :meth:`push` takes it); its handle.

        Into the home's snapshots directory (or ``dest``), named after the
        tag (or ``name``; a name a different snapshot has raises
        AlreadyExists), every chunk and the snapshot's digest and integrity
        checked, then indexed. Chunks a local snapshot already has are
        copied, not downloaded; pulling one that is there already is a
        no-op. ``with_parents`` pulls the chain too and records the lineage.
        The remote options are :meth:`push`'s. A failed or cancelled pull
        leaves nothing behind. :meth:`pull_with_report` also gives the
        report.
        """
        return cls.pull_with_report(
            ref,
            dest,
            name=name,
            with_parents=with_parents,
            plain_http=plain_http,
            username=username,
            password=password,
            ca_file=ca_file,
            docker_config=docker_config,
            max_in_flight=max_in_flight,
            timeout_seconds=timeout_seconds,
            progress=progress,
            cancel=cancel,
        ).head

    @classmethod
    def pull_with_report(
        cls,
        ref: str,
        dest: PathArg | None = None,
        *,
        name: str | None = None,
        with_parents: bool = False,
        plain_http: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: PathArg | None = None,
        docker_config: PathArg | None = None,
        max_in_flight: int | None = None,
        timeout_seconds: int | None = None,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> PullResult:
        """:meth:`pull`, returning the head (``.head``) and what was transferred (``.report``)."""
        home = cls._home()
        args = {
            "reference": _reference(ref),
            "dest": path_arg(dest) if dest is not None else None,
            "name": name,
            "with_parents": with_parents,
            **_remote(plain_http, username, password, ca_file, docker_config, max_in_flight, timeout_seconds),
        }
        data = call_long(
            _lib.lib().msnap_snapshot_pull,
            home.context(),
            encode_args(args),
            cancel=cancel,
            progress=progress,
        )
        return PullResult.from_json(data, home)


def _reference(ref: object) -> str:
    """A push or pull reference: text, which the library parses."""
    if not isinstance(ref, str):
        raise TypeError(f"ref must be a str (a registry, oci: or oci-archive: reference), not {type(ref).__name__}")
    return ref


def _remote(
    plain_http: bool,
    username: str | None,
    password: str | None,
    ca_file: PathArg | None,
    docker_config: PathArg | None,
    max_in_flight: int | None,
    timeout_seconds: int | None,
) -> dict[str, object]:
    """The members of the library's RemoteOptions; None means "absent"."""
    return {
        "plain_http": plain_http,
        "username": username,
        "password": password,
        "ca_file": path_arg(ca_file) if ca_file is not None else None,
        "docker_config": path_arg(docker_config) if docker_config is not None else None,
        "max_in_flight": int_arg("max_in_flight", max_in_flight, 1, U64_MAX) if max_in_flight is not None else None,
        "timeout_seconds": (
            int_arg("timeout_seconds", timeout_seconds, 1, U64_MAX) if timeout_seconds is not None else None
        ),
    }


def _duration(name: str, value: str | timedelta | None) -> str | None:
    """A duration argument as the library reads it; the library checks text."""
    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a str or datetime.timedelta, not {type(value).__name__}")
    if value < timedelta(0):
        raise InvalidArgument(f"{name} must not be negative, not {value}")
    return f"{value // timedelta(seconds=1)}s"

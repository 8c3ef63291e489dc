"""Sandbox: create, start, stop, look up, list and remove sandboxes.

A :class:`Sandbox` instance is a *running* sandbox: it owns the native
``msnap_sandbox`` handle, which holds the sandbox's lock. ``stop()`` records
it stopped and releases the lock; ``close()`` frees the handle (a sandbox
closed without stop reads as ``crashed``, as if its process had died). As a
context manager it stops and closes on exit. Everything about a sandbox
that is not running is a :class:`SandboxHandle`.
"""

from __future__ import annotations

import ctypes
import threading
from typing import TYPE_CHECKING, Any, Literal, Self, overload

from . import _lib
from ._bound import BoundToHome
from ._call import ProgressCallback, call, call_long, check_status, encode_args
from ._cancel import Cancel
from ._errors import InvalidArgument
from ._ints import SIZE_MAX, int_arg
from ._paths import PathArg, SnapshotRef, path_arg, snapshot_ref
from ._types import SandboxHandle, SandboxList

if TYPE_CHECKING:
    from ._home import Home


class Sandbox(BoundToHome):
    """A running sandbox (from :meth:`create` or :meth:`start`)."""

    def __init__(self, home: Home, handle: Any, info: SandboxHandle) -> None:
        # Made by create()/start(), which hand over a live native handle.
        self._home_ref = home
        self._handle: Any = handle
        self._lock = threading.Lock()
        self._stopped = False
        self._last = info

    # ---- class methods: the sandboxes of a home ----

    @overload
    @classmethod
    def create(
        cls,
        name: str,
        *,
        image: str | None = ...,
        snapshot: SnapshotRef | None = ...,
        upper: PathArg | None = ...,
        fstype: str | None = ...,
        size: int | None = ...,
        start: Literal[True] = ...,
        progress: ProgressCallback | None = ...,
        cancel: Cancel | None = ...,
    ) -> Sandbox: ...

    @overload
    @classmethod
    def create(
        cls,
        name: str,
        *,
        image: str | None = ...,
        snapshot: SnapshotRef | None = ...,
        upper: PathArg | None = ...,
        fstype: str | None = ...,
        size: int | None = ...,
        start: Literal[False],
        progress: ProgressCallback | None = ...,
        cancel: Cancel | None = ...,
    ) -> SandboxHandle: ...

    @classmethod
    def create(
        cls,
        name: str,
        *,
        image: str | None = None,
        snapshot: SnapshotRef | None = None,
        upper: PathArg | None = None,
        fstype: str | None = None,
        size: int | None = None,
        start: bool = True,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> Sandbox | SandboxHandle:
        """Create a sandbox and (unless ``start=False``) start it.

        Exactly one source: ``image`` (a fresh sparse upper of ``size`` bytes,
        default 4 GiB), ``snapshot`` (a private copy of its upper; its image
        comes with it), or ``image`` + ``upper`` + ``fstype`` (adopt a copy of
        an existing raw or qcow2 upper; the format is detected).

        ``size`` is an int (TypeError otherwise) of 0..2**63-1 bytes
        (InvalidArgument otherwise).
        """
        home = cls._home()
        args = {
            "name": name,
            "image": image,
            "snapshot": snapshot_ref(snapshot) if snapshot is not None else None,
            "upper": path_arg(upper) if upper is not None else None,
            "fstype": fstype,
            "size_bytes": int_arg("size", size, 0, SIZE_MAX, " bytes") if size is not None else None,
            "start": start,
        }
        lib = _lib.lib()
        handle = _lib.SandboxPtr()
        try:
            data = call_long(
                lib.msnap_sandbox_create,
                ctypes.byref(handle),
                home.context(),
                encode_args(args),
                out_at=1,
                cancel=cancel,
                progress=progress,
            )
        except BaseException:
            # Interrupted or a failed callback after the library succeeded:
            # do not leave the sandbox locked with nobody to release it.
            if handle:
                lib.msnap_sandbox_stop(None, handle)
                lib.msnap_sandbox_free(handle)
            raise
        info = SandboxHandle.from_json(data, home)
        if not start:
            return info
        return cls(home, handle, info)

    @classmethod
    def start(cls, name: str) -> Sandbox:
        """Start an existing sandbox; SandboxRunning if it already is."""
        home = cls._home()
        handle = _lib.SandboxPtr()
        data = call(
            _lib.lib().msnap_sandbox_start,
            ctypes.byref(handle),
            home.context(),
            encode_args({"name": name}),
            out_at=1,
        )
        return cls(home, handle, SandboxHandle.from_json(data, home))

    @classmethod
    def get(cls, name: str) -> SandboxHandle:
        """A sandbox by name."""
        home, data = cls._call("msnap_sandbox_get", {"name": name})
        return SandboxHandle.from_json(data, home)

    @classmethod
    def list(cls) -> list[SandboxHandle]:
        """All sandboxes, by name."""
        home, data = cls._call("msnap_sandbox_list")
        return list(SandboxList.from_json(data, home).sandboxes)

    @classmethod
    def remove(cls, name: str) -> None:
        """Remove a sandbox that is not running."""
        cls._call("msnap_sandbox_remove", {"name": name})

    @classmethod
    def mark_stopped(cls, name: str) -> SandboxHandle:
        """Record a sandbox that nobody holds as stopped (clears ``crashed``)."""
        home, data = cls._call("msnap_sandbox_mark_stopped", {"name": name})
        return SandboxHandle.from_json(data, home)

    # ---- instance: one running sandbox ----

    @property
    def name(self) -> str:
        return self._last.name

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _live_handle(self) -> Any:
        handle = self._handle
        if handle is None:
            raise InvalidArgument(f"sandbox {self.name!r}: handle is closed")
        return handle

    def info(self) -> SandboxHandle:
        """The sandbox as it is now (also after stop)."""
        with self._lock:
            if self._stopped or self._handle is None:
                return self._home_ref.Sandbox.get(self.name)
            data = call(_lib.lib().msnap_sandbox_info, self._live_handle())
            self._last = SandboxHandle.from_json(data, self._home_ref)
            return self._last

    def stop(self) -> SandboxHandle:
        """Record the sandbox stopped and release its lock. Stopping twice is a no-op."""
        with self._lock:
            if not self._stopped:
                data = call(_lib.lib().msnap_sandbox_stop, self._live_handle())
                self._stopped = True
                if data:
                    self._last = SandboxHandle.from_json(data, self._home_ref)
            return self._last

    def close(self) -> None:
        """Free the handle. Without a stop first, the sandbox reads as crashed. Idempotent."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            check_status(_lib.lib().msnap_sandbox_free(handle))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._handle is not None:
                self.stop()
        finally:
            self.close()

    def __del__(self) -> None:
        # Safety net only: a forgotten sandbox must not keep its lock forever.
        try:
            if getattr(self, "_handle", None) is not None:
                self.close()
        except Exception:  # noqa: BLE001, S110 - never raise from a finalizer
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("stopped" if self._stopped else "running")
        return f"<microsnap.Sandbox {self.name!r} {state}>"

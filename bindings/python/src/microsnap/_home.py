"""Home: an open context on one microsnap home directory.

``microsnap.Home(path)`` offers the whole API bound to that home as
``home.Sandbox``, ``home.Snapshot`` and ``home.Image`` (subclasses of the
module-level ones, so ``isinstance(sb, microsnap.Sandbox)`` holds). The
module-level API uses :func:`default_home`: ``$MICROSNAP_HOME``, else
``~/.microsnap``, looked up at each call so a changed variable is honoured.
"""

from __future__ import annotations

import ctypes
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from . import _lib
from ._call import call, check_status, encode_args
from ._errors import InvalidArgument
from ._paths import PathArg, path_arg
from ._types import ContextOpen, Usage

if TYPE_CHECKING:
    from ._image import Image
    from ._sandbox import Sandbox
    from ._snapshot import Snapshot


class Home:
    """A microsnap home, open until :meth:`close` (also a context manager)."""

    #: The absolute home directory, as the library resolved it.
    path: Path
    Sandbox: type[Sandbox]
    Snapshot: type[Snapshot]
    Image: type[Image]

    def __init__(self, path: PathArg | None = None) -> None:
        from ._image import Image
        from ._sandbox import Sandbox
        from ._snapshot import Snapshot

        lib = _lib.lib()
        ctx = _lib.ContextPtr()
        args = {"home": path_arg(path) if path is not None else None}
        opened = call(lib.msnap_context_open, ctypes.byref(ctx), encode_args(args), out_at=1)
        self._ctx: Any = ctx
        self._lock = threading.Lock()
        self.path = ContextOpen.from_json(opened).home
        bound = {"_bound_home": self, "__module__": "microsnap"}
        self.Sandbox = type("Sandbox", (Sandbox,), dict(bound, __qualname__="Sandbox"))
        self.Snapshot = type("Snapshot", (Snapshot,), dict(bound, __qualname__="Snapshot"))
        self.Image = type("Image", (Image,), dict(bound, __qualname__="Image"))

    def usage(self) -> Usage:
        """Logical, allocated and shared bytes of every snapshot, sandbox and image, plus totals."""
        return Usage.from_json(call(_lib.lib().msnap_home_usage, self.context(), encode_args({})))

    def context(self) -> Any:
        """The native context handle (``msnap_context *``) for a call."""
        ctx = self._ctx
        if ctx is None:
            raise InvalidArgument(f"microsnap.Home({str(self.path)!r}) is closed")
        return ctx

    @property
    def closed(self) -> bool:
        return self._ctx is None

    def close(self) -> None:
        """Close the context. Idempotent; calls already running finish normally."""
        with self._lock:
            ctx, self._ctx = self._ctx, None
        if ctx is not None:
            check_status(_lib.lib().msnap_context_free(ctx))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        # Safety net only: close() is the way. Never raise from a finalizer.
        try:
            if getattr(self, "_ctx", None) is not None:
                self.close()
        except Exception:  # noqa: BLE001, S110
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<microsnap.Home {str(self.path)!r} {state}>"


_defaults_lock = threading.Lock()
_defaults: dict[str | None, Home] = {}


def default_home() -> Home:
    """The home of the module-level API: ``$MICROSNAP_HOME``, else ``~/.microsnap``."""
    key = os.environ.get("MICROSNAP_HOME") or None
    with _defaults_lock:
        home = _defaults.get(key)
        if home is None or home.closed:
            home = Home(key)
            _defaults[key] = home
        return home

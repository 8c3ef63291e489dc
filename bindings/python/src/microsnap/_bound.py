"""The home an API class acts on: the default one, or the Home it is bound to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from . import _lib
from ._call import call, encode_args

if TYPE_CHECKING:
    from ._home import Home


class BoundToHome:
    """Base of Sandbox, Snapshot and Image: class methods act on ``_home()``.

    ``Home(path)`` makes subclasses with ``_bound_home`` set; the module-level
    classes leave it None and use the default home.
    """

    _bound_home: ClassVar[Home | None] = None

    @classmethod
    def _home(cls) -> Home:
        if cls._bound_home is not None:
            return cls._bound_home
        from ._home import default_home

        return default_home()

    @classmethod
    def _call(cls, name: str, args: dict[str, Any] | None = None) -> tuple[Home, Any]:
        """``msnap_<name>(&out, ctx, args)``: the home used and the parsed result."""
        home = cls._home()
        return home, call(getattr(_lib.lib(), name), home.context(), encode_args(args))

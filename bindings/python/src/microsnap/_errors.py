"""Exceptions: one class per library error code.

Every failure of the library is a ``microsnap.Error`` carrying the stable
snake_case ``code`` (as in docs/abi.md), the numeric ``status`` and the
library's ``message``. Each code has its own subclass; the not-found ones
are also ``LookupError``, ``InvalidArgument`` is also ``ValueError`` and
``IoError`` is also ``OSError``, so generic ``except LookupError`` or
``except OSError`` code works too.

Every class says it is ``microsnap.<Name>`` (``__module__``), the name users
import it by, so tracebacks show ``microsnap.ImageNotFound`` and pickle finds
the class again. (No ``from __future__ import annotations`` here: the
annotations are evaluated now, so they do not depend on the module they
claim to be in.)
"""

import json
from typing import Any, ClassVar

from ._wire import WireMismatch, check_fields


class Error(Exception):
    """A failure reported by libmicrosnap."""

    code: str
    status: int
    message: str
    #: Every field of the library's error object, including per-code extras.
    details: dict[str, Any]

    # Set by each subclass; the base class keeps what the library said.
    CODE: ClassVar[str] = ""
    STATUS: ClassVar[int] = -1
    #: The fields this code's error object has beyond ``code`` and ``message``.
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code if code is not None else self.CODE
        self.status = status if status is not None else self.STATUS
        self.details = dict(details or {})

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class SnapshotNotFound(Error, LookupError):
    """No snapshot by that name, digest or path."""

    CODE, STATUS = "snapshot_not_found", 1


class SandboxNotFound(Error, LookupError):
    """No sandbox by that name."""

    CODE, STATUS = "sandbox_not_found", 2


class ImageNotFound(Error, LookupError):
    """The image is not in the home's OCI layout."""

    CODE, STATUS = "image_not_found", 3


class AlreadyExists(Error):
    """The destination or name is taken."""

    CODE, STATUS = "already_exists", 4


class SandboxRunning(Error):
    """The sandbox is running (a live handle holds its lock)."""

    CODE, STATUS = "sandbox_running", 5


class HasChildren(Error):
    """The snapshot has indexed children; remove them first or use force."""

    CODE, STATUS = "has_children", 6
    FIELDS = ("digest", "children")

    @property
    def digest(self) -> str | None:
        return self.details.get("digest")

    @property
    def children(self) -> int:
        """How many indexed snapshots name this one as their parent."""
        return int(self.details.get("children") or 0)


class IntegrityMismatch(Error):
    """Content differs from what the manifest records."""

    CODE, STATUS = "integrity_mismatch", 7
    FIELDS = ("path", "expected", "actual")

    @property
    def path(self) -> str | None:
        return self.details.get("path")

    @property
    def expected(self) -> str | None:
        return self.details.get("expected")

    @property
    def actual(self) -> str | None:
        return self.details.get("actual")


class InvalidArgument(Error, ValueError):
    """A bad argument: name, path, option, handle."""

    CODE, STATUS = "invalid_argument", 8


class InvalidManifest(Error):
    """A manifest.json is malformed or inconsistent with its artifact."""

    CODE, STATUS = "invalid_manifest", 9


class InvalidArchive(Error):
    """An archive is malformed or hostile."""

    CODE, STATUS = "invalid_archive", 10


class Unsupported(Error):
    """Valid but not supported (unknown algorithm, qcow2 backing file, newer DB)."""

    CODE, STATUS = "unsupported", 11


class IoError(Error, OSError):
    """A filesystem or database error; also an ``OSError``.

    ``errno`` is the error object's ``errno`` when it has one, else None.
    The engine's io error object carries no errno today (only ``code`` and
    ``message``, whose text includes the OS's description), so it is None
    until the engine adds the field. ``strerror`` is the library's message.
    """

    CODE, STATUS = "io", 12
    FIELDS = ("errno",)

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, details=details)
        errno = self.details.get("errno")
        self.errno = errno if type(errno) is int else None
        self.strerror = message


class Cancelled(Error):
    """Cancelled by a Cancel token or a progress callback."""

    CODE, STATUS = "cancelled", 13


class InternalError(Error):
    """A bug in libmicrosnap (including a caught panic)."""

    CODE, STATUS = "internal", 14


class Unauthorized(Error):
    """A registry refused the credentials given (or their absence) for what was asked.

    The message names the registry and repository, never a secret.
    """

    CODE, STATUS = "unauthorized", 15


class RegistryError(Error):
    """A registry could not be reached, timed out, or answered outside the protocol."""

    CODE, STATUS = "registry_error", 16


ERROR_CLASSES: tuple[type[Error], ...] = (
    SnapshotNotFound,
    SandboxNotFound,
    ImageNotFound,
    AlreadyExists,
    SandboxRunning,
    HasChildren,
    IntegrityMismatch,
    InvalidArgument,
    InvalidManifest,
    InvalidArchive,
    Unsupported,
    IoError,
    Cancelled,
    InternalError,
    Unauthorized,
    RegistryError,
)

for _cls in (Error, *ERROR_CLASSES):
    _cls.__module__ = "microsnap"
del _cls

_BY_STATUS: dict[int, type[Error]] = {cls.STATUS: cls for cls in ERROR_CLASSES}


def error_from(status: int, text: str, *, strict: bool = False) -> Error:
    """The exception for a failed call: its status and its error object text.

    Tolerant by default (any text gives an exception). With ``strict`` (the
    tests, on the golden files), the text must be an error object whose
    ``code`` is the status's and whose fields this binding all knows.
    """
    try:
        parsed = json.loads(text) if text else {}
    except ValueError:
        parsed = None
    details = parsed if isinstance(parsed, dict) else {}
    cls = _BY_STATUS.get(status, Error)
    if strict:
        _check_strictly(cls, status, parsed)
    message = str(details.get("message") or text or f"microsnap error {status}")
    code = details.get("code") if cls is Error else cls.CODE
    return cls(message, code=str(code or f"status_{status}"), status=status, details=details)


def _check_strictly(cls: type[Error], status: int, parsed: Any) -> None:
    if cls is Error:
        raise WireMismatch(f"status {status}: no error class has this status")
    check_fields(cls.__name__, parsed, ("code", "message", *cls.FIELDS), strict=True)
    if parsed.get("code") != cls.CODE:
        raise WireMismatch(f"status {status} is {cls.CODE!r}, but the error object says {parsed.get('code')!r}")

"""microsnap: snapshots of microVM sandbox disks, over libmicrosnap's C ABI.

    import microsnap
    with microsnap.Sandbox.create("baseline", image="alpine:3.20") as sb:
        ...                                   # stopped and closed on exit
    snap = microsnap.Sandbox.get("baseline").snapshot("after-setup")
    snap.verify()

The module-level classes act on ``$MICROSNAP_HOME`` (else ``~/.microsnap``);
``microsnap.Home(path)`` offers the same classes bound to another home.
Every failure is a ``microsnap.Error`` subclass; see docs/abi.md for codes.
"""

from . import _lib
from ._call import ProgressCallback
from ._cancel import Cancel
from ._errors import (
    AlreadyExists,
    Cancelled,
    Error,
    HasChildren,
    ImageNotFound,
    IntegrityMismatch,
    InternalError,
    InvalidArchive,
    InvalidArgument,
    InvalidManifest,
    IoError,
    RegistryError,
    SandboxNotFound,
    SandboxRunning,
    SnapshotNotFound,
    Unauthorized,
    Unsupported,
)
from ._formats import FORMAT_MSB_V063, FORMAT_MSB_V0614
from ._home import Home
from ._image import Image
from ._lib import ABI_VERSION, LibraryError
from ._sandbox import Sandbox
from ._snapshot import Snapshot
from ._types import (
    DirListing,
    ExportResult,
    ImageInfo,
    ImagePin,
    ImagePruneReport,
    Integrity,
    KeptSnapshot,
    PrunedSnapshot,
    PruneReport,
    PrunedBlob,
    PullReport,
    PullResult,
    PushedSnapshot,
    PushReport,
    SandboxHandle,
    SkippedArtifact,
    SnapshotArtifact,
    SnapshotHandle,
    Space,
    UpperVerify,
    Usage,
    UsageItem,
    VerifyReport,
)

__version__ = "0.1.0"


def library_version() -> str:
    """The loaded libmicrosnap's version string."""
    return (_lib.lib().msnap_version() or b"").decode()


def version() -> str:
    """This package's version, the loaded library's and the ABI it speaks, as
    ``microsnap --version`` prints them: ``"0.1.0 (libmicrosnap 0.1.0, ABI 1)"``.
    Loads the library, so it is also the quickest check of an install."""
    return f"{__version__} (libmicrosnap {library_version()}, ABI {_lib.lib().msnap_abi_version()})"


def library_path() -> str:
    """The path (or loader name) of the loaded libmicrosnap."""
    return str(_lib.lib()._name)


__all__ = [
    "ABI_VERSION",
    "AlreadyExists",
    "Cancel",
    "Cancelled",
    "DirListing",
    "Error",
    "ExportResult",
    "FORMAT_MSB_V063",
    "FORMAT_MSB_V0614",
    "HasChildren",
    "Home",
    "Image",
    "ImageInfo",
    "ImageNotFound",
    "ImagePin",
    "ImagePruneReport",
    "Integrity",
    "IntegrityMismatch",
    "InternalError",
    "InvalidArchive",
    "InvalidArgument",
    "InvalidManifest",
    "IoError",
    "KeptSnapshot",
    "LibraryError",
    "ProgressCallback",
    "PruneReport",
    "PrunedSnapshot",
    "PrunedBlob",
    "PullReport",
    "PullResult",
    "PushReport",
    "PushedSnapshot",
    "RegistryError",
    "Sandbox",
    "SandboxHandle",
    "SandboxNotFound",
    "SandboxRunning",
    "SkippedArtifact",
    "Snapshot",
    "SnapshotArtifact",
    "SnapshotHandle",
    "SnapshotNotFound",
    "Unauthorized",
    "Space",
    "Unsupported",
    "UpperVerify",
    "Usage",
    "UsageItem",
    "VerifyReport",
    "library_path",
    "library_version",
    "version",
]

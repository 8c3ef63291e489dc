"""Image: the home's local OCI image layout."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from . import _lib
from ._bound import BoundToHome
from ._call import call_long, encode_args
from ._paths import PathArg, path_arg
from ._types import ImageImport, ImageInfo, ImageList, ImagePin, ImagePruneReport

if TYPE_CHECKING:
    from ._call import ProgressCallback
    from ._cancel import Cancel


class Image(BoundToHome):
    """Image operations on a home (the default one, or ``Home(path).Image``)."""

    def __init__(self) -> None:
        raise TypeError("microsnap.Image is a namespace; use its class methods")

    @classmethod
    def list(cls) -> list[ImageInfo]:
        """Images in the home's OCI layout."""
        _, data = cls._call("msnap_image_list")
        return list(ImageList.from_json(data).images)

    @classmethod
    def import_(cls, source: PathArg, ref: str | None = None) -> builtins.list[ImagePin]:
        """Copy the images (or only ``ref``) of the OCI layout ``source`` into the home's."""
        _, data = cls._call("msnap_image_import", {"source": path_arg(source), "ref": ref})
        return list(ImageImport.from_json(data).images)

    @classmethod
    def prune(
        cls,
        dry_run: bool = False,
        *,
        progress: ProgressCallback | None = None,
        cancel: Cancel | None = None,
    ) -> ImagePruneReport:
        """Remove the layout's blobs no tagged image, sandbox or snapshot needs.

        Unnamed ``index.json`` entries nothing pins go too; the layout stays
        valid for OCI tools. With ``dry_run`` nothing changes and the report
        says what would go. A snapshot directory whose descriptor cannot be
        read raises InvalidManifest and removes nothing. ``cancel`` also
        stops a prune waiting for an import or sandbox create to finish.
        """
        home = cls._home()
        data = call_long(
            _lib.lib().msnap_image_prune,
            home.context(),
            encode_args({"dry_run": dry_run}),
            cancel=cancel,
            progress=progress,
        )
        return ImagePruneReport.from_json(data)

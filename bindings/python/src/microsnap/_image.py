"""Image: the home's local OCI image layout."""

from __future__ import annotations

import builtins

from ._bound import BoundToHome
from ._paths import PathArg, path_arg
from ._types import ImageImport, ImageInfo, ImageList, ImagePin


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

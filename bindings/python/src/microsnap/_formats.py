"""Artifact formats: the on-disk layout of a snapshot's descriptor and of an archive.

``msb-v0.6.3`` is microsandbox v0.6.3's (``manifest.json``), the reference
page's and the default; ``msb-v0.6.14`` is current microsandbox's
(``snapshot.json``), which it reads without migrating anything. The binding
checks a ``format=`` argument itself so that a typo names the argument and
the values instead of reaching the library.
"""

from ._errors import InvalidArgument

FORMAT_MSB_V063 = "msb-v0.6.3"
FORMAT_MSB_V0614 = "msb-v0.6.14"
FORMATS = (FORMAT_MSB_V063, FORMAT_MSB_V0614)


def format_arg(value: object) -> str | None:
    """``value`` as a ``format`` argument: None (the default) or one of FORMATS."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"format must be a str or None, not {type(value).__name__}")
    if value not in FORMATS:
        expected = " or ".join(repr(f) for f in FORMATS)
        raise InvalidArgument(f"unknown format {value!r}: expected {expected} (None for {FORMAT_MSB_V063!r})")
    return value

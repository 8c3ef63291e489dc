"""Integer arguments, checked against what the C ABI can carry.

A Python int has no bound, and ``True`` and ``1.5`` encode as JSON too, but
the library reads each integer argument as a fixed-width type (a size is
0..2**63-1 bytes, ``threads`` a u32, ``level`` an i32). A value outside it
reaches the library as a number it cannot represent, and what comes back
is a message about JSON or integer conversion rather than the argument. So
the binding refuses it first, naming the argument: a wrong type is a
``TypeError`` (as for every other argument of the binding), an int out of
range is ``microsnap.InvalidArgument``.
"""

import operator

from ._errors import InvalidArgument

#: The largest size the library accepts: it keeps sizes in i64 (off_t).
SIZE_MAX = (1 << 63) - 1
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def int_arg(name: str, value: object, low: int, high: int, unit: str = "") -> int:
    """``value`` as an int in ``low..high``, or the error that names ``name``.

    Anything ``operator.index`` accepts (numpy integers, IntEnum) is an int;
    ``bool`` is not, though Python counts it as one.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None
    if not low <= number <= high:
        raise InvalidArgument(f"{name} must be {_bound(low)} to {_bound(high)}{unit}, not {number}")
    return number


def _bound(n: int) -> str:
    """Limits as people write them: 2**63-1, not 9223372036854775807."""
    for bits in (31, 32, 63, 64):
        if n == (1 << bits) - 1:
            return f"2**{bits}-1"
        if n == -(1 << bits):
            return f"-2**{bits}"
    return str(n)

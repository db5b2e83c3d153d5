"""A task whose exception pickles but cannot be rebuilt (imported by name by the ppft workers)."""

from __future__ import annotations


class QuotaError(Exception):
    """``__init__`` wants two arguments; unpickling passes one (the message)."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is over its quota of {limit}")
        self.limit = limit


def square_but_3(x: int) -> int:
    """``x * x``, but :class:`QuotaError` for 3."""
    if x == 3:
        raise QuotaError("disk", x)
    return x * x

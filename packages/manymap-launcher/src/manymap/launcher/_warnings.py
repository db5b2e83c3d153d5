"""Warnings that point at the user's line, not at manymap's source."""

from __future__ import annotations

import sys
from types import FrameType

__all__ = ["user_stacklevel"]

_OURS = ("manymap.launcher", "manymap.pools", "manymap.serialize", "manymap.secure", "manymap.maps")
_THEIRS = ("manymap.launcher.testing",)  # the conformance suite calls pools as a user does


def user_stacklevel() -> int:
    """The ``stacklevel`` for a ``warnings.warn`` in the caller that names the
    first frame outside manymap's own modules (1 if there is none)."""
    frame: FrameType | None = sys._getframe(1)  # the function that will call warnings.warn: level 1
    level = 1
    while frame is not None:
        if not _internal(frame.f_globals.get("__name__", "")):
            return level
        frame = frame.f_back
        level += 1
    return 1


def _internal(module: str) -> bool:
    if any(module == theirs or module.startswith(theirs + ".") for theirs in _THEIRS):
        return False
    return any(module == ours or module.startswith(ours + ".") for ours in _OURS)

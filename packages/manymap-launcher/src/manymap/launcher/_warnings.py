"""Warnings that point at the user's line, not at manymap's source.

A warning raised deep inside a pool (say, from the progress bookkeeping that
``map`` calls through three private modules) would name a manymap file and
line if it used a fixed ``stacklevel``. :func:`warn_user` attributes it to the
first frame outside every ``manymap`` package instead: the caller's line.
On Python 3.12+ that is ``warnings.warn(..., skip_file_prefixes=...)``; on
3.10 and 3.11 the same stack level is found by walking the frames.
"""

from __future__ import annotations

import os
import sys
import warnings
from types import FrameType

__all__ = ["warn_user"]


def _manymap_dirs() -> tuple[str, ...]:
    """The directories of the ``manymap`` namespace (one per installed distribution or source tree)."""
    manymap = sys.modules.get("manymap")
    paths = list(getattr(manymap, "__path__", ()) or ())
    return tuple(os.path.join(os.path.abspath(path), "") for path in paths)


def _user_stacklevel(prefixes: tuple[str, ...]) -> int:
    """The ``stacklevel`` of the first frame (from :func:`warn_user`'s caller out) outside ``prefixes``."""
    frame: FrameType | None = sys._getframe(2)  # the caller of warn_user
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(prefixes):
        frame = frame.f_back
        level += 1
    return level


def warn_user(message: str, category: type[Warning] = RuntimeWarning) -> None:
    """Issue a warning attributed to the first caller outside manymap's packages.

    Args:
        message: the warning's text.
        category: the warning class (default :class:`RuntimeWarning`).

    The warning's ``filename`` and ``lineno`` are the user's code that called
    into manymap (for a warning raised on a pool's own thread, the outermost
    frame of that thread), so ``python -W error`` and warning filters by
    module see the user's module, and the message shows the user's line.
    """
    prefixes = _manymap_dirs()
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=prefixes)  # pragma: no cover - 3.12+
    else:
        warnings.warn(message, category, stacklevel=_user_stacklevel(prefixes))

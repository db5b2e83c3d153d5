"""Task functions of the conformance suite.

They live in an importable module so that every kind of worker (a thread, a
spawned process, a remote server) can import them by reference.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = [
    "describe",
    "fail_on",
    "raise_exit",
    "sleep_once",
    "sleep_then",
    "square",
    "where",
]


def square(x: int) -> int:
    """``x * x``."""
    return x * x


def describe(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Echo the arguments, so a test can see exactly what reached the task."""
    return args, kwargs


def fail_on(x: int, bad: int = 3) -> int:
    """``x * x``, but ``ValueError`` when ``x == bad``."""
    if x == bad:
        raise ValueError(f"task saw the bad value {x}")
    return x * x


def raise_exit(x: int) -> int:
    """Raise ``SystemExit``: a task's exit must fail only that task."""
    raise SystemExit(f"task {x} called exit")


def sleep_then(x: T, seconds: float) -> T:
    """Sleep ``seconds`` (when positive), then return ``x``."""
    if seconds > 0:
        time.sleep(seconds)
    return x


def sleep_once(marker: str, seconds: float) -> str:
    """Sleep ``seconds`` the first time (creating ``marker``), return at once after.

    Returns ``"first"`` or ``"again"``: a timed-out first attempt followed by
    a quick retry returns ``"again"``.
    """
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return "again"
    os.close(fd)
    time.sleep(seconds)
    return "first"


def where(x: Any) -> tuple[Any, int, int]:
    """``(x, pid, thread id)`` of the worker that ran the task."""
    return x, os.getpid(), threading.get_ident()

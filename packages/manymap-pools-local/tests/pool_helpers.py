"""Task functions for tests whose workers are spawned: they import this module by name."""

from __future__ import annotations

from typing import Any

from manymap.pools.local import ProcessPool

_configured: list[str] = []


def inner_process_map(x: int) -> list[int]:
    """A task that runs a process pool of its own."""
    with ProcessPool(2) as inner:
        return inner.map(abs, range(-x, 0))


def configure(value: str) -> None:
    """A worker initializer."""
    _configured.append(value)


def configured(_: Any) -> list[str]:
    """What the initializer left in this worker."""
    return list(_configured)


class QuotaError(Exception):
    """An exception that pickles but cannot be rebuilt: ``__init__`` wants two arguments."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is over its quota of {limit}")
        self.limit = limit


def square_but_3(x: int) -> int:
    """``x * x``, but :class:`QuotaError` for 3."""
    if x == 3:
        raise QuotaError("disk", x)
    return x * x


def family(x: int) -> tuple[int, int, int]:
    """``(x, pid, parent pid)`` of the process that ran the task."""
    import os

    return x, os.getpid(), os.getppid()


def thread_of(x: int) -> tuple[int, int, int]:
    """``(x, pid, thread id)`` of the worker that ran the task."""
    import os
    import threading

    return x, os.getpid(), threading.get_ident()

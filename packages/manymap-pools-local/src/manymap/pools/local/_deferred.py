"""What the package imports only when a call first needs it, never at import time.

``multiprocessing`` (its context, connection and util modules) is needed
only by a ProcessPool: the first one created imports it, so a ThreadPool or
SerialPool map never loads it. (Not later, when workers start: importing
``multiprocessing.util`` registers its exit handler, which must come before
the exit hook of an executor view of the pool, so that ``atexit``, last in
first out, lets the executor finish its work first.) ``ctypes`` is imported only in a worker, for ``prctl``; ``mmap``
by the first large buffer that goes through shared memory (``_shm.py``) and
the worker's main loop (``_worker.py``) when the first worker starts (in
``_process.py``). Every other deferred import of the package is a function
here.
"""

from __future__ import annotations

import functools
from types import ModuleType

__all__ = ["multiprocessing", "prctl"]


@functools.cache
def multiprocessing() -> ModuleType:
    """The ``multiprocessing`` package, its ``connection`` and ``util`` modules loaded."""
    import multiprocessing
    import multiprocessing.connection
    import multiprocessing.util

    return multiprocessing


def prctl(option: int, value: int) -> None:
    """``prctl(option, value)`` through libc (``ctypes`` imported on first use).

    Raises:
        OSError, AttributeError: no libc with ``prctl`` here.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(option, value, 0, 0, 0)

"""What the package imports only when a call first needs it, never at import time.

``multiprocessing`` (its context and util modules) is needed only by a
ProcessPool: the first one created imports it, so a ThreadPool or SerialPool
map never loads it. (Not later, when workers start: importing
``multiprocessing.util`` registers its exit handler, which must come before
the exit hook of an executor view of the pool, so that ``atexit``, last in
first out, lets the executor finish its work first.) ``_ctypes`` is imported
only in a worker, for ``prctl``; ``mmap`` by the first large buffer that goes
through shared memory (``_shm.py``) and the worker's main loop
(``_worker.py``) when the first worker starts (in ``_process.py``). Every
other deferred import of the package is a function here.
"""

from __future__ import annotations

import functools
from types import ModuleType

__all__ = ["multiprocessing", "prctl"]


@functools.cache
def multiprocessing() -> ModuleType:
    """The ``multiprocessing`` package with its ``util`` module loaded (not ``connection``:
    the pool's pipes are its own, ``_channel.py``)."""
    import multiprocessing
    import multiprocessing.util

    return multiprocessing


def prctl(option: int, value: int) -> None:
    """``prctl(option, value)`` through libc, in a worker as it starts.

    Through ``_ctypes``, the extension ``ctypes`` is built on, with a function
    type of our own: the ``ctypes`` package itself would add 1 to 2 ms to each
    worker's start for the one call. The result is not read (best effort, as
    the callers treat it).

    Raises:
        OSError, AttributeError, ImportError: no libc with ``prctl`` here.
    """
    import _ctypes

    class _Call(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = None

    libc = _ctypes.dlopen(None)  # type: ignore[arg-type]  # None: the program itself, as dlopen(3) takes it
    _Call(_ctypes.dlsym(libc, "prctl"))(option, value, 0, 0, 0)

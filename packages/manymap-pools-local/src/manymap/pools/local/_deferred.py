"""What the package imports only when a call first needs it, never at import time.

``multiprocessing.util`` (with ``subprocess`` and ``locale``, which it
imports) is needed only by a ProcessPool that starts ``multiprocessing``
processes (spawn, forkserver, or fork where there are no pidfds; forked
workers are started without it, ``_forked.py``): the first such pool
imports it when it is created. (Not later, when workers start: importing it
registers ``multiprocessing``'s exit handler, which must come before the exit
hook of an executor view of the pool, so that ``atexit``, last in first out,
lets the executor finish its work first.) ``_ctypes`` is loaded for
``prctl``, by a process about to fork workers or else in a worker;
``mmap`` by the first large buffer that goes through shared memory
(``_shm.py``), and what starts a worker (``_channel.py``, ``_forked.py``)
and its main loop (``_worker.py``) when the first worker starts (in
``_process.py``). Every other deferred import of the
package is a function here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from types import ModuleType

__all__ = ["load_prctl", "multiprocessing", "prctl"]


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
    type of our own: the ``ctypes`` package itself would add 1 to 2 ms for the
    one call. The result is not read (best effort, as the callers treat it).

    Raises:
        OSError, AttributeError, ImportError: no libc with ``prctl`` here.
    """
    _prctl()(option, value, 0, 0, 0)


def load_prctl() -> None:
    """Load what :func:`prctl` calls, in a process about to fork workers: a worker
    that inherits it saves the load (about 1 ms of its start), paid once here."""
    with contextlib.suppress(OSError, AttributeError, ImportError):
        _prctl()


@functools.cache
def _prctl() -> Callable[..., None]:
    import _ctypes

    class _Call(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL
        _restype_ = None

    libc = _ctypes.dlopen(None)  # type: ignore[arg-type]  # None: the program itself, as dlopen(3) takes it
    function: Callable[..., None] = _Call(_ctypes.dlsym(libc, "prctl"))
    return function

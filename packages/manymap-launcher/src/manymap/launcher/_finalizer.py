"""Work that a finalizer must not do itself, done on a thread of its own.

A ``__del__`` runs wherever the garbage collector happens to run: on any
thread, at any allocation, possibly while that very thread holds the pool's
lock (the manager thread allocating a watchdog thread, say). A dropped
``imap`` iterator must cancel its job, and cancelling takes that lock; done
inside the collector it would deadlock the thread against itself.
:func:`call_soon` hands such work to one daemon thread instead, through a
:class:`queue.SimpleQueue`, whose ``put`` is safe inside ``__del__``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable

__all__ = ["call_soon", "ensure_started"]

_work: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()


def ensure_started() -> None:
    """Start the finalizer thread of this process if it is not running.

    Called where a finalizer's object is made (never from ``__del__``: starting
    a thread takes locks of its own).
    """
    global _thread
    if _thread is not None:
        return
    with _start_lock:
        if _thread is None:
            thread = threading.Thread(target=_serve, name="manymap-finalizer", daemon=True)
            thread.start()
            _thread = thread


def call_soon(work: Callable[[], object]) -> None:
    """Run ``work()`` on the finalizer thread; safe to call from ``__del__``."""
    _work.put(work)


def _serve() -> None:
    while True:
        work = _work.get()
        with contextlib.suppress(Exception):  # a finalizer's work has nobody to report to
            work()
        del work


def _forget_after_fork() -> None:
    # A forked child has no finalizer thread (and maybe a queue caught mid-put).
    global _thread, _work, _start_lock
    _thread = None
    _work = queue.SimpleQueue()
    _start_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)

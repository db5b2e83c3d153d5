"""Per-task timeouts: a deadline per running batch, one thread that enforces them.

A job whose options set ``timeout`` asks the :class:`Watchdog` to watch each
of its batches as it starts (:meth:`Watchdog.watch`, under the pool's lock).
One thread per pool, started with the first deadline and gone once none is
left (an idle pool holds no thread), sleeps until the earliest deadline,
then hands every batch still running past its deadline to ``expire``
(outside the lock): the job fails or retries it, and the pool kills the
worker if it can. Batches settled meanwhile are dropped unseen.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from manymap.launcher._batch import Batch
    from manymap.launcher._lifecycle import Lifecycle

__all__ = ["Watchdog"]

_WAIT_SLICE = 1.0  # seconds; the thread re-checks the pool's state at least this often


class Watchdog:
    """The deadlines of a pool's running batches and the thread that enforces them.

    Args:
        lock: the pool's lock, which guards the deadlines.
        lifecycle: the pool's state: a terminated pool's deadlines are dropped.
        expire: called (outside the lock) with each batch past its deadline.
        name: the thread's name.
    """

    def __init__(
        self, lock: threading.Lock, lifecycle: Lifecycle, expire: Callable[[Batch], None], name: str
    ) -> None:
        self._lock = lock
        self._cond = threading.Condition(lock)
        self._lifecycle = lifecycle
        self._expire = expire
        self._name = name
        self._deadlines: list[tuple[float, int, Batch]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, batch: Batch, deadline: float) -> None:
        """Expire ``batch`` if it is still running at ``deadline`` (under the lock)."""
        heapq.heappush(self._deadlines, (deadline, next(self._ids), batch))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._cond.notify()

    def wake(self) -> None:
        """Make the thread re-check the pool's state now (under the lock)."""
        self._cond.notify_all()

    def join(self) -> None:
        """Wait for the thread, if one runs (call it on a stopped pool, without the lock)."""
        with self._lock:
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        deadlines = self._deadlines
        with self._lock:
            while True:
                if self._lifecycle.terminated or not deadlines:
                    deadlines.clear()
                    if self._thread is threading.current_thread():
                        self._thread = None  # the next deadline starts another
                    return
                now = time.monotonic()
                expired = []
                while deadlines and (deadlines[0][0] <= now or deadlines[0][2].settled):
                    expired.append(heapq.heappop(deadlines)[2])
                if expired:
                    self._lock.release()
                    try:
                        for batch in expired:
                            self._expire(batch)
                    finally:
                        self._lock.acquire()
                    continue
                self._cond.wait(min(deadlines[0][0] - now, _WAIT_SLICE))

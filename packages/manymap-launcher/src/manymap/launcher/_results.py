"""The result handles every call may get: a blocked call's :class:`CallResult`
and the imap iterator, :class:`ResultIterator` (:func:`wait_for` waits for a
handle, stopping its work on Ctrl-C).

The handles that are futures, ``AsyncResult`` and ``MapResult``, are in
``_futures.py``: ``concurrent.futures`` (which imports ``logging``) is loaded by
the first call that returns one, not by a plain ``map``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from manymap.launcher import _finalizer

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, Generic, TypeVar

    from manymap.launcher._futures import AsyncResult
    from manymap.launcher._job import Job
    from manymap.launcher._lazy_job import LazyJob

    T = TypeVar("T")
else:
    from manymap.launcher._generic import Generic

    T = "T"  # (the generic bases below need no TypeVar at run time)

__all__ = ["CallResult", "ResultIterator", "wait_for"]


class CallResult(Generic[T]):
    """The result of a call its caller blocks on (``map``, ``pipe``, ``apply``...).

    Only that caller ever waits for it (:func:`wait_for`, in the pool's
    ``_wait``), so a lock the job releases when it settles the call is all it
    needs: not the condition, waiters and callbacks of an :class:`AsyncResult`,
    which anyone may hold, a few microseconds per call.
    """

    __slots__ = ("_job", "_outcome", "_ready")

    def __init__(self) -> None:
        self._job: Job | None = None
        self._outcome: tuple[Any, BaseException | None] | None = None
        self._ready = threading.Lock()
        self._ready.acquire()  # released once the outcome is in

    def get(self) -> T:
        """The result, waiting for it (Ctrl-C interrupts the wait); the task's error, raised."""
        if self._outcome is None:
            with self._ready:  # acquired once released: the outcome is in
                pass
        assert self._outcome is not None
        value, error = self._outcome
        if error is not None:
            raise error
        result: T = value
        return result

    def _deliver(self, value: Any = None, error: BaseException | None = None) -> None:
        """Settle the call, once (a cancellation may race with the result: the first wins)."""
        with _settling:
            if self._outcome is not None:
                return
            self._outcome = (value, error)
        self._ready.release()

    def _cancel(self) -> None:
        """Cancel the call: its caller gets ``concurrent.futures.CancelledError``."""
        from concurrent.futures import CancelledError  # (import time: see the module's text)

        self._deliver(error=CancelledError())


_settling = threading.Lock()  # a CallResult's outcome is set once (held for an instant)


def wait_for(handle: AsyncResult[T] | CallResult[T]) -> T:
    """Wait for a handle; on Ctrl-C cancel its work and stop its running tasks."""
    try:
        return handle.get()
    except KeyboardInterrupt:
        job = handle._job
        if job is not None:
            job.interrupt()
        raise


class ResultIterator(Iterator[T]):
    """The lazy results of ``imap``/``ismap`` (in order) or ``uimap`` (as done).

    The input is read as the results are consumed, keeping a bounded number
    of tasks in flight. ``close()`` (or dropping the iterator) cancels the
    tasks not yet run.
    """

    def __init__(self, job: LazyJob, *, ordered: bool) -> None:
        self._job = job
        self._ordered = ordered
        _finalizer.ensure_started()

    def __iter__(self) -> ResultIterator[T]:
        return self

    def __next__(self) -> T:
        try:
            value: T = self._job.next_result(ordered=self._ordered)
        except KeyboardInterrupt:
            self._job.interrupt()
            raise
        return value

    def close(self) -> None:
        """Stop: tasks not yet started are dropped."""
        self._job.cancel()

    def __del__(self) -> None:
        # Not job.cancel() here: the collector may run this on a thread that holds
        # the pool's lock, which cancel() takes (see _finalizer.py).
        job = getattr(self, "_job", None)
        if job is None or job.complete:
            return
        _finalizer.call_soon(job.cancel)

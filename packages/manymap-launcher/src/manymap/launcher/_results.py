"""Result handles: :class:`AsyncResult`, :class:`MapResult` and the imap iterator.

An :class:`AsyncResult` *is* a :class:`concurrent.futures.Future`, so it
works wherever a future does (``concurrent.futures.wait``, ``as_completed``,
``asyncio.wrap_future``) and adds the stdlib/pathos handle methods
(``get``, ``wait``, ``ready``, ``successful``) and ``await``. The pool's
bookkeeping (``_job.py``) settles it; ``cancel()`` reaches back into that
bookkeeping so that tasks not yet started are dropped.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Generator, Iterator

from manymap.launcher import _deferred, _finalizer
from manymap.launcher._errors import ResultTimeoutError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, Generic, TypeVar

    from manymap.launcher._job import Job
    from manymap.launcher._lazy_job import LazyJob

    T = TypeVar("T")
else:
    from manymap.launcher._generic import Generic

    T = "T"  # (the generic bases below need no TypeVar at run time)

__all__ = ["AsyncResult", "CallResult", "MapResult", "ResultIterator", "wait_for"]


class AsyncResult(concurrent.futures.Future[T]):
    """The pending result of ``apipe``/``submit`` (and the base of :class:`MapResult`).

    It is a :class:`concurrent.futures.Future`; ``as_future()`` returns it
    unchanged and :meth:`from_future` wraps any other future.
    """

    def __init__(self, job: Job | None = None, source: concurrent.futures.Future[Any] | None = None) -> None:
        super().__init__()
        self._job = job
        self._source = source

    def get(self, timeout: float | None = None) -> T:
        """The result, waiting at most ``timeout`` seconds (``None``: until ready).

        Raises:
            ResultTimeoutError: not ready in time (the work goes on).
            concurrent.futures.CancelledError: the result was cancelled.
            BaseException: the task's own exception, re-raised.
        """
        try:
            return self.result(timeout)
        except concurrent.futures.TimeoutError:
            if self.done():  # pragma: no cover - a task raised TimeoutError itself
                raise
            raise ResultTimeoutError(f"result not ready within {timeout} s") from None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until ready, at most ``timeout`` seconds. Returns ``ready()``."""
        concurrent.futures.wait([self], timeout)
        return self.done()

    def ready(self) -> bool:
        """Whether the result (or its error, or its cancellation) is in."""
        return self.done()

    def successful(self) -> bool:
        """Whether the work completed without error.

        Raises:
            ValueError: the result is not ready yet.
        """
        if not self.done():
            raise ValueError(f"{self!r} is not ready")
        return not self.cancelled() and self.exception(0) is None

    def cancel(self) -> bool:
        """Cancel the work: tasks not yet started are dropped.

        A single task that already runs cannot be cancelled (as with
        :class:`concurrent.futures.Future`); a map can, and the results of its
        running tasks are then discarded.

        Returns:
            Whether the handle is now cancelled.
        """
        if self._job is not None:
            return self._job.cancel()
        if self._source is not None:
            return self._source.cancel()  # its done-callback cancels this handle
        return cancel_future(self)

    def as_future(self) -> concurrent.futures.Future[T]:
        """This handle as a :class:`concurrent.futures.Future` (itself)."""
        return self

    @classmethod
    def from_future(cls, future: concurrent.futures.Future[T]) -> AsyncResult[T]:
        """A handle that follows ``future``; cancelling the handle cancels it."""
        handle: AsyncResult[T] = cls(source=future)

        def copy_outcome(done: concurrent.futures.Future[T]) -> None:
            if done.cancelled():
                cancel_future(handle)
            elif (error := done.exception()) is not None:
                _settle(handle.set_exception, error)
            else:
                _settle(handle.set_result, done.result())

        future.add_done_callback(copy_outcome)
        return handle

    def __await__(self) -> Generator[Any, None, T]:
        return _deferred.wrap_future(self).__await__()

    def _deliver(self, value: Any = None, error: BaseException | None = None) -> None:
        """Settle the handle (called by the bookkeeping, outside its lock)."""
        if error is not None:
            _settle(self.set_exception, error)
        else:
            _settle(self.set_result, value)

    def _cancel(self) -> None:
        """Cancel the handle (its job was cancelled or aborted)."""
        cancel_future(self)


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
        self._deliver(error=concurrent.futures.CancelledError())


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


def cancel_future(future: concurrent.futures.Future[Any]) -> bool:
    """Cancel a pending future and wake ``concurrent.futures.wait`` on it.

    ``Future.cancel`` alone wakes ``result()`` callers but not ``wait()``
    waiters; the executor normally does that with
    ``set_running_or_notify_cancel``, and so does this.
    """
    if future.cancelled():
        return True
    if not concurrent.futures.Future.cancel(future):
        return False
    future.set_running_or_notify_cancel()
    return True


def _settle(setter: Callable[[Any], None], outcome: Any) -> None:
    # A handle cancelled a moment earlier keeps its cancellation.
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        setter(outcome)


class MapResult(AsyncResult[list[T]]):
    """The pending result of ``amap``/``asmap``: the list of all results.

    If a task fails, the map stops handing out its remaining tasks, waits for
    the running ones and raises the failure of the lowest task index, with a
    note that counts the other failures and the tasks that never ran.
    """


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

"""Result handles that are futures: :class:`AsyncResult` and :class:`MapResult`.

An :class:`AsyncResult` *is* a :class:`concurrent.futures.Future`, so it
works wherever a future does (``concurrent.futures.wait``, ``as_completed``,
``asyncio.wrap_future``) and adds the stdlib/pathos handle methods
(``get``, ``wait``, ``ready``, ``successful``) and ``await``. The pool's
bookkeeping (``_job.py``) settles it; ``cancel()`` reaches back into that
bookkeeping so that tasks not yet started are dropped.

Loaded by the first call that returns one (``apipe``, ``submit``, ``amap``...)
or names one: ``concurrent.futures`` imports ``logging``, which a plain
``map`` or ``pipe`` never needs (a few milliseconds of every import).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import Callable, Generator

from manymap.launcher import _deferred
from manymap.launcher._errors import ResultTimeoutError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from manymap.launcher._job import Job

    T = TypeVar("T")
else:
    T = "T"  # (the generic bases below need no TypeVar at run time)

__all__ = ["AsyncResult", "MapResult", "cancel_future"]


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


class MapResult(AsyncResult[list[T]]):
    """The pending result of ``amap``/``asmap``: the list of all results.

    If a task fails, the map stops handing out its remaining tasks, waits for
    the running ones and raises the failure of the lowest task index, with a
    note that counts the other failures and the tasks that never ran.
    """


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


# Public names: they show the package they are imported from (as show_public_paths does).
AsyncResult.__module__ = MapResult.__module__ = "manymap.launcher"

"""``EagerJob``: a call whose whole input is known at once (``amap``, ``apipe``, ...).

The pool cuts the input into batches in the caller's thread
(:meth:`~manymap.launcher.lowlevel.Job.cut`), then, under the lock, :meth:`EagerJob.load`
queues them all, and :meth:`EagerJob.launch` (outside the lock) announces
them, wakes the workers and settles an empty call at once. (A blocked
caller's call of one batch may skip the queue: :meth:`EagerJob.load_running`.)
Values land in a list by task index; when the job is complete its one result
handle gets the list (the value, for a single task) or the failure of the
lowest task index.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from manymap.launcher._job import Job

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.launcher._batch import Batch
    from manymap.launcher._events import TaskEvent
    from manymap.launcher._futures import AsyncResult
    from manymap.launcher._results import CallResult
    from manymap.launcher._scheduler import Scheduler

__all__ = ["EagerJob"]


class EagerJob(Job):
    """A call with its whole input queued at once and one result handle."""

    _announced: Sequence[TaskEvent] = ()  # SUBMITTED events of load(), emitted by launch()
    _done_at_load = False
    _count = 0  # tasks; the list of their values is made with the first ones (_store)

    def __init__(
        self,
        scheduler: Scheduler,
        function: Callable[..., Any],
        *,
        handle: AsyncResult[Any] | CallResult[Any],
        single: bool,
        **common: Any,
    ) -> None:
        """``handle`` gets the result; ``common``: the arguments of :class:`Job`."""
        super().__init__(scheduler, function, **common)
        self.single = single
        self._handle: AsyncResult[Any] | CallResult[Any] | None = handle
        self._values: list[Any] = []

    def load(self, batches: list[Batch], count: int) -> None:
        """Queue the whole input, ``count`` tasks in ``batches`` (under the lock)."""
        self._count = count
        self._exhausted = True
        self._announced = self._queue_batches(batches, count)
        self._done_at_load = self._check_complete()

    def load_running(self, batch: Batch) -> None:
        """Load a call of one ``batch`` that its pool sends to a worker at once: in
        flight from now, never queued (under the lock; for a job without a
        listener, which has nothing to announce)."""
        count = len(batch.items)
        self._count = count
        self._exhausted = True
        self._fed = self._inflight = count

    def launch(self) -> None:
        """After :meth:`load` (outside the lock): emit its events, wake the
        workers, and settle the handle if there was nothing to run."""
        events, self._announced = self._announced, ()
        self._announce(events, self._done_at_load)

    def _store(self, indices: Sequence[int], values: Sequence[Any]) -> None:
        stored = self._values
        if len(stored) != self._count:
            # Made here, with the first values, not at load: a large map's list costs its
            # memory's first touch (0.7 ms for 100,000 tasks here), which the workers then
            # overlap instead of waiting for it before their first batch.
            stored = self._values = [None] * self._count
        if isinstance(indices, range) and indices.step == 1:
            stored[indices.start : indices.stop] = values
        else:
            for index, value in zip(indices, values, strict=True):
                stored[index] = value

    def _cancel_handle(self) -> None:
        if self._handle is not None:
            self._handle._cancel()

    def _settle(self) -> None:
        handle, self._handle = self._handle, None  # no cycle left: a finished pool can be freed at once
        if handle is None or self._cancelled:
            return
        if self._stop_reason is not None:
            handle._deliver(error=self._primary_error())
        elif self.single:
            handle._deliver(self._values[0])
        else:
            handle._deliver(self._values)

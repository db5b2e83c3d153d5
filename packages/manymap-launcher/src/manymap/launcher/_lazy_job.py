"""``LazyJob``: a call that reads its input as its results are consumed (``imap``, ``uimap``).

How data flows: the consumer's thread drives everything. Each
:meth:`LazyJob.next_result` first tops up the window (:meth:`LazyJob.feed`:
reads input items, cuts and encodes them, queues their batches through the
scheduler), then takes the next value: the next task index (``imap``) or
the next task completed (``uimap``), waiting on the job's condition when
none is ready. At most ``window`` tasks are read ahead of the consumer, so
an endless generator is fine. Values wait in a dict by task index until
taken; a task's failure is raised when its turn comes and ends the iteration.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from manymap.launcher._errors import PoolClosedError, add_note
from manymap.launcher._job import Job

if TYPE_CHECKING:
    from manymap.launcher._batch import Batch
    from manymap.launcher._events import TaskEvent
    from manymap.launcher._scheduler import Scheduler

__all__ = ["LazyJob"]

_WAIT_SLICE = 1.0  # seconds; every wait re-checks its condition at least this often


class LazyJob(Job):
    """A call whose input is read lazily, at most ``window`` tasks ahead of its consumer."""

    def __init__(
        self,
        scheduler: Scheduler,
        function: Callable[..., Any],
        *,
        source: Iterator[Any],
        window: int,
        **common: Any,
    ) -> None:
        """``source`` gives one item per task; ``common``: the arguments of :class:`Job`."""
        super().__init__(scheduler, function, **common)
        self._input = source
        self._window = window
        self._feed_lock = threading.Lock()
        self._values: dict[int, Any] = {}
        self._completed: deque[int] = deque()  # completion order, for uimap
        self._yielded = 0
        self._input_closed: PoolClosedError | None = None
        self._iteration_over = False

    def feed(self) -> None:
        """Top up the window of a lazy job from its input (consumer's thread)."""
        if self._exhausted:
            return
        with self._feed_lock:
            with self._cond:
                if self._exhausted or self.stopped():
                    return
                want = self._window - (self._fed - self._yielded)
            if want < self.chunksize:
                return
            items: list[Any] = []
            batches: list[Batch] = []
            failure: BaseException | None = None
            try:
                items.extend(itertools.islice(self._input, want))
            except BaseException as error:  # the caller's input raised: stop and report it
                failure = error
                add_note(failure, f"manymap: reading input item {self._fed + len(items)} failed")
            try:
                batches = self.cut(items, self._fed)
            except BaseException as error:  # an item cannot be shipped
                failure, batches = error, []
            with self._cond:
                if failure is None and len(items) < want:
                    self._exhausted = True
                if self.stopped():  # cancelled while the input was read
                    return
                if not self.scheduler.accepting():
                    self._stop(PoolClosedError(f"the pool was closed before task {self._fed} was dispatched"))
                    self._cond.notify_all()
                    events: list[TaskEvent] = []
                else:
                    events = self._queue_batches(batches, sum(len(batch) for batch in batches))
                    if failure is not None:
                        self._exhausted = True
                        self._stop(failure)
                    self._cond.notify_all()
                done = self._check_complete()
        self._announce(events, done)

    def _store(self, indices: Sequence[int], values: Sequence[Any]) -> None:
        stored = self._values
        for index, value in zip(indices, values, strict=True):
            stored[index] = value
        self._completed.extend(indices)

    def _failed(self, index: int) -> None:
        self._completed.append(index)

    def close_input(self) -> None:
        """The pool was closed: read no more input; tasks already read still run."""
        with self._feed_lock, self._cond:
            if self._exhausted:
                return
            self._exhausted = True
            self._input_closed = PoolClosedError(
                f"the pool was closed before task {self._fed} was read from the input"
            )
            self._cond.notify_all()
            done = self._check_complete()
        if done:
            self._deliver()

    def next_result(self, *, ordered: bool) -> Any:
        """The next result of a lazy job, in input order or as completed."""
        while True:
            self.feed()
            with self._cond:
                if self._iteration_over:
                    raise StopIteration
                found, value = self._pop_ready(ordered)
                if found:
                    return value
                if (
                    not self._inflight
                    and not self._ready
                    and (self._exhausted or self._stop_reason is not None)
                ):
                    self._iteration_over = True
                    reason = self._stop_reason
                    if reason is not None and not (self._cancelled and not self._aborted):
                        raise reason
                    if self._input_closed is not None and reason is None:
                        raise self._input_closed
                    raise StopIteration
                room = self._window - (self._fed - self._yielded)
                if room >= self.chunksize and not self._exhausted and self._stop_reason is None:
                    continue  # room in the window: read more input first
                self._cond.wait(_WAIT_SLICE)

    def _pop_ready(self, ordered: bool) -> tuple[bool, Any]:
        values = self._values
        if ordered:
            index = self._yielded
            if index not in values and index not in self._errors:
                return False, None
        else:
            if not self._completed:
                return False, None
            index = self._completed.popleft()
        self._yielded += 1
        error = self._errors.pop(index, None)
        value = values.pop(index, None)
        if error is not None:
            self._iteration_over = True
            raise error
        return True, value

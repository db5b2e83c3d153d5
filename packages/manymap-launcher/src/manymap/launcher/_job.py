"""The bookkeeping of one map call: batches out, outcomes in, one result.

How data flows:

1. The pool turns a call (``amap``, ``imap``, ``apipe``, ...) into a
   :class:`Job`. An eager job (``amap``) cuts its whole input into
   :class:`Batch` es at once; a lazy job (``imap``/``uimap``) reads its input
   in the consumer's thread as results are taken, keeping a bounded window
   of tasks in flight.
2. Ready batches wait in the job; the pool's queue lists the jobs that have
   some. A concrete pool's scheduling core takes batches from the pool
   (``_take_batch`` / ``_wait_batch``), runs them on its workers and reports
   back through the batch: :meth:`Batch.start`, then :meth:`Batch.finish`
   with the values and failures, or :meth:`Batch.lose` if the worker died.
3. The job records outcomes, emits task events, applies ``retries``,
   poison and fail-fast, and when nothing is left to run it settles the
   result handle (eager jobs) or ends the iterator (lazy jobs).

All job state is guarded by the pool's lock. Nothing calls user code (task
events, done callbacks, the input iterator) while holding it.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from manymap.launcher._errors import (
    PoolClosedError,
    TaskTimeoutError,
    WorkerLostError,
    add_note,
    annotate_task_error,
)
from manymap.launcher._events import EventKind, ProgressListener, TaskEvent
from manymap.launcher._results import cancel_future

if TYPE_CHECKING:
    from manymap.launcher._options import TaskOptions
    from manymap.launcher._pool import AbstractWorkerPool
    from manymap.launcher._results import AsyncResult
    from manymap.launcher._task import TaskFailure

__all__ = ["Batch", "Job"]

_job_ids = itertools.count(1)
_WAIT_SLICE = 1.0  # seconds; every wait re-checks its condition at least this often


class Batch:
    """Tasks of one job handed to one worker at once.

    A pool's scheduling core runs ``batch.function`` over ``batch.items``
    (see :func:`manymap.launcher.run_calls`) and reports exactly one outcome:
    :meth:`finish` or :meth:`lose`. Reports for a batch that was already
    settled (say, timed out a moment before) are ignored.
    """

    __slots__ = ("attempt", "host", "indices", "items", "job", "payload", "settled", "started_at", "worker")

    def __init__(self, job: Job, indices: Sequence[int], items: list[Any], attempt: int = 0) -> None:
        self.job = job
        self.indices = indices
        self.items = items
        self.attempt = attempt
        self.payload: Any = None  # the pool's encoding of the items, see AbstractWorkerPool._encode
        self.worker: str | None = None
        self.host: str | None = None
        self.started_at: float | None = None
        self.settled = False

    @property
    def function(self) -> Callable[..., Any]:
        """The task function."""
        return self.job.function

    @property
    def star(self) -> bool:
        """Whether each item is a tuple of positional arguments."""
        return self.job.star

    @property
    def kwargs(self) -> Mapping[str, Any]:
        """Keyword arguments of every call (``pipe``/``submit`` only)."""
        return self.job.kwargs

    @property
    def timeout(self) -> float | None:
        """The per-task time limit, for cores that enforce it themselves."""
        return self.job.options.timeout

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        first, last = self.indices[0], self.indices[-1]
        span = f"task {first}" if len(self.indices) == 1 else f"tasks {first}..{last}"
        return f"<Batch job={self.job.id} {span} attempt={self.attempt}>"

    def start(self, worker: str, host: str | None = None) -> None:
        """Report that ``worker`` (on ``host``) has begun this batch."""
        self.job._start(self, worker, host)

    def finish(
        self,
        values: Sequence[Any],
        failures: Mapping[int, TaskFailure] | None = None,
        *,
        duration: float | None = None,
    ) -> None:
        """Report the outcome of every task of the batch.

        Args:
            values: one value per item, in order (anything where a task failed).
            failures: offsets of the tasks that raised, with their failure.
            duration: seconds the worker spent on the batch, if it measured it.
        """
        self.job._finish(self, values, failures or {}, duration)

    def lose(self, reason: str, *, exitcode: int | None = None, culprit: int | None = None) -> None:
        """Report that the worker running this batch died or was lost.

        Args:
            reason: what happened, e.g. ``"killed by signal SIGKILL"``.
            exitcode: the worker's exit code, negative for a signal.
            culprit: offset of the task that was running, when the core
                knows it: that task is charged with the loss (retried or
                failed), the others are re-queued as they were. Without it,
                a batch of one task is charged; a larger batch is re-queued
                task by task, uncharged, so that the next loss names its task.
        """
        self.job._lose(self, reason, exitcode, culprit)


class Job:
    """The state of one call: its tasks, their outcomes, its result handle."""

    def __init__(
        self,
        pool: AbstractWorkerPool,
        function: Callable[..., Any],
        *,
        star: bool,
        kwargs: Mapping[str, Any],
        options: TaskOptions,
        chunksize: int,
        listener: ProgressListener | None,
        handle: AsyncResult[Any] | None = None,
        single: bool = False,
    ) -> None:
        self.id = next(_job_ids)
        self.pool = pool
        self.function = function
        self.star = star
        self.kwargs = kwargs
        self.options = options
        self.chunksize = chunksize
        self.single = single
        self.payload: Any = None  # the pool's encoding of the function, see AbstractWorkerPool._encode
        self._listener = listener
        self._handle = handle
        self._cond = threading.Condition(pool._lock)
        self._ready: deque[Batch] = deque()
        self.queued = False  # listed in the pool's queue of jobs with ready batches
        # input
        self._input: Iterator[Any] | None = None
        self._feed_lock = threading.Lock()
        self._window = 0
        self._fed = 0
        self._exhausted = False
        # outcomes
        self._values: list[Any] | dict[int, Any] = {}
        self._errors: dict[int, BaseException] = {}
        self._completed: deque[int] = deque()  # completion order, for uimap
        self._deaths: dict[int, int] = {}
        self._inflight = 0
        self._settled = 0
        self._dropped = 0  # tasks settled without running: fail-fast or cancellation
        self._yielded = 0
        self._stop_reason: BaseException | None = None
        self._cancelled = False
        self._aborted = False
        self._input_closed: PoolClosedError | None = None
        self._complete = False
        self._iteration_over = False

    # ------------------------------------------------------------------ input

    def cut(self, items: list[Any], start: int) -> list[Batch]:
        """Cut ``items`` (tasks ``start``...) into batches, encoded by the pool.

        Runs in the caller's thread, outside the lock, so that what cannot
        be serialized is refused before anything is queued.
        """
        size = self.chunksize
        batches = [
            Batch(self, range(start + offset, start + offset + len(chunk)), chunk)
            for offset in range(0, len(items), size)
            for chunk in (items[offset : offset + size],)
        ]
        self.pool._encode(self, batches)
        return batches

    def load(self, batches: list[Batch], count: int) -> list[TaskEvent]:
        """Queue the whole input of an eager job (under the lock)."""
        self._values = [None] * count
        self._exhausted = True
        return self._queue_batches(batches, count)

    def attach(self, source: Iterator[Any], window: int) -> None:
        """Read ``source`` lazily, at most ``window`` tasks ahead of the consumer."""
        self._input = source
        self._window = window

    def feed(self) -> None:
        """Top up the window of a lazy job from its input (consumer's thread)."""
        if self._input is None or self._exhausted:
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
                if not self.pool._accepting():
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
        self._emit(events)
        self.pool._wake()
        if done:
            self._deliver()

    def _queue_batches(self, batches: list[Batch], count: int) -> list[TaskEvent]:
        """Make ``batches`` (``count`` tasks) ready (under the lock)."""
        start = self._fed
        self._ready.extend(batches)
        self._fed += count
        if self._ready:
            self.pool._enqueue(self)
        if self._listener is None:
            return []
        return [TaskEvent(EventKind.SUBMITTED, index, self.id) for index in range(start, self._fed)]

    # ---------------------------------------------------------- scheduling

    def take(self) -> Batch | None:
        """The next ready batch, now in flight (under the lock)."""
        if not self._ready:
            return None
        batch = self._ready.popleft()
        self._inflight += len(batch)
        return batch

    @property
    def has_ready(self) -> bool:
        """Whether batches wait for a worker."""
        return bool(self._ready)

    def stopped(self) -> bool:
        """Whether the job hands out no more tasks: a failure, a cancellation."""
        return self._stop_reason is not None

    @property
    def complete(self) -> bool:
        """Whether nothing of this job runs or will run any more."""
        return self._complete

    def _start(self, batch: Batch, worker: str, host: str | None) -> None:
        with self._cond:
            if batch.settled:
                return
            batch.worker, batch.host = worker, host
            batch.started_at = time.monotonic()
            timeout = self.options.timeout
            if timeout is not None:
                self.pool._watch(batch, batch.started_at + timeout)
        if self._listener is not None:
            self._emit(
                [TaskEvent(EventKind.STARTED, i, self.id, batch.attempt, worker) for i in batch.indices]
            )

    def _finish(
        self,
        batch: Batch,
        values: Sequence[Any],
        failures: Mapping[int, TaskFailure],
        duration: float | None,
    ) -> None:
        if len(values) != len(batch):
            raise ValueError(f"{batch!r} has {len(batch)} tasks but {len(values)} values were reported")
        now = time.monotonic()
        if duration is None:
            duration = now - batch.started_at if batch.started_at is not None else 0.0
        worker = batch.worker or "?"
        errors = {
            batch.indices[offset]: annotate_task_error(
                failure.error, index=batch.indices[offset], worker=worker, traceback_text=failure.traceback
            )
            for offset, failure in failures.items()
        }
        with self._cond:
            if batch.settled or self._complete:
                return
            batch.settled = True
            self._inflight -= len(batch)
            self._settled += len(batch)
            self.pool._stats.record(worker, batch.host, len(batch), len(errors), duration)
            self.pool._stats.record_cost(self.function, len(batch), duration)
            indices = batch.indices
            if not self._cancelled:
                self._store(indices, values)
                for index, error in errors.items():
                    self._errors[index] = error
                    if self._stop_reason is None:
                        self._stop(error)
            self._cond.notify_all()
            done = self._check_complete()
        if self._listener is not None:
            each = duration / len(batch)
            self._emit(
                [
                    TaskEvent(
                        EventKind.FAILED if index in errors else EventKind.FINISHED,
                        index,
                        self.id,
                        batch.attempt,
                        worker,
                        each,
                        errors.get(index),
                    )
                    for index in indices
                ]
            )
        if done:
            self._deliver()

    def _store(self, indices: Sequence[int], values: Sequence[Any]) -> None:
        stored = self._values
        if isinstance(stored, list) and isinstance(indices, range) and indices.step == 1:
            stored[indices.start : indices.stop] = values
        else:
            for index, value in zip(indices, values, strict=True):
                stored[index] = value
        if self._input is not None:
            self._completed.extend(indices)

    def _lose(self, batch: Batch, reason: str, exitcode: int | None, culprit: int | None) -> None:
        worker = batch.worker or "?"

        def lost(index: int, deaths: int) -> BaseException:
            text = f"task {index}: worker {worker} was lost ({reason})"
            if deaths >= self.pool._poison_limit:
                text += f"; it has now killed {deaths} workers and is not retried again"
            return WorkerLostError(text, index=index, worker=worker, exitcode=exitcode)

        self._settle_lost(batch, culprit, lost, counts_as_death=True)

    def time_out(self, batch: Batch) -> bool:
        """Fail (or retry) a batch whose task ran past its timeout. Returns whether it did."""
        timeout = self.options.timeout
        worker = batch.worker or "?"

        def expired(index: int, deaths: int) -> BaseException:
            return TaskTimeoutError(
                f"task {index} ran over its timeout of {timeout:g} s on worker {worker}",
                index=index,
                timeout=timeout,
            )

        return self._settle_lost(batch, 0 if len(batch) == 1 else None, expired, counts_as_death=False)

    def _settle_lost(
        self,
        batch: Batch,
        culprit: int | None,
        make_error: Callable[[int, int], BaseException],
        *,
        counts_as_death: bool,
    ) -> bool:
        events: list[TaskEvent] = []
        with self._cond:
            if batch.settled or self._complete:
                return False
            batch.settled = True
            self._inflight -= len(batch)
            if culprit is None and len(batch) == 1:
                culprit = 0
            # Unknown culprit: nobody is charged; the tasks run again one by one,
            # which tells the next time. Known: the others go back as they were.
            charged = () if culprit is None else (culprit,)
            innocent = [offset for offset in range(len(batch)) if offset not in charged]
            if innocent and self._stop_reason is None:
                groups = [innocent] if culprit is not None else [[offset] for offset in innocent]
                for group in reversed(groups):
                    self._requeue(
                        Batch(
                            self,
                            [batch.indices[o] for o in group],
                            [batch.items[o] for o in group],
                            batch.attempt,
                        )
                    )
            else:
                self._settled += len(innocent)
                self._dropped += len(innocent)
            for offset in charged:
                index = batch.indices[offset]
                deaths = self._deaths.get(index, 0) + counts_as_death
                if counts_as_death:
                    self._deaths[index] = deaths
                error = make_error(index, deaths)
                retry = (
                    self._stop_reason is None
                    and batch.attempt < self.options.retries
                    and deaths < self.pool._poison_limit
                )
                if retry:
                    self._requeue(Batch(self, [index], [batch.items[offset]], batch.attempt + 1))
                    kind = EventKind.RETRIED
                else:
                    self._settled += 1
                    kind = EventKind.FAILED
                    if not self._cancelled:
                        self._errors[index] = error
                        if self._stop_reason is None:
                            self._stop(error)
                        if self._input is not None:
                            self._completed.append(index)
                if self._listener is not None:
                    events.append(TaskEvent(kind, index, self.id, batch.attempt, batch.worker, None, error))
            self.pool._stats.record_loss(batch.worker or "?", batch.host, len(charged), counts_as_death)
            self._cond.notify_all()
            done = self._check_complete()
        self._emit(events)
        self.pool._wake()
        if done:
            self._deliver()
        return True

    def _requeue(self, batch: Batch) -> None:
        self._ready.appendleft(batch)
        self.pool._enqueue(self)

    # ------------------------------------------------------------- stopping

    def _stop(self, reason: BaseException) -> None:
        """Stop handing out tasks (under the lock): fail-fast or cancellation."""
        self._stop_reason = reason
        dropped = sum(len(batch) for batch in self._ready)
        self._settled += dropped
        self._dropped += dropped
        self._ready.clear()

    def cancel(self) -> bool:
        """Drop every task not yet started and cancel the handle.

        Returns False if the job is complete, or is a single task that
        already runs; the results of running tasks of a map are discarded.
        """
        with self._cond:
            if self._complete or self._cancelled:
                return self._cancelled
            if self.single and self._inflight:
                return False
            self._cancelled = True
            if self._stop_reason is None:
                self._stop(_cancelled_error("the map was cancelled"))
            self._cond.notify_all()
            done = self._check_complete()
        self._cancel_handle()
        if done:
            self._deliver()
        return True

    def abort(self) -> None:
        """The pool was terminated: cancel everything, running tasks included."""
        with self._cond:
            if self._complete:
                return
            self._cancelled = True
            self._aborted = True
            if self._stop_reason is None:
                self._stop(_cancelled_error(f"the pool was terminated before job {self.id} finished"))
            self._inflight = 0
            self._cond.notify_all()
            done = self._check_complete()
        self._cancel_handle()
        if done:
            self._deliver()

    def fail(self, reason: BaseException) -> None:
        """The pool broke: end the job with ``reason``, running tasks included."""
        with self._cond:
            if self._complete:
                return
            if self._stop_reason is None:
                self._stop(reason)
            self._inflight = 0
            self._cond.notify_all()
            done = self._check_complete()
        if done:
            self._deliver()

    def close_input(self) -> None:
        """The pool was closed: read no more input; tasks already read still run."""
        with self._feed_lock, self._cond:
            if self._input is None or self._exhausted:
                return
            self._exhausted = True
            self._input_closed = PoolClosedError(
                f"the pool was closed before task {self._fed} was read from the input"
            )
            self._cond.notify_all()
            done = self._check_complete()
        if done:
            self._deliver()

    def _cancel_handle(self) -> None:
        if self._handle is not None:
            cancel_future(self._handle)

    def _check_complete(self) -> bool:
        """Mark the job complete if nothing runs or will run (under the lock)."""
        if self._complete or self._inflight:
            return False
        over = self._stop_reason is not None or (
            self._exhausted and not self._ready and self._settled >= self._fed
        )
        if not over:
            return False
        self._complete = True
        self.pool._job_complete(self)
        return True

    def _deliver(self) -> None:
        """Settle the handle and close the progress bar (outside the lock)."""
        listener = self._listener
        close = getattr(listener, "close", None)
        if close is not None:
            try:
                close()
            except Exception as error:  # a broken progress consumer must not break the pool
                self.pool._listener_failed(listener, error)
        handle, self._handle = self._handle, None  # no cycle: a dropped handle frees the job at once
        if handle is None or self._cancelled:
            return
        if self._stop_reason is not None:
            handle._deliver(error=self._primary_error())
        elif self.single:
            handle._deliver(self._values[0])
        else:
            handle._deliver(self._values)

    def _primary_error(self) -> BaseException:
        if not self._errors:
            assert self._stop_reason is not None
            return self._stop_reason
        first = min(self._errors)
        error = self._errors[first]
        others = sorted(self._errors)[1:]
        not_run = self._dropped
        parts = []
        if others:
            shown = ", ".join(map(str, others[:10])) + (", ..." if len(others) > 10 else "")
            parts.append(f"{len(others)} other task{'s' if len(others) > 1 else ''} failed ({shown})")
        if not_run:
            parts.append(f"{not_run} task{'s' if not_run > 1 else ''} did not run")
        if parts and not self.single:
            add_note(error, "manymap: " + "; ".join(parts))
        return error

    # ---------------------------------------------------------- iteration

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
        assert isinstance(values, dict)
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

    # -------------------------------------------------------------- events

    def _emit(self, events: list[TaskEvent]) -> None:
        listener = self._listener
        if listener is None:
            return
        for event in events:
            try:
                listener(event)
            except Exception as error:  # a broken progress consumer must not break the pool
                self._listener = None
                self.pool._listener_failed(listener, error)
                return


def _cancelled_error(text: str) -> BaseException:
    return concurrent.futures.CancelledError(text)

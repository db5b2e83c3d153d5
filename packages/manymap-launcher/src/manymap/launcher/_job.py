"""``Job``: the bookkeeping of one call, batches out, outcomes in, one result.

How data flows:

1. The pool turns a call into a job: an :class:`~manymap.launcher._eager_job.EagerJob`
   (``amap``, ``apipe``, ...: the whole input cut into
   :class:`~manymap.launcher.lowlevel.Batch` es at once, one result handle) or a
   :class:`~manymap.launcher._lazy_job.LazyJob` (``imap``/``uimap``: the input
   read in the consumer's thread as results are taken, a bounded window of
   tasks in flight). This module is what both share.
2. The job talks to its pool only through a
   :class:`~manymap.launcher._scheduler.Scheduler`: ready batches wait in the
   job, and the scheduler's queue lists the jobs that have some. The pool's
   scheduling core takes batches from there, runs them and reports back
   through the batch: :meth:`Batch.start`, then :meth:`Batch.finish` or
   :meth:`Batch.lose`.
3. The job records outcomes, emits task events, applies ``retries``,
   poison and fail-fast; when nothing is left to run it tells the scheduler
   (``complete``) and settles its result (the subclass's :meth:`Job._settle`).

All job state is guarded by the scheduler's lock. Nothing calls user code
(task events, done callbacks, the input iterator) while holding it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from manymap.launcher._batch import Batch
from manymap.launcher._batching import batch_sizes
from manymap.launcher._errors import TaskTimeoutError, WorkerLostError, add_note, annotate_task_error
from manymap.launcher._events import EventKind, ProgressListener, TaskEvent
from manymap.launcher._warnings import warn_user

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.launcher._options import TaskOptions
    from manymap.launcher._scheduler import Scheduler
    from manymap.launcher._task import TaskFailure

__all__ = ["Job"]

_job_ids = itertools.count(1)
_EMIT_WAIT = 5.0  # seconds the bar's close waits for another thread still reporting tasks


class Job:
    """The state of one call: its tasks and their outcomes (see the module's text).

    Subclasses say how the input arrives and where the results go.
    """

    #: whether the job is one task whose running cannot be cancelled (``apipe``/``submit``)
    single = False

    # The state every job starts with, as class attributes: an instance sets only what
    # differs (most are set per job only once something happens; a ``pipe`` makes a
    # job per call, and each attribute set in ``__init__`` costs it).
    payload: Any = None  # the pool's encoding of the function, see AbstractWorkerPool._encode
    #: the blocking call that waits for this job in its caller's thread, if any: what
    #: the pool's ``_wait`` gave ``start`` (``ManagedWorkerPool`` lends it a worker)
    wait: object = None
    queued = False  # listed in the scheduler's queue of jobs with ready batches
    _emitting = 0  # threads inside _emit: the bar is closed only once they are out
    # guards _emitting; only a job with a listener emits (and it never gains one)
    _emit_cond: threading.Condition | None = None
    _fed = 0  # tasks made ready so far
    _exhausted = False  # no more input will come
    _inflight = 0
    _settled = 0
    _dropped = 0  # tasks settled without running: fail-fast or cancellation
    _stop_reason: BaseException | None = None
    _cancelled = False
    _aborted = False
    _complete = False

    def __init__(
        self,
        scheduler: Scheduler,
        function: Callable[..., Any],
        *,
        star: bool,
        kwargs: Mapping[str, Any],
        options: TaskOptions,
        chunksize: int,
        listener: ProgressListener | None,
        taper: int = 0,
    ) -> None:
        self.id = next(_job_ids)
        self.scheduler = scheduler
        self.function = function
        self.star = star
        self.kwargs = kwargs
        self.options = options
        self.chunksize = chunksize
        self.taper = taper  # workers its last batches are tapered over (0: all of chunksize)
        self._listener = listener
        self._cond = scheduler.changed  # shared by the pool's jobs: one per job costs 2 µs a call
        self._lock = scheduler.lock  # the condition's lock, for blocks that notify nobody (cheaper)
        if listener is not None:
            self._emit_cond = threading.Condition()
        self._ready: deque[Batch] = deque()
        # outcomes
        self._errors: dict[int, BaseException] = {}
        self._deaths: dict[int, int] = {}

    # ------------------------------------------------------------------ input

    def cut(self, items: list[Any], start: int) -> list[Batch]:
        """Cut ``items`` (tasks ``start``...) into batches, encoded by the pool.

        Runs in the caller's thread, outside the lock, so that what cannot
        be serialized is refused before anything is queued.
        """
        batches = []
        offset = 0
        # (one item, a pipe's: one batch, without batch_sizes' arithmetic)
        sizes = (1,) if len(items) == 1 else batch_sizes(len(items), self.chunksize, self.taper)
        for size in sizes:
            batches.append(
                Batch(self, range(start + offset, start + offset + size), items[offset : offset + size])
            )
            offset += size
        self.scheduler.encode(self, batches)
        return batches

    def _queue_batches(self, batches: list[Batch], count: int) -> list[TaskEvent]:
        """Make ``batches`` (``count`` tasks) ready (under the lock)."""
        start = self._fed
        self._ready.extend(batches)
        self._fed += count
        if self._ready:
            self.scheduler.enqueue(self)
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

    @property
    def ready_batches(self) -> int:
        """How many batches wait for a worker."""
        return len(self._ready)

    @property
    def next_batch_size(self) -> int:
        """How many tasks the next ready batch holds (0: none is ready)."""
        return len(self._ready[0]) if self._ready else 0

    @property
    def listened(self) -> bool:
        """Whether a progress listener gets this job's task events."""
        return self._listener is not None

    def stopped(self) -> bool:
        """Whether the job hands out no more tasks: a failure, a cancellation."""
        return self._stop_reason is not None

    @property
    def complete(self) -> bool:
        """Whether nothing of this job runs or will run any more."""
        return self._complete

    def _start(self, batch: Batch, worker: str, host: str | None) -> None:
        with self._lock:
            if batch.settled:
                return
            batch.worker, batch.host = worker, host
            batch.started_at = time.monotonic()
            timeout = self.options.timeout
            if timeout is not None:
                self.scheduler.watch(batch, batch.started_at + timeout)
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
        count = len(batch.items)
        if len(values) != count:
            raise ValueError(f"{batch!r} has {count} tasks but {len(values)} values were reported")
        if duration is None:
            duration = time.monotonic() - batch.started_at if batch.started_at is not None else 0.0
        worker = batch.worker or "?"
        errors = {}
        for offset, failure in failures.items():  # (most batches: none)
            index = batch.indices[offset]
            errors[index] = annotate_task_error(
                failure.error, index=index, worker=worker, traceback_text=failure.traceback
            )
        with self._lock:
            if batch.settled or self._complete:
                return
            batch.settled = True
            self._inflight -= count
            self._settled += count
            self.scheduler.record(self.function, worker, batch.host, count, len(errors), duration)
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
            each = duration / count
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
        """Keep the values of tasks that finished (under the lock)."""
        raise NotImplementedError

    def _failed(self, index: int) -> None:
        """Task ``index`` failed for good (under the lock); its error is in ``_errors``."""

    def _lose(self, batch: Batch, reason: str, exitcode: int | None, culprit: int | None) -> None:
        worker = batch.worker or "?"

        def lost(index: int, deaths: int) -> BaseException:
            text = f"task {index}: worker {worker} was lost ({reason})"
            if deaths >= self.scheduler.poison_limit:
                text += f"; it has now killed {deaths} workers and is not retried again"
            return WorkerLostError(text, index=index, worker=worker, exitcode=exitcode)

        self._settle_lost(batch, culprit, lost, counts_as_death=True)

    def put_back(self, batch: Batch) -> None:
        """Put a batch back at the front of the queue, its attempt uncharged: no worker
        began it, or its worker was lost after it finished (with its result). A
        stopped job drops it instead."""
        with self._cond:
            if batch.settled or self._complete:
                return
            batch.settled = True
            self._inflight -= len(batch)
            if self._stop_reason is None:
                again = Batch(self, batch.indices, batch.items, batch.attempt)
                again.payload = batch.payload
                self._requeue(again)
            else:
                self._settled += len(batch)
                self._dropped += len(batch)
            self._cond.notify_all()
            done = self._check_complete()
        self._announce([], done)

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
                    and deaths < self.scheduler.poison_limit
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
                        self._failed(index)
                if self._listener is not None:
                    events.append(TaskEvent(kind, index, self.id, batch.attempt, batch.worker, None, error))
            self.scheduler.record_loss(batch.worker or "?", batch.host, len(charged), counts_as_death)
            self._cond.notify_all()
            done = self._check_complete()
        self._announce(events, done)
        return True

    def _announce(self, events: Sequence[TaskEvent], done: bool) -> None:
        """After a change made under the lock, outside it: emit its events, wake
        the workers for what was queued, settle the job if it is complete."""
        self._emit(events)
        self.scheduler.wake()
        if done:
            self._deliver()

    def _requeue(self, batch: Batch) -> None:
        self._ready.appendleft(batch)
        self.scheduler.enqueue(self)

    # ------------------------------------------------------------- stopping

    def _stop(self, reason: BaseException) -> None:
        """Stop handing out tasks (under the lock): fail-fast or cancellation."""
        self._stop_reason = reason
        dropped = sum(len(batch) for batch in self._ready)
        self._settled += dropped
        self._dropped += dropped
        self._ready.clear()

    def interrupt(self) -> None:
        """The caller was interrupted (Ctrl-C) waiting: cancel, and have the pool
        stop the tasks still running."""
        self.cancel()
        self.scheduler.interrupted(self)

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
                self._stop(cancelled_error("the map was cancelled"))
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
                self._stop(cancelled_error(f"the pool was terminated before job {self.id} finished"))
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
        """The pool was closed: read no more input (a job with input still to read)."""

    def _cancel_handle(self) -> None:
        """Cancel the result handle, if the job has one."""

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
        self.scheduler.complete(self)
        return True

    def _deliver(self) -> None:
        """Settle the handle and close the progress bar (outside the lock)."""
        listener = self._listener
        close = getattr(listener, "close", None)
        if close is not None:
            emit_cond = self._emit_cond
            assert emit_cond is not None, "a job with a listener has its _emit_cond"
            with emit_cond:  # another thread may still be reporting its last tasks
                emit_cond.wait_for(lambda: not self._emitting, timeout=_EMIT_WAIT)
            try:
                close()
            except Exception as error:  # a broken progress consumer must not break the pool
                _listener_failed(listener, error)
        self._settle()

    def _settle(self) -> None:
        """Hand over the outcome, once the job is complete (outside the lock)."""

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

    # -------------------------------------------------------------- events

    def _emit(self, events: Sequence[TaskEvent]) -> None:
        listener = self._listener
        emit_cond = self._emit_cond
        if listener is None or emit_cond is None:
            return
        with emit_cond:
            self._emitting += 1
        try:
            for event in events:
                try:
                    listener(event)
                except Exception as error:  # a broken progress consumer must not break the pool
                    self._listener = None
                    _listener_failed(listener, error)
                    return
        finally:
            with emit_cond:
                self._emitting -= 1
                if not self._emitting:
                    emit_cond.notify_all()


def cancelled_error(text: str) -> BaseException:
    """The reason of a job that was cancelled."""
    from concurrent.futures import CancelledError  # (import time: see _futures.py)

    return CancelledError(text)


def _listener_failed(listener: object, error: BaseException) -> None:
    warn_user(f"progress consumer {listener!r} raised {error!r}; it gets no more events")

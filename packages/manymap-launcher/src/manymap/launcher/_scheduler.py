"""``Scheduler``: the one object a job talks to, built by its pool.

How data flows: a pool turns a call into a :class:`~manymap.launcher.lowlevel.Job`
and hands it this pool's :class:`PoolScheduler`. From then on the job
speaks only to the scheduler, through the small :class:`Scheduler`
interface: it has its batches encoded (``encode``), lists itself as having
ready batches (``enqueue``), asks for deadlines (``watch``), records what
its workers did (``record`` / ``record_loss``), wakes the workers
(``wake``) and says when it is over (``complete``). The pool's scheduling
core takes ready batches from the scheduler's queue (``take`` / ``wait``).

The scheduler owns what the pool and its jobs share: the lock, the queue of
jobs with ready batches, the set of unfinished jobs, the stats, the
:class:`~manymap.launcher._lifecycle.Lifecycle` and the
:class:`~manymap.launcher._watchdog.Watchdog`. It reaches the pool's
scheduling-core hooks (``_encode``, ``_wake``, ``_interrupted``,
``_timed_out``) through a weak reference, held strongly only while the
pool has unfinished jobs: an idle pool nobody refers to is freed at once,
and a busy one lives while its results may still be waited for.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable

from manymap.launcher._condition import Condition
from manymap.launcher._lifecycle import Lifecycle
from manymap.launcher._stats import StatsRecorder
from manymap.launcher._watchdog import Watchdog

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, Protocol

    from manymap.launcher._batch import Batch
    from manymap.launcher._job import Job
    from manymap.launcher._pool import AbstractWorkerPool
else:
    Protocol = object  # (the protocols here are the type checker's; at run time plain classes)

__all__ = ["PoolScheduler", "Scheduler"]

_WAIT_SLICE = 1.0  # seconds; every wait re-checks its condition at least this often


class Scheduler(Protocol):
    """What a :class:`~manymap.launcher.lowlevel.Job` needs of its pool, and nothing more.

    Methods marked "under the lock" are called with :attr:`lock` held.
    """

    #: The lock that guards every job of the pool.
    lock: threading.Lock
    #: A condition on :attr:`lock`, notified when a job's state changes (one for
    #: all the jobs: only a lazy job's consumer waits on it, and re-checks).
    changed: threading.Condition
    #: Workers one task may kill before it is failed rather than retried.
    poison_limit: int

    def accepting(self) -> bool:
        """Whether the pool still takes work (it was not closed or terminated)."""

    def encode(self, job: Job, batches: list[Batch]) -> None:
        """Prepare ``batches`` of ``job`` for the workers (caller's thread, outside the lock)."""

    def enqueue(self, job: Job) -> None:
        """``job`` has ready batches (under the lock)."""

    def watch(self, batch: Batch, deadline: float) -> None:
        """Expire ``batch`` if it still runs at ``deadline`` (under the lock)."""

    def record(
        self,
        function: Callable[..., Any],
        worker: str,
        host: str | None,
        tasks: int,
        failed: int,
        seconds: float,
    ) -> None:
        """``worker`` ran ``tasks`` tasks of ``function`` in ``seconds`` (under the lock)."""

    def record_loss(self, worker: str, host: str | None, charged: int, died: bool) -> None:
        """``worker`` was lost (``died``) or timed out with ``charged`` tasks (under the lock)."""

    def complete(self, job: Job) -> None:
        """Nothing of ``job`` runs or will run any more (under the lock)."""

    def wake(self) -> None:
        """Work was queued or re-queued: wake the workers (outside the lock)."""

    def interrupted(self, job: Job) -> None:
        """The caller was interrupted waiting for ``job``: stop its running tasks."""


class PoolScheduler:
    """A pool's :class:`Scheduler`: its queue of ready work and what its jobs share."""

    def __init__(self, pool: AbstractWorkerPool) -> None:
        self.lock = threading.Lock()
        self.poison_limit = 2
        self.lifecycle = Lifecycle()
        self.stats = StatsRecorder()
        self.work_ready = Condition(self.lock)
        self.changed: threading.Condition = Condition(self.lock)
        self.queue: deque[Job] = deque()
        self.jobs: set[Job] = set()
        self.watchdog = Watchdog(
            self.lock, self.lifecycle, self._expire, name=f"manymap-watchdog-{id(pool):x}"
        )
        self._pool = weakref.ref(pool)
        self._held: AbstractWorkerPool | None = None  # the pool, while it has unfinished jobs

    # ------------------------------------------------ the jobs' interface

    def accepting(self) -> bool:
        return self.lifecycle.accepting

    def encode(self, job: Job, batches: list[Batch]) -> None:
        pool = self._owner()
        if pool is not None:
            pool._encode(job, batches)

    def enqueue(self, job: Job) -> None:
        if not job.queued:
            job.queued = True
            self.queue.append(job)
        self.work_ready.notify_all()

    def watch(self, batch: Batch, deadline: float) -> None:
        self.watchdog.watch(batch, deadline)

    def record(
        self,
        function: Callable[..., Any],
        worker: str,
        host: str | None,
        tasks: int,
        failed: int,
        seconds: float,
    ) -> None:
        self.stats.record(worker, host, tasks, failed, seconds)
        self.stats.record_cost(function, tasks, seconds)

    def record_loss(self, worker: str, host: str | None, charged: int, died: bool) -> None:
        self.stats.record_loss(worker, host, charged, died)

    def complete(self, job: Job) -> None:
        self.jobs.discard(job)
        if job.queued:
            self.queue.remove(job)
            job.queued = False
        if not self.jobs:
            self._held = None
        self.work_ready.notify_all()

    def wake(self) -> None:
        pool = self._owner()
        if pool is not None:
            pool._wake()

    def interrupted(self, job: Job) -> None:
        pool = self._owner()
        if pool is not None:
            pool._interrupted(job)

    # ------------------------------------------------- the pool's side

    def add(self, job: Job) -> None:
        """Count ``job`` as unfinished (under the lock): the pool lives until it is over."""
        self.jobs.add(job)
        self._held = self._pool()

    def unfinished(self) -> list[Job]:
        """The jobs not over yet (under the lock)."""
        return list(self.jobs)

    def take(self) -> Batch | None:
        """The next ready batch, now in flight, or ``None`` (under the lock)."""
        queue = self.queue
        while queue:
            job = queue[0]
            batch = job.take()
            if not job.has_ready:
                queue.popleft()
                job.queued = False
            if batch is not None:
                return batch
        return None

    def take_from(self, job: Job) -> Batch | None:
        """The next ready batch of ``job``, now in flight, or ``None`` (under the lock)."""
        batch = job.take()
        if job.queued and not job.has_ready:
            self.queue.remove(job)
            job.queued = False
        return batch

    def wait(self) -> Batch | None:
        """The next ready batch, waiting for one; ``None`` once the pool is
        terminated, or closed with nothing left (takes the lock)."""
        lifecycle = self.lifecycle
        with self.lock:
            while True:
                if lifecycle.terminated:
                    return None
                batch = self.take()
                if batch is not None:
                    return batch
                if lifecycle.closed and not self.jobs:
                    return None
                self.work_ready.wait(_WAIT_SLICE)

    @property
    def draining(self) -> bool:
        """Whether the pool is closed (or terminated) and has nothing left to run."""
        return not self.lifecycle.accepting and not self.jobs

    def stopped(self) -> None:
        """The pool was closed or terminated: wake whoever waits (under the lock)."""
        self.work_ready.notify_all()
        self.watchdog.wake()

    def reset(self) -> None:
        """Forget every job and the stats, for a pool started afresh (under the lock)."""
        self.lifecycle.reset()
        self.queue.clear()
        self.jobs.clear()
        self._held = None
        self.stats = StatsRecorder()

    def _owner(self) -> AbstractWorkerPool | None:
        held = self._held
        return held if held is not None else self._pool()

    def _expire(self, batch: Batch) -> None:
        if batch.job.time_out(batch):
            pool = self._owner()
            if pool is not None:
                pool._timed_out(batch)

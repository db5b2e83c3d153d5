"""``EngineWorkerPool``: the base of pools whose tasks run on an external engine.

A cluster engine (a Dask scheduler, say) owns the workers; the pool only
submits work to it and learns what happened. This base is the pool side of
that, once, over :class:`~manymap.launcher.ManagedWorkerPool`'s manager
thread:

- The engine's workers are :class:`EngineWorker` records, each with a number
  of threads. The manager hands a ready batch to a worker with a free thread
  (one engine task per batch, pinned to that worker), and never has more
  batches running than ``nodes`` or than the threads it knows: a task's
  timeout then counts its own run time, not time queued in the engine.
- Queuing ahead (``queue_ahead``): an engine round trip costs milliseconds,
  so a worker whose every thread runs a batch of one map without a timeout
  is sent that map's next batch to hold in the engine's queue, one at most,
  while at least as many batches as there are workers wait. It starts the
  moment a thread is free, with no round trip between. The pool counts it
  started once the engine reports a batch of that worker done. If the worker
  is lost first, the engine says whether a batch of that worker had finished
  (then the queued one may have started: it is lost as a running one is);
  if none had, the queued batch goes back to the queue unrun and uncharged.
  Only batches of two tasks or more are held, or held behind: a lost batch
  of several tasks is never charged (its tasks run again one by one, which
  finds the culprit), so a loss the engine reports late, which can make the
  pool take a batch that began for one that did not or the reverse, never
  charges a task that did not kill the worker. The price, unless the
  engine side pays it: a held batch that kills its worker takes with it the
  result of the batch before, if the pool had not fetched it yet, and that
  batch runs again (uncharged). So it is off in this base; a pool whose
  held batches first hand that result over (DaskPool's do) turns it on.
- Tapering: the automatic batches of a map of known input whose batches may
  be long shrink toward its end (``_batching.batch_sizes``), so the
  workers end close together, not a batch apart.
- A worker lost after the engine heard a batch of it finish did not die in
  that batch: only its result went with it, so the batch runs again,
  uncharged (``retries`` and the poison count are for the batch it died in).
- Everything the engine reports (a result, a worker that joined or left, a
  scheduler that is gone) arrives from the engine's own threads through an
  :class:`EngineInbox`: a queue plus the manager's doorbell. The inbox holds
  no reference to the pool, so callbacks the engine keeps cannot keep a
  dropped pool alive. The manager drains it each round: results finish their
  batch, a worker that left loses its batches (``WorkerLostError`` or a
  retry), a task past its timeout gets its worker stopped through the
  subclass.
- The function of a job goes to a worker once (the first batch for that
  worker carries it); a worker that answers that it does not hold it (it
  evicted it) gets the batch again with the function.

A subclass supplies the engine side: :meth:`~EngineWorkerPool._engine_open`
(start or join the engine, return its workers), :meth:`~EngineWorkerPool._engine_submit`,
:meth:`~EngineWorkerPool._engine_release`, :meth:`~EngineWorkerPool._engine_stop_worker`,
:meth:`~EngineWorkerPool._engine_scale`, :meth:`~EngineWorkerPool._engine_decode` and
:meth:`~EngineWorkerPool._engine_close`, all but ``_engine_open`` and
``_engine_close`` non-blocking (they run on the manager thread).
"""

from __future__ import annotations

import abc
import itertools
import weakref
from collections import deque
from collections.abc import Callable

from manymap.launcher._batch import Batch
from manymap.launcher._batching import tapers
from manymap.launcher._job import Job
from manymap.launcher._managed import ManagedWorkerPool
from manymap.launcher._options import TaskOptions
from manymap.launcher._shipping import ManagedWorker

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["EngineInbox", "EngineOutcome", "EngineWorker", "EngineWorkerPool"]


class EngineWorker:
    """The pool's record of one engine worker.

    Attributes:
        ident: the engine's name for it (a Dask worker address).
        name: its name in stats and errors.
        host: the host it runs on.
        threads: how many tasks it runs at once.
        info: whatever else the subclass keeps about it (a pid, say).
    """

    __slots__ = ("host", "ident", "info", "known", "name", "queued", "running", "stopping", "threads")

    def __init__(self, ident: str, name: str, host: str, threads: int, info: Any = None) -> None:
        self.ident = ident
        self.name = name
        self.host = host
        self.threads = max(1, threads)
        self.info = info
        self.running: dict[int, Batch] = {}  # token -> the batch its engine task runs
        self.queued: dict[int, Batch] = {}  # token -> a batch held in the engine's queue behind them
        self.known: set[Any] = set()  # function keys the worker was sent
        self.stopping = False  # being killed or restarted: no new work

    def __repr__(self) -> str:
        return (
            f"<EngineWorker {self.name} threads={self.threads} running={len(self.running)}"
            f" queued={len(self.queued)}>"
        )


class EngineOutcome:
    """What one engine task reported, decoded by :meth:`EngineWorkerPool._engine_decode`.

    Attributes:
        values: one value per task of the batch (``None``: the batch could not run at all).
        failures: offsets of the tasks that raised, with their ``TaskFailure``.
        duration: seconds the worker spent on the batch.
        missing_function: the worker did not hold the function: send it again.
    """

    __slots__ = ("duration", "failures", "missing_function", "values")

    def __init__(
        self,
        values: list[Any] | None = None,
        failures: dict[int, Any] | None = None,
        duration: float | None = None,
        *,
        missing_function: bool = False,
    ) -> None:
        self.values = values
        self.failures = failures or {}
        self.duration = duration
        self.missing_function = missing_function


class EngineInbox:
    """Events from the engine's threads to the pool's manager: ``put`` from anywhere.

    Holds the wake-up call of the manager, never the pool itself.
    """

    def __init__(self, wake: Callable[[], None]) -> None:
        self._events: deque[tuple[Any, ...]] = deque()
        self._wake = wake

    def put(self, *event: Any) -> None:
        """Queue ``event`` (a kind, then its arguments) and wake the manager."""
        self._events.append(event)
        self._wake()

    def take(self) -> list[tuple[Any, ...]]:
        """Every queued event, oldest first."""
        taken = []
        while self._events:
            taken.append(self._events.popleft())
        return taken


class EngineWorkerPool(
    ManagedWorkerPool[ManagedWorker]
):  # its workers are EngineWorker records, not shipped to one by one
    """A pool over an external engine's workers (see the module's text).

    Events a subclass puts into :attr:`_inbox` (from any thread):

    - ``("joined", worker)``: an :class:`EngineWorker` is ready for work;
    - ``("left", ident, reason)``: the worker ``ident`` is gone;
    - ``("done", token, result)``: the engine task ``token`` returned ``result``;
    - ``("lost", token, reason)``: the engine task ``token`` failed because its
      worker died (the worker gets no more work; the engine reports it ``left``);
    - ``("broken", error)``: the engine is unusable (the scheduler is lost).

    Other kinds go to :meth:`_engine_event`.
    """

    #: Whether a busy worker is sent the next batch of its map to hold (see the
    #: module's text). Needs :meth:`_engine_in_order` and :meth:`_engine_finished`.
    queue_ahead: bool = False

    def __init__(self, nodes: int | None = None, **options: Any) -> None:
        super().__init__(nodes, **options)
        self._engine_workers: dict[str, EngineWorker] = {}
        self._engine_tokens: dict[int, tuple[EngineWorker, Batch]] = {}
        self._token_serials = itertools.count(1)
        self._scaled_to = 0
        self._inbox = EngineInbox(lambda: None)

    # ------------------------------------------------------ the engine side

    @abc.abstractmethod
    def _engine_open(self) -> list[EngineWorker]:
        """Start or join the engine (caller's thread, may block); its workers now."""

    @abc.abstractmethod
    def _engine_submit(self, worker: EngineWorker, token: int, batch: Batch, function: bool) -> None:
        """Submit ``batch`` as engine task ``token`` pinned to ``worker``, without
        waiting; with the job's function if ``function``. Its outcome comes back
        through the inbox (``done`` or ``lost``)."""

    @abc.abstractmethod
    def _engine_release(self, token: int) -> None:
        """Forget engine task ``token``: its outcome, if any, is not wanted."""

    @abc.abstractmethod
    def _engine_stop_worker(self, worker: EngineWorker) -> None:
        """Stop what ``worker`` runs (a timeout, an interrupt): kill or restart it,
        without waiting. The engine later reports it ``left`` (and maybe a new one
        ``joined``)."""

    @abc.abstractmethod
    def _engine_decode(self, result: Any) -> EngineOutcome:
        """The outcome of a ``done`` event's result."""

    @abc.abstractmethod
    def _engine_close(self, *, kill: bool) -> None:
        """Leave the engine (manager thread, last act): stop what the pool started."""

    def _engine_scale(self, nodes: int) -> None:
        """Make the engine run ``nodes`` workers, if the pool owns it (non-blocking)."""

    def _engine_event(self, kind: str, *args: Any) -> None:
        """An event of a kind this base does not know (manager thread)."""
        raise ValueError(f"unknown engine event {kind!r}")

    def _engine_in_order(self, token: int) -> bool:
        """Whether engine task ``token`` runs as soon as its worker has a free thread,
        ahead of any task submitted after it (it waits for no data)."""
        return False

    def _engine_finished(self, token: int) -> bool:
        """Whether the engine has heard that task ``token`` finished on its worker
        (its outcome may not have reached the pool yet)."""
        return False

    def _engine_function_key(self, job: Job) -> Any:
        """What identifies ``job``'s function on a worker (default: the job's payload)."""
        return job.payload

    # ----------------------------------------------- the launcher's hooks

    def _start_workers(self) -> None:
        self._engine_workers = {}
        self._engine_tokens = {}
        self._scaled_to = self.nodes
        self._inbox = EngineInbox(_weak_call(self._wake_manager))  # the engine holds it, not the pool
        self._start_manager()
        workers = self._engine_open()  # raising: the base calls _start_failed
        for worker in workers:
            self._inbox.put("joined", worker)

    def _start_failed(self, error: BaseException) -> None:
        """The engine could not be started or reached: the pool is broken with
        ``error``, and the manager thread started for it is stopped."""
        super()._start_failed(error)
        self._join_workers()

    def _timed_out(self, batch: Batch) -> None:
        self._inbox.put("stop", batch)

    def _capacity(self) -> int:
        return self.nodes

    def _taper(self, options: TaskOptions, chunksize: int, function: Callable[..., Any]) -> int:
        # automatic batches only (none with a timeout: one task each), that may be long
        if options.chunksize is not None or options.timeout is not None:
            return 0
        return self._capacity() if tapers(chunksize, self._scheduler.stats.task_seconds(function)) else 0

    # -------------------------------------------------------- the manager

    def _staff(self) -> None:
        if self._killing or (self._closing and self._draining):
            return
        if self._scaled_to != self.nodes:
            self._scaled_to = self.nodes
            self._engine_scale(self.nodes)

    def _dispatch(self) -> None:
        if self._closing and self._killing:
            return
        workers = self._engine_workers.values()
        room = self.nodes - len(self._engine_tokens) + sum(len(worker.queued) for worker in workers)
        while room > 0:
            worker = self._free_worker()
            if worker is None:
                break
            batch = self._take_batch()
            if batch is None:
                return
            self._submit(worker, batch)
            room -= 1
        if self.queue_ahead:
            for worker in list(workers):
                self._queue_ahead(worker)

    def _queue_ahead(self, worker: EngineWorker) -> None:
        """Send ``worker`` the next batch of the map its threads all run, to hold."""
        if worker.queued or worker.stopping or len(worker.running) < worker.threads:
            return
        job = None
        for token, batch in worker.running.items():
            if job not in (None, batch.job) or len(batch) < 2 or not self._engine_in_order(token):
                return
            job = batch.job
        if job is None or job.options.timeout is not None or job.stopped() or job.next_batch_size < 2:
            return
        if job.ready_batches < len(self._engine_workers):  # the last ones go to free workers
            return
        with self._lock:
            held = self._scheduler.take_from(job)
        if held is not None:
            self._submit(worker, held, queued=True)

    def _free_worker(self) -> EngineWorker | None:
        best: EngineWorker | None = None
        for worker in self._engine_workers.values():
            if worker.stopping or len(worker.running) >= worker.threads:
                continue
            if best is None or len(worker.running) < len(best.running):
                best = worker
        return best

    def _submit(
        self, worker: EngineWorker, batch: Batch, *, restart: bool = True, queued: bool = False
    ) -> None:
        job = batch.job
        if job.stopped():  # cancelled since it was taken: settle it unrun
            batch.lose("its map was stopped before the batch was sent")
            return
        if job.payload is None or batch.payload is None:  # a re-queued part of a lost batch
            self._encode(job, [batch])
        key = self._engine_function_key(job)
        token = next(self._token_serials)
        (worker.queued if queued else worker.running)[token] = batch
        self._engine_tokens[token] = (worker, batch)
        if restart and not queued:
            batch.start(worker.name, worker.host)
        try:
            self._engine_submit(worker, token, batch, key not in worker.known)
        except Exception as error:  # the engine refused it: the worker is as good as gone
            self._settle_token(token)
            batch.lose(f"the engine refused the task ({error!r})")
            return
        worker.known.add(key)

    def _handle(self, ready: list[Any]) -> None:
        for event in self._inbox.take():
            kind, args = event[0], event[1:]
            if kind == "done":
                self._done(*args)
            elif kind == "lost":
                self._task_lost(*args)
            elif kind == "joined":
                self._joined(*args)
            elif kind == "left":
                self._left(*args)
            elif kind == "stop":
                self._stop_batch(*args)
            elif kind == "broken":
                self._break(args[0])
            else:
                self._engine_event(kind, *args)
        self._stop_doomed()

    def _settle_token(self, token: int, *, ran: bool = True) -> tuple[EngineWorker, Batch] | None:
        """Forget engine task ``token``; a batch it held queued counts as begun if ``ran``
        (an outcome that overtook its predecessor's: it did run)."""
        found = self._engine_tokens.pop(token, None)
        if found is not None:
            worker, batch = found
            if worker.running.pop(token, None) is None and worker.queued.pop(token, None) is not None and ran:
                self._start(worker, batch)
            self._engine_release(token)
        return found

    def _start(self, worker: EngineWorker, batch: Batch) -> None:
        if batch.started_at is None:
            batch.start(worker.name, worker.host)

    def _promote(self, worker: EngineWorker) -> None:
        """A thread of ``worker`` is free: the batch it held queued runs now."""
        while worker.queued and len(worker.running) < worker.threads:
            token = next(iter(worker.queued))
            batch = worker.queued.pop(token)
            worker.running[token] = batch
            self._start(worker, batch)

    def _lose_queued(self, worker: EngineWorker, reason: str) -> None:
        """``worker`` is lost: what it held queued either may have started (a batch of
        it had finished) and is lost, or goes back to the queue unrun."""
        if not worker.queued:
            return
        started = any(self._engine_finished(token) for token in worker.running)
        for token in list(worker.queued):
            found = self._settle_token(token, ran=started)
            if found is None:
                continue
            if started:
                found[1].lose(reason)
            else:
                found[1].job.put_back(found[1])

    def _lose_running(self, token: int, reason: str) -> None:
        """The worker of engine task ``token`` is lost. If the engine had heard the task
        finish, it did not die in it: only its result was lost with it, and the
        batch runs again uncharged. Otherwise the batch is lost (charged)."""
        finished = self._engine_finished(token)
        found = self._settle_token(token)
        if found is not None:
            if finished:
                found[1].job.put_back(found[1])
            else:
                found[1].lose(reason)

    def _done(self, token: int, result: Any) -> None:
        found = self._settle_token(token)
        if found is None:
            return  # a task already settled (lost, timed out, stopped)
        worker, batch = found
        self._promote(worker)
        try:
            outcome = self._engine_decode(result)
        except Exception as error:
            batch.lose(f"its result could not be read ({error!r})")
            return
        if outcome.missing_function:
            worker.known.discard(self._engine_function_key(batch.job))
            self._submit(worker, batch, restart=False, queued=len(worker.running) >= worker.threads)
            return
        if outcome.values is None:  # the batch could not be loaded or run at all
            failure = outcome.failures[0]
            batch.finish([None] * len(batch), dict.fromkeys(range(len(batch)), failure))
            return
        batch.finish(outcome.values, outcome.failures, duration=outcome.duration)

    def _task_lost(self, token: int, reason: str) -> None:
        found = self._engine_tokens.get(token)
        if found is None:
            return
        found[0].stopping = True  # its worker is gone too: no more work until the engine says
        self._lose_queued(found[0], reason)  # (first: it asks whether a running batch had finished)
        if token in self._engine_tokens:  # (not if it was the queued one)
            self._lose_running(token, reason)

    def _joined(self, worker: EngineWorker) -> None:
        if worker.ident not in self._engine_workers:
            self._engine_workers[worker.ident] = worker

    def _left(self, ident: str, reason: str) -> None:
        worker = self._engine_workers.pop(ident, None)
        if worker is None:
            return
        self._lose_queued(worker, reason)
        for token in list(worker.running):
            self._lose_running(token, reason)

    def _stop_batch(self, batch: Batch) -> None:
        for worker in self._engine_workers.values():
            if batch in worker.running.values():
                self._stop_worker(worker)
                return

    def _stop_worker(self, worker: EngineWorker) -> None:
        if not worker.stopping:
            worker.stopping = True
            self._engine_stop_worker(worker)

    def _stop_doomed(self) -> None:
        doomed = self._doomed_jobs()
        if not doomed:
            return
        for worker in list(self._engine_workers.values()):
            if any(batch.job in doomed for batch in worker.running.values()):
                self._stop_worker(worker)

    def _stop_all(self) -> None:
        for worker in self._engine_workers.values():
            worker.running.update(worker.queued)  # all lost alike: the pool is terminated
            worker.queued.clear()
        for token in list(self._engine_tokens):
            found = self._settle_token(token)
            if found is not None:
                found[1].lose("the pool was terminated while it ran")
        self._engine_workers.clear()
        self._engine_close(kill=self._killing)


def _weak_call(method: Callable[[], object]) -> Callable[[], None]:
    """``method`` of an object, held weakly: a no-op once the object is gone."""
    reference = weakref.WeakMethod(method)

    def call() -> None:
        bound = reference()
        if bound is not None:
            bound()

    return call

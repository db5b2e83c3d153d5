"""``AbstractWorkerPool``: the whole pool contract, over a small scheduling core.

Everything a user calls lives here once: the map family (``map``, ``imap``,
``uimap``, ``amap`` and the star variants), ``pipe``/``apipe``, ``submit``/``shutdown``, the strict
:class:`concurrent.futures.Executor` view (``executor``, see ``_executor.py``),
schwimmbad's surface (``_schwimmbad.py``), option handling, the
lifecycle (``close``/``join``/``terminate``/``restart``/``clear`` and
``with``), ``stats()``. Each call becomes a :class:`~manymap.launcher.lowlevel.Job`
(an eager one, ``_eager_job.py``, or a lazy one, ``_lazy_job.py``) that
talks to the pool only through its scheduler (``_scheduler.py``), whose
queue the scheduling core takes batches from. The pool's state is one
:class:`~manymap.launcher._lifecycle.Lifecycle`; timeouts are the
watchdog's (``_watchdog.py``), batch sizes ``_batching.py``'s.

A concrete pool supplies only its scheduling core, five methods:

- :meth:`_start_workers` starts the workers (lazily, at the first call);
- the workers get work with :meth:`_wait_batch` (blocking, for a worker
  thread) or :meth:`_take_batch` (non-blocking, for a dispatcher), run it
  with :func:`~manymap.launcher.lowlevel.run_calls` and report through the batch;
- :meth:`_stop_workers` lets them drain and exit (``close``) or stops them
  at once (``terminate``), and :meth:`_join_workers` waits for them;
- :meth:`_resize` changes the number of workers of a live pool.

Optional hooks: :meth:`_wake` (work was queued: for dispatchers that do not
block in ``_wait_batch``), :meth:`_encode` (serialize batches in the
caller's thread), :meth:`_interrupted` (stop an interrupted call's tasks),
:meth:`_timed_out` (a task ran over its timeout: kill and replace its worker
if the pool can), :meth:`_start_failed` (``_start_workers`` raised),
:meth:`_initial_nodes` (the size given to the constructor) and
:meth:`_read_ahead` (how far a lazy map reads its input ahead of its consumer).
"""

from __future__ import annotations

import abc
import os
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from types import TracebackType

from manymap.launcher._batch import Batch
from manymap.launcher._calls import PoolCalls
from manymap.launcher._compat_mp import MultiprocessingPoolMethods
from manymap.launcher._config import PicklesAsConfig
from manymap.launcher._errors import PoolClosedError
from manymap.launcher._job import Job
from manymap.launcher._lifecycle import Lifecycle, PoolState
from manymap.launcher._nodes import NodesAlias, check_nodes, pick_nodes
from manymap.launcher._options import TaskOptions
from manymap.launcher._results import CallResult, wait_for
from manymap.launcher._scheduler import PoolScheduler
from manymap.launcher._schwimmbad import SchwimmbadSurface, map_with_callback
from manymap.launcher._stats import PoolStats, StatsRecorder
from manymap.launcher._submit import JobSubmission

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    from manymap.launcher._executor import PoolExecutor
    from manymap.launcher._futures import AsyncResult, MapResult

    T = TypeVar("T")
    Pool = TypeVar("Pool", bound="AbstractWorkerPool")

__all__ = ["AbstractWorkerPool", "NodesAlias"]


class AbstractWorkerPool(
    JobSubmission, MultiprocessingPoolMethods, PicklesAsConfig, SchwimmbadSurface, abc.ABC
):
    """Base of every manymap pool: the contract of ``manymap.launcher``.

    Args:
        nodes: number of workers; ``None`` for the pool's default. Aliases:
            ``ncpus``, ``nthreads``, ``processes`` (pathos and stdlib names).
        chunksize: default tasks per batch (``None``: chosen per call).
        timeout: default seconds a task may run (``None``: no limit).
        retries: default re-runs of a task whose worker was lost or timed out.
        progress: default progress reporting: ``True`` for a bar, or a
            callable receiving every :class:`~manymap.launcher.TaskEvent`.
        id: accepted for pathos code, where it names a pool in pathos' cache
            of pools; every manymap pool owns its workers, whatever its ``id``.

    Every call option can also be given per call, e.g.
    ``pool.map(f, xs, timeout=5, retries=1)``.

    A pool pickles as its configuration (its class, constructor arguments
    and assigned ``nodes``), never its workers: the copy is a new open pool
    that starts its own workers when first used, so pools and their bound
    maps (``ThreadPool(4).map``) can be task arguments or tasks.

    A pool is not a :class:`concurrent.futures.Executor`: its ``map`` is
    pathos' (a list, ``timeout`` per task). It has ``submit`` and
    ``shutdown``, enough for ``loop.run_in_executor(pool, ...)``, and
    :attr:`executor` is a true ``Executor`` over the same workers.
    """

    #: Keyword aliases of ``nodes`` this pool accepts in its constructor.
    node_aliases: ClassVar[tuple[str, ...]] = ("ncpus", "nthreads", "processes")
    #: seconds of work an automatic batch of known-cheap tasks aims at (more where a round trip costs more)
    batch_seconds: ClassVar[float] = 0.001

    def __init__(
        self,
        nodes: int | None = None,
        *,
        chunksize: int | None = None,
        timeout: float | None = None,
        retries: int = 0,
        progress: bool | Callable[..., object] | None = None,
        id: Hashable | None = None,  # pathos' keyword; the builtin is not needed here
        **aliases: int | None,
    ) -> None:
        self._id = id
        self._nodes = self._initial_nodes(nodes, aliases)
        self._defaults = TaskOptions(chunksize=chunksize, timeout=timeout, retries=retries, progress=progress)
        self._scheduler = PoolScheduler(self)
        self._lifecycle: Lifecycle = self._scheduler.lifecycle
        self._lock = self._scheduler.lock  # guards the lifecycle, the queue and every job
        self._start_lock = threading.Lock()

    @property
    def _state(self) -> PoolState:
        """Where the pool is in its life (read-only: see ``_lifecycle.py``)."""
        return self._lifecycle.state

    @property
    def _workers_up(self) -> bool:
        return self._lifecycle.workers_up

    @property
    def _stats(self) -> StatsRecorder:
        return self._scheduler.stats

    # ----------------------------------------------------------------- size

    @property
    def nodes(self) -> int:
        """The number of workers. Assigning to it resizes a live pool; ``None``
        means the pool's default size, as in the constructor."""
        return self._nodes

    @nodes.setter
    def nodes(self, value: int | None) -> None:
        value = self._default_nodes() if value is None else self._check_nodes(value)
        self._nodes_assigned = True
        if value == self._nodes:
            return
        with self._start_lock:
            if self._lifecycle.running:
                self._resize(value)
            self._nodes = value

    def _pickled_config(self) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        args, kwargs, attributes = super()._pickled_config()
        if getattr(self, "_nodes_assigned", False):
            attributes = {**attributes, "nodes": self._nodes}
        return args, kwargs, attributes

    def _default_nodes(self) -> int:
        """The size of a pool created without one: the number of cores."""
        return os.cpu_count() or 1

    def _initial_nodes(self, nodes: int | None, aliases: dict[str, int | None]) -> int:
        """The size given to the constructor as ``nodes`` or an alias, checked (else the default)."""
        size = pick_nodes(type(self).__name__, nodes, aliases, self.node_aliases)
        return self._check_nodes(self._default_nodes() if size is None else size)

    @staticmethod
    def _check_nodes(value: object) -> int:
        return check_nodes(value)

    # ------------------------------------------------------------- the maps

    def map(
        self,
        function: Callable[..., T],
        *iterables: Iterable[Any],
        callback: Callable[[T], object] | None = None,
        **options: Any,
    ) -> list[T]:
        """Like builtin ``map``, in parallel, returning a list.

        With several iterables, ``function`` takes one item of each and the
        map stops at the shortest. Options: ``chunksize``, ``timeout``,
        ``retries``, ``progress``. ``callback`` (keyword only, as in
        schwimmbad's pools) is called in the caller's thread with every
        result, in order, as the results come in.
        """
        if callback is not None:
            return map_with_callback(self, function, iterables, callback, options)
        return self._map("map", function, iterables, options)

    def imap(self, function: Callable[..., T], *iterables: Iterable[Any], **options: Any) -> Iterator[T]:
        """Like :meth:`map`, but lazy: results in order, as they are ready.

        The input is read as results are consumed, with a bounded number of
        tasks in flight, so an endless generator is fine.
        """
        return self._lazy("imap", function, iterables, options, star=len(iterables) > 1, ordered=True)

    def uimap(self, function: Callable[..., T], *iterables: Iterable[Any], **options: Any) -> Iterator[T]:
        """Like :meth:`imap`, but results come in the order they complete."""
        return self._lazy("uimap", function, iterables, options, star=len(iterables) > 1, ordered=False)

    def amap(self, function: Callable[..., T], *iterables: Iterable[Any], **options: Any) -> MapResult[T]:
        """Like :meth:`map`, but returns at once a :class:`MapResult`."""
        return self._amap("amap", function, iterables, options)

    def smap(self, function: Callable[..., T], iterable: Iterable[Iterable[Any]], **options: Any) -> list[T]:
        """``function(*item)`` for every item, in parallel (``itertools.starmap``)."""
        return self._map("smap", function, (iterable,), options, star=True)

    def ismap(
        self, function: Callable[..., T], iterable: Iterable[Iterable[Any]], **options: Any
    ) -> Iterator[T]:
        """The lazy, ordered :meth:`smap`."""
        return self._lazy("ismap", function, (iterable,), options, star=True, ordered=True)

    def asmap(
        self, function: Callable[..., T], iterable: Iterable[Iterable[Any]], **options: Any
    ) -> MapResult[T]:
        """The asynchronous :meth:`smap`."""
        return self._amap("asmap", function, (iterable,), options, star=True)

    def pipe(self, function: Callable[..., T], /, *args: Any, **kwds: Any) -> T:
        """``function(*args, **kwds)`` on a worker; the pool's default options apply
        (per-call ones through :meth:`with_options`)."""
        return self._call("pipe", function, args, kwds, {})

    def apipe(self, function: Callable[..., T], /, *args: Any, **kwds: Any) -> AsyncResult[T]:
        """The asynchronous :meth:`pipe`: returns an :class:`AsyncResult`."""
        return self._apply("apipe", function, args, kwds, {})

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> AsyncResult[T]:
        """As :meth:`concurrent.futures.Executor.submit`: the result is a Future."""
        return self._apply("submit", fn, args, kwargs, {})

    def with_options(self, **options: Any) -> PoolCalls:
        """This pool's submission methods with per-call options set.

        ``pool.with_options(timeout=5, retries=1).submit(f, x)``: ``pipe``,
        ``apipe`` and ``submit`` pass their keywords to the function, so
        this is how they take ``timeout``, ``retries`` and ``progress``. The
        map family takes them either way. Options: ``chunksize``,
        ``timeout``, ``retries``, ``progress``.

        Raises:
            TypeError: an unknown option.
            ValueError: a bad option value.
        """
        self._options(options, "with_options")
        return PoolCalls(self, options)

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Accept no more work; the workers exit once the work handed out is done."""
        with self._lock:
            if not self._lifecycle.close():
                return
            started = self._lifecycle.workers_up
            jobs = self._scheduler.unfinished()
            self._scheduler.stopped()
        for job in jobs:
            job.close_input()
        if started:
            self._stop_workers(kill=False)

    def terminate(self) -> None:
        """Stop the workers now; unfinished results are cancelled."""
        with self._lock:
            if not self._lifecycle.terminate():
                return
            started = self._lifecycle.workers_up
            jobs = self._scheduler.unfinished()
            self._scheduler.stopped()
        for job in jobs:
            job.abort()
        if started:
            self._stop_workers(kill=True)

    def _break(self, reason: BaseException) -> None:
        """The pool cannot work (say, its initializer fails): fail all its work
        with ``reason``, stop the workers and accept nothing more."""
        with self._lock:
            if not self._lifecycle.terminate(reason):
                return
            jobs = self._scheduler.unfinished()
            self._scheduler.stopped()
        for job in jobs:
            job.fail(reason)
        self._stop_workers(kill=True)

    def join(self) -> None:
        """Wait for the workers to exit, after :meth:`close` or :meth:`terminate`.

        Raises:
            ValueError: the pool is still running.
        """
        with self._lock:
            if self._lifecycle.accepting:
                raise ValueError(f"{self!r} is still running: call close() or terminate() before join()")
        if self._lifecycle.workers_up:
            self._join_workers()
            self._lifecycle.workers_up = False
        self._scheduler.watchdog.join()
        self._join_callbacks()  # multiprocessing-style callbacks still due

    def restart(self, force: bool = False) -> None:
        """Start fresh workers on a closed (or, with ``force``, running) pool.

        Raises:
            ValueError: the pool is running and ``force`` is false.
        """
        if self._lifecycle.running and not force:
            raise ValueError(f"{self!r} is running: close() it first, or restart(force=True)")
        self.clear()
        self._ensure_started()

    def clear(self) -> None:
        """Stop and forget the workers; the next call starts new ones."""
        if self._lifecycle.running:
            self.terminate()
        if not self._lifecycle.accepting:
            self.join()
        with self._lock:
            self._scheduler.reset()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As :meth:`concurrent.futures.Executor.shutdown`: close, optionally cancel, join."""
        if cancel_futures:
            with self._lock:
                jobs = self._scheduler.unfinished()
            for job in jobs:
                job.cancel()
        self.close()
        if wait:
            self.join()

    @property
    def executor(self) -> PoolExecutor:
        """This pool as a strict :class:`concurrent.futures.Executor` (a :class:`PoolExecutor`).

        Its ``map`` returns an iterator and takes ``timeout`` as a deadline for
        the whole map, as the stdlib's; shutting it down shuts the pool down.
        """
        from manymap.launcher._executor import PoolExecutor  # loaded on first use (import time)

        return PoolExecutor(self)

    def __enter__(self: Pool) -> Pool:
        """Start the workers now, not at the first call: a ``with`` block is about to
        use the pool, and they start while it prepares its first call's input.
        (A pool built but never used, or a copy of one, starts nothing.)"""
        self._ensure_started()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close and join; on an exception, terminate and join."""
        if exc_type is None:
            self.close()
        else:
            self.terminate()
        self.join()

    def stats(self) -> PoolStats:
        """What the workers have done so far, per worker and in total."""
        with self._lock:
            return self._stats.snapshot(self._nodes)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} nodes={self._nodes} {self._state}>"

    # ------------------------------------------------- the scheduling core

    @abc.abstractmethod
    def _start_workers(self) -> None:
        """Start ``self.nodes`` workers (called once per start, before work)."""

    @abc.abstractmethod
    def _stop_workers(self, *, kill: bool) -> None:
        """Make the workers exit: after the queued work (``kill=False``: the
        pool is closed and ``_wait_batch`` returns ``None`` once nothing is
        left) or now (``kill=True``)."""

    @abc.abstractmethod
    def _join_workers(self) -> None:
        """Wait until every worker has exited."""

    @abc.abstractmethod
    def _resize(self, nodes: int) -> None:
        """Grow or shrink the live pool to ``nodes`` workers."""

    def _wake(self) -> None:
        """Work was queued (or re-queued). Blocking cores need not care."""

    def _wait(self, start: Callable[[Any], AsyncResult[T] | CallResult[T]]) -> T:
        """The result of a blocking call (``map``, ``pipe``, ``apply``...): ``start(wait)``
        makes the call (``wait`` goes to its job, see :attr:`Job.wait`), then the
        caller's thread waits for it; Ctrl-C stops its work (:func:`wait_for`).

        A pool whose workers reply to a manager thread may let the caller read
        its reply itself, one thread hand-off less (``ManagedWorkerPool``).
        """
        return wait_for(start(None))

    def _encode(self, job: Job, batches: list[Batch]) -> None:
        """Prepare ``batches`` of ``job`` for the workers, in the caller's thread.

        A pool whose workers are other processes serializes here (setting
        ``job.payload`` and each ``batch.payload``) so that what cannot be
        shipped fails in the caller, naming the task, before any work is
        queued. Batches re-queued after a lost worker arrive without a payload.
        """

    def _interrupted(self, job: Job) -> None:
        """The caller was interrupted (Ctrl-C) waiting for ``job``, now cancelled.

        A pool that can should stop the workers still running its tasks.
        """

    def _timed_out(self, batch: Batch) -> None:
        """``batch``'s task ran past its timeout and was failed or re-queued.

        A core that can should kill and replace the worker running it.
        Threads cannot be killed: the default does nothing and the thread
        finishes the task, whose late result is ignored.
        """

    def _start_failed(self, error: BaseException) -> None:
        """``_start_workers`` raised ``error`` (which the call that started the pool
        raises next): the pool is broken, every later call raises
        :class:`~manymap.launcher.PoolClosedError` from ``error``.

        A core that stops what it had started before raising needs nothing more.
        """
        self._break(error)

    def _take_batch(self) -> Batch | None:
        """The next batch to run, or ``None`` if none is ready now."""
        if not self._scheduler.queue:  # a look without the lock: who queues a batch wakes the pool after
            return None
        with self._lock:
            return self._scheduler.take()

    def _wait_batch(self) -> Batch | None:
        """The next batch to run, waiting for one; ``None`` means: exit.

        Returns ``None`` once the pool is terminated, or closed with nothing
        left to run or in flight.
        """
        return self._scheduler.wait()

    @property
    def _draining(self) -> bool:
        """Whether the pool is closed and has nothing left to run."""
        return self._scheduler.draining

    # ---------------------------------------------------------- internals

    def _accepting(self) -> bool:
        return self._lifecycle.accepting

    def _ensure_started(self) -> None:
        if self._lifecycle.workers_up:  # every call after the first
            return
        with self._start_lock:
            with self._lock:
                if not self._lifecycle.begin():
                    return
            try:
                self._start_workers()
            except BaseException as error:
                self._start_failed(error)
                raise
            self._lifecycle.workers_up = True

    def _check_open(self, method: str) -> None:
        lifecycle = self._lifecycle
        if not lifecycle.accepting:
            raise PoolClosedError(
                f"{type(self).__name__}.{method}() on {self!r}: the pool is {lifecycle.why_closed()}; "
                "no new work is accepted"
            ) from lifecycle.broken

"""``AbstractWorkerPool``: the whole pool contract, over a small scheduling core.

Everything a user calls lives here once: the map family (``map``, ``imap``,
``uimap``, ``amap`` and the star variants), ``pipe``/``apipe``, ``submit``/``shutdown``, the strict
:class:`concurrent.futures.Executor` view (``executor``, see ``_executor.py``),
schwimmbad's surface (``_schwimmbad.py``), option handling, the
lifecycle (``close``/``join``/``terminate``/``restart``/``clear`` and
``with``), per-task timeouts, ``stats()``. Each call becomes a
:class:`~manymap.launcher.Job` (see ``_job.py``) whose batches wait in this
pool's queue.

A concrete pool supplies only its scheduling core, five methods:

- :meth:`_start_workers` starts the workers (lazily, at the first call);
- the workers get work with :meth:`_wait_batch` (blocking, for a worker
  thread) or :meth:`_take_batch` (non-blocking, for a dispatcher), run it
  with :func:`~manymap.launcher.run_calls` and report through the batch;
- :meth:`_stop_workers` lets them drain and exit (``close``) or stops them
  at once (``terminate``), and :meth:`_join_workers` waits for them;
- :meth:`_resize` changes the number of workers of a live pool.

Optional hooks: :meth:`_wake` (work was queued: for dispatchers that do not
block in ``_wait_batch``), :meth:`_timed_out` (a task ran over its
timeout: kill and replace its worker if the pool can) and :meth:`_read_ahead`
(how far a lazy map reads its input ahead of its consumer).
"""

from __future__ import annotations

import abc
import heapq
import itertools
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from types import TracebackType
from typing import Any, ClassVar, TypeVar, overload

from manymap.launcher._calls import PoolCalls
from manymap.launcher._compat_mp import MultiprocessingPoolMethods
from manymap.launcher._config import PicklesAsConfig
from manymap.launcher._errors import PoolClosedError
from manymap.launcher._events import ProgressListener, progress_bar
from manymap.launcher._executor import PoolExecutor
from manymap.launcher._job import Batch, Job
from manymap.launcher._options import TaskOptions
from manymap.launcher._results import AsyncResult, MapResult, ResultIterator
from manymap.launcher._results import wait_result as _wait
from manymap.launcher._schwimmbad import SchwimmbadSurface, map_with_callback
from manymap.launcher._stats import PoolStats, StatsRecorder
from manymap.launcher._warnings import warn_user

__all__ = ["AbstractWorkerPool", "NodesAlias"]

T = TypeVar("T")
H = TypeVar("H", bound=AsyncResult[Any])
_WAIT_SLICE = 1.0  # seconds; every wait re-checks its condition at least this often
_LAZY_BATCH_CAP = 128  # the most tasks an automatic imap batch takes

_NEW, _RUNNING, _CLOSED, _TERMINATED = "new", "running", "closed", "terminated"
# A broken pool (say, its worker initializer failed) is a terminated one with a reason.


class AbstractWorkerPool(MultiprocessingPoolMethods, PicklesAsConfig, SchwimmbadSurface, abc.ABC):
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
        self._nodes = self._check_nodes(self._pick_nodes(nodes, aliases))
        self._defaults = TaskOptions(chunksize=chunksize, timeout=timeout, retries=retries, progress=progress)
        self._poison_limit = 2
        self._lock = threading.Lock()
        self._work_ready = threading.Condition(self._lock)
        self._start_lock = threading.Lock()
        self._state = _NEW
        self._workers_up = False  # _start_workers ran and _join_workers has not
        self._broken: BaseException | None = None
        self._queue: deque[Job] = deque()
        self._jobs: set[Job] = set()
        self._stats = StatsRecorder()
        self._deadlines: list[tuple[float, int, Batch]] = []
        self._deadline_ids = itertools.count()
        self._watchdog: threading.Thread | None = None
        self._watch_cond = threading.Condition(self._lock)

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
            if self._state == _RUNNING:
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

    def _pick_nodes(self, nodes: int | None, aliases: dict[str, int | None]) -> int:
        unknown = sorted(set(aliases) - set(self.node_aliases))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unexpected keyword argument{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}"
            )
        given = {name: value for name, value in {"nodes": nodes, **aliases}.items() if value is not None}
        if len(set(given.values())) > 1:
            raise ValueError(f"conflicting pool sizes: {given}")
        return next(iter(given.values())) if given else self._default_nodes()

    @staticmethod
    def _check_nodes(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"nodes must be a positive integer, got {value!r}")
        return value

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
        return _wait(self._amap("map", function, iterables, options))

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

    def _amap(
        self,
        method: str,
        function: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        options: dict[str, Any],
        *,
        star: bool | None = None,
    ) -> MapResult[T]:
        items = list(_source(method, iterables))
        handle: MapResult[T] = MapResult()
        star = len(iterables) > 1 if star is None else star
        return self._eager(method, function, items, star, {}, options, handle, single=False)

    def smap(self, function: Callable[..., T], iterable: Iterable[Iterable[Any]], **options: Any) -> list[T]:
        """``function(*item)`` for every item, in parallel (``itertools.starmap``)."""
        return _wait(self._amap("smap", function, (iterable,), options, star=True))

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
        return _wait(self._apply("pipe", function, args, kwds, {}))

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

    def _apply(
        self,
        method: str,
        function: Callable[..., T],
        args: tuple[Any, ...],
        kwds: dict[str, Any],
        overrides: dict[str, Any],
    ) -> AsyncResult[T]:
        handle: AsyncResult[T] = AsyncResult()
        return self._eager(method, function, [args], True, kwds, overrides, handle, single=True)

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Accept no more work; the workers exit once the work handed out is done."""
        with self._lock:
            if self._state in (_CLOSED, _TERMINATED):
                return
            started = self._workers_up
            self._state = _CLOSED
            jobs = list(self._jobs)
            self._work_ready.notify_all()
        for job in jobs:
            job.close_input()
        if started:
            self._stop_workers(kill=False)

    def terminate(self) -> None:
        """Stop the workers now; unfinished results are cancelled."""
        with self._lock:
            if self._state == _TERMINATED:
                return
            started = self._workers_up
            self._state = _TERMINATED
            jobs = list(self._jobs)
            self._work_ready.notify_all()
            self._watch_cond.notify_all()
        for job in jobs:
            job.abort()
        if started:
            self._stop_workers(kill=True)

    def _break(self, reason: BaseException) -> None:
        """The pool cannot work (say, its initializer fails): fail all its work
        with ``reason``, stop the workers and accept nothing more."""
        with self._lock:
            if self._state == _TERMINATED:
                return
            self._state = _TERMINATED
            self._broken = reason
            jobs = list(self._jobs)
            self._work_ready.notify_all()
            self._watch_cond.notify_all()
        for job in jobs:
            job.fail(reason)
        self._stop_workers(kill=True)

    def join(self) -> None:
        """Wait for the workers to exit, after :meth:`close` or :meth:`terminate`.

        Raises:
            ValueError: the pool is still running.
        """
        with self._lock:
            if self._state in (_NEW, _RUNNING):
                raise ValueError(f"{self!r} is still running: call close() or terminate() before join()")
        if self._workers_up:
            self._join_workers()
            self._workers_up = False
        with self._lock:
            self._watch_cond.notify_all()
            watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.join()
        self._join_callbacks()  # multiprocessing-style callbacks still due

    def restart(self, force: bool = False) -> None:
        """Start fresh workers on a closed (or, with ``force``, running) pool.

        Raises:
            ValueError: the pool is running and ``force`` is false.
        """
        if self._state == _RUNNING and not force:
            raise ValueError(f"{self!r} is running: close() it first, or restart(force=True)")
        self.clear()
        self._ensure_started()

    def clear(self) -> None:
        """Stop and forget the workers; the next call starts new ones."""
        if self._state == _RUNNING:
            self.terminate()
        if self._state in (_CLOSED, _TERMINATED):
            self.join()
        with self._lock:
            self._state = _NEW
            self._broken = None
            self._queue.clear()
            self._jobs.clear()
            self._stats = StatsRecorder()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As :meth:`concurrent.futures.Executor.shutdown`: close, optionally cancel, join."""
        if cancel_futures:
            with self._lock:
                jobs = list(self._jobs)
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
        return PoolExecutor(self)

    def __enter__(self: T) -> T:
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

    def _take_batch(self) -> Batch | None:
        """The next batch to run, or ``None`` if none is ready now."""
        with self._lock:
            return self._take_locked()

    def _wait_batch(self) -> Batch | None:
        """The next batch to run, waiting for one; ``None`` means: exit.

        Returns ``None`` once the pool is terminated, or closed with nothing
        left to run or in flight.
        """
        with self._lock:
            while True:
                if self._state == _TERMINATED:
                    return None
                batch = self._take_locked()
                if batch is not None:
                    return batch
                if self._state == _CLOSED and not self._jobs:
                    return None
                self._work_ready.wait(_WAIT_SLICE)

    @property
    def _draining(self) -> bool:
        """Whether the pool is closed and has nothing left to run."""
        return self._state in (_CLOSED, _TERMINATED) and not self._jobs

    # ---------------------------------------------------------- internals

    def _take_locked(self) -> Batch | None:
        queue = self._queue
        while queue:
            job = queue[0]
            batch = job.take()
            if not job.has_ready:
                queue.popleft()
                job.queued = False
            if batch is not None:
                return batch
        return None

    def _accepting(self) -> bool:
        return self._state in (_NEW, _RUNNING)

    def _enqueue(self, job: Job) -> None:
        """List ``job`` as having ready batches (under the lock)."""
        if not job.queued:
            job.queued = True
            self._queue.append(job)
        self._work_ready.notify_all()

    def _job_complete(self, job: Job) -> None:
        """Forget a finished job (under the lock)."""
        self._jobs.discard(job)
        if job.queued:
            self._queue.remove(job)
            job.queued = False
        self._work_ready.notify_all()

    def _ensure_started(self) -> None:
        with self._start_lock:
            with self._lock:
                if self._state != _NEW:
                    return
                self._state = _RUNNING
            self._start_workers()
            self._workers_up = True

    def _check_open(self, method: str) -> None:
        if not self._accepting():
            why = f"broken ({self._broken!r})" if self._broken is not None else self._state
            raise PoolClosedError(
                f"{type(self).__name__}.{method}() on {self!r}: the pool is {why}; no new work is accepted"
            ) from self._broken

    def _options(self, overrides: dict[str, Any], method: str) -> TaskOptions:
        return self._defaults.merged(overrides, call=f"{type(self).__name__}.{method}()")

    def _chunksize(self, options: TaskOptions, length: int | None, function: Callable[..., Any]) -> int:
        """Tasks per batch: as asked; 1 with a timeout; else from the size and the
        cost of the function's earlier tasks.

        Without history it is the stdlib's choice, four batches per worker. Once
        the function's tasks are known to be cheap, batches grow to about
        :attr:`batch_seconds` of work (still at least one per worker), so that a
        map of cheap tasks is not a string of round trips.
        """
        if options.chunksize is not None:
            return options.chunksize
        if options.timeout is not None:
            return 1
        workers = self._capacity()
        size = math.ceil(length / (4 * workers)) if length else 1
        cost = self._stats.task_seconds(function)
        if cost is not None and size * cost < self.batch_seconds:
            fitting = math.ceil(self.batch_seconds / max(cost, 1e-9))
            if not length:
                return min(_LAZY_BATCH_CAP, fitting)
            rounds = math.ceil(length / (min(fitting, length) * workers))  # every worker gets as many
            size = math.ceil(length / (rounds * workers))
        return max(1, size)

    def _capacity(self) -> int:
        """The workers that batches are spread over: ``nodes``, unless the pool has others too."""
        return self._nodes

    def _listener(self, options: TaskOptions, total: int | None, method: str) -> ProgressListener | None:
        progress = options.progress
        if progress is True:
            return progress_bar(total, f"{type(self).__name__}.{method}")
        if progress:
            return progress
        return None

    def _listener_failed(self, listener: object, error: BaseException) -> None:
        warn_user(f"progress consumer {listener!r} raised {error!r}; it gets no more events")

    def _eager(
        self,
        method: str,
        function: Callable[..., Any],
        items: list[Any],
        star: bool,
        kwargs: dict[str, Any],
        overrides: dict[str, Any],
        handle: H,
        *,
        single: bool,
    ) -> H:
        _check_callable(method, function)
        options = self._options(overrides, method)
        self._check_open(method)
        job = Job(
            self,
            function,
            star=star,
            kwargs=kwargs,
            options=options,
            chunksize=self._chunksize(options, len(items), function),
            listener=self._listener(options, len(items), method),
            handle=handle,
            single=single,
        )
        handle._job = job
        batches = job.cut(items, 0)
        self._ensure_started()
        try:
            with self._lock:
                self._check_open(method)
                self._jobs.add(job)
                events = job.load(batches, len(items))
                done = job._check_complete()
            job._emit(events)
            self._wake()
        except BaseException:
            self._abandon(job)
            raise
        if done:
            job._deliver()
        return handle

    @staticmethod
    def _task_items(method: str, function: object, iterables: tuple[Iterable[Any], ...]) -> Iterator[Any]:
        """The items of a map call, one per task, after the checks every pool
        makes of its arguments (for pools that read their input their own way)."""
        _check_callable(method, function)
        return _source(method, iterables)

    def _lazy(
        self,
        method: str,
        function: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        overrides: dict[str, Any],
        *,
        star: bool,
        ordered: bool,
    ) -> ResultIterator[Any]:
        _check_callable(method, function)
        options = self._options(overrides, method)
        source = _source(method, iterables)
        self._check_open(method)
        total = _length_hint(iterables)
        chunksize = self._chunksize(options, total, function)
        job = Job(
            self,
            function,
            star=star,
            kwargs={},
            options=options,
            chunksize=chunksize,
            listener=self._listener(options, total, method),
        )
        ahead = self._read_ahead(chunksize)
        job.attach(source, max(ahead, chunksize))
        self._ensure_started()
        try:
            with self._lock:
                self._check_open(method)
                self._jobs.add(job)
            if ahead:
                job.feed()
        except BaseException:
            self._abandon(job)
            raise
        return ResultIterator(job, ordered=ordered)

    def _read_ahead(self, chunksize: int) -> int:
        """How many tasks a lazy map (``imap``...) reads from its input ahead of its
        consumer: enough to keep every worker busy, starting at the call.

        A pool that returns 0 reads nothing at the call, and then one batch only
        when the consumer has taken every result before it, as builtin ``map``
        does (``SerialPool``: with batches of one, each item is read just before
        its task runs).
        """
        return chunksize * max(8, 4 * self._nodes)

    def _abandon(self, job: Job) -> None:
        """A call failed (Ctrl-C, say) before its caller got a handle: end its job.

        Nobody could wait for or cancel it, so it must not run on, nor leave
        the pool waiting for it on ``join``.
        """
        job.abort()
        self._interrupted(job)

    # ------------------------------------------------------------ timeouts

    def _watch(self, batch: Batch, deadline: float) -> None:
        """Fail ``batch`` if it is still running at ``deadline`` (under the lock)."""
        heapq.heappush(self._deadlines, (deadline, next(self._deadline_ids), batch))
        if self._watchdog is None:
            self._watchdog = threading.Thread(
                target=self._watch_deadlines, name=f"manymap-watchdog-{id(self):x}", daemon=True
            )
            self._watchdog.start()
        self._watch_cond.notify()

    def _watch_deadlines(self) -> None:
        deadlines = self._deadlines
        idle = False
        with self._lock:
            while True:
                if self._state == _TERMINATED or not deadlines:
                    deadlines.clear()
                    if self._watchdog is threading.current_thread():
                        self._watchdog = (
                            None  # the next deadline starts another: an idle pool holds no thread
                        )
                    return
                if not deadlines and idle:  # a new deadline starts a new watchdog
                    self._watchdog = None  # (this thread must not keep the pool alive)
                    return
                idle = not deadlines
                now = time.monotonic()
                expired = []
                while deadlines and (deadlines[0][0] <= now or deadlines[0][2].settled):
                    expired.append(heapq.heappop(deadlines)[2])
                if expired:
                    self._lock.release()
                    try:
                        for batch in expired:
                            if batch.job.time_out(batch):
                                self._timed_out(batch)
                    finally:
                        self._lock.acquire()
                    continue
                wait = deadlines[0][0] - now if deadlines else _WAIT_SLICE
                self._watch_cond.wait(min(wait, _WAIT_SLICE))


def _check_callable(method: str, function: object) -> None:
    if not callable(function):
        raise TypeError(f"{method}() needs a callable as its first argument, got {function!r}")


def _source(method: str, iterables: tuple[Iterable[Any], ...]) -> Iterator[Any]:
    """One item per task: the item itself, or a tuple across several iterables."""
    if not iterables:
        raise TypeError(f"{method}() needs at least one iterable")
    for position, iterable in enumerate(iterables):
        if not isinstance(iterable, Iterable):
            raise TypeError(
                f"{method}() argument {position + 2} must be iterable, got {type(iterable).__name__}"
            )
    if len(iterables) == 1:
        return iter(iterables[0])
    return zip(*iterables, strict=False)  # stop at the shortest, as builtin map does


def _length_hint(iterables: tuple[Iterable[Any], ...]) -> int | None:
    lengths = [len(it) for it in iterables if hasattr(it, "__len__")]  # type: ignore[arg-type]
    return min(lengths) if len(lengths) == len(iterables) else None


class NodesAlias:
    """:attr:`AbstractWorkerPool.nodes` under another name, such as pathos' ``ncpus``.

    ``ncpus = NodesAlias()`` in a pool class reads and resizes like ``nodes``.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.__doc__ = f"The number of workers (pathos' name ``{name}`` of ``nodes``)."

    @overload
    def __get__(self, pool: None, owner: type) -> NodesAlias: ...
    @overload
    def __get__(self, pool: AbstractWorkerPool, owner: type) -> int: ...
    def __get__(self, pool: AbstractWorkerPool | None, owner: type) -> NodesAlias | int:
        return self if pool is None else pool.nodes

    def __set__(self, pool: AbstractWorkerPool, value: int | None) -> None:
        pool.nodes = value

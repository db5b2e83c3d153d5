"""From a call to a job: how a pool turns ``map``, ``imap``, ``apipe``... into work.

How data flows (the pool -> job step of every call): the options are merged
over the pool's defaults and checked; the batch size is chosen
(``_batching.py``); an :class:`~manymap.launcher._eager_job.EagerJob` cuts
the whole input into batches, encoded by the pool in the caller's thread,
or a :class:`~manymap.launcher._lazy_job.LazyJob` is given its input to
read later. The pool is started if it is new, the job is counted by the
pool's scheduler, and the eager job is loaded and launched (its batches
queued, the workers woken; ``_launch``). From there on the job talks to the scheduler
only, and settles the call's handle: an :class:`~manymap.launcher.AsyncResult`
the caller holds (``amap``, ``apipe``...), or a
:class:`~manymap.launcher._results.CallResult` only the blocked caller waits
for (``map``, ``pipe``...). A call that fails before its caller holds a handle (Ctrl-C, say)
abandons its job so that nothing runs on unseen.

:class:`JobSubmission` is a base of
:class:`~manymap.launcher.AbstractWorkerPool`; pools override its hooks
(``_chunksize``, ``_taper``, ``_read_ahead``, ``_capacity``, ``_lazy``, ``_map_job``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from manymap.launcher._arguments import check_callable, length_hint, task_list, task_source
from manymap.launcher._batching import choose_chunksize, read_ahead
from manymap.launcher._eager_job import EagerJob
from manymap.launcher._events import ProgressListener
from manymap.launcher._options import TaskOptions
from manymap.launcher._results import CallResult, ResultIterator

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    from manymap.launcher._batch import Batch
    from manymap.launcher._futures import AsyncResult, MapResult
    from manymap.launcher._job import Job
    from manymap.launcher._scheduler import PoolScheduler

    T = TypeVar("T")
    H = TypeVar("H", bound=AsyncResult[Any] | CallResult[Any])

__all__ = ["JobSubmission"]


class JobSubmission:
    """The pool's side of the pool -> job step (a base of ``AbstractWorkerPool``)."""

    batch_seconds: ClassVar[float]
    _scheduler: PoolScheduler
    _defaults: TaskOptions
    _nodes: int
    _lock: threading.Lock

    if TYPE_CHECKING:

        def _check_open(self, method: str) -> None: ...
        def _ensure_started(self) -> None: ...
        def _interrupted(self, job: Job) -> None: ...
        def _wait(self, start: Callable[[Any], AsyncResult[T] | CallResult[T]]) -> T: ...

    def _amap(
        self,
        method: str,
        function: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        options: dict[str, Any],
        *,
        star: bool | None = None,
    ) -> MapResult[T]:
        """A map whose caller gets a handle (``amap``, ``map_async``...)."""
        from manymap.launcher._futures import MapResult  # (import time: see _futures.py)

        handle: MapResult[T] = MapResult()
        return self._map_job(method, function, iterables, options, handle, star=star)

    def _map(
        self,
        method: str,
        function: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        options: dict[str, Any],
        *,
        star: bool | None = None,
    ) -> list[T]:
        """A map whose caller blocks on it (``map``, ``smap``, ``starmap``)."""
        return self._wait(
            lambda wait: self._map_job(
                method, function, iterables, options, CallResult(), star=star, wait=wait
            )
        )

    def _map_job(
        self,
        method: str,
        function: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        options: dict[str, Any],
        handle: H,
        *,
        star: bool | None,
        wait: object = None,
    ) -> H:
        """Start a map settling ``handle`` with the list of its results (the hook
        of a pool that maps its own way, ``SerialPool``)."""
        items = task_list(method, iterables)
        star = len(iterables) > 1 if star is None else star
        return self._eager(method, function, items, star, {}, options, handle, single=False, wait=wait)

    def _apply(
        self,
        method: str,
        function: Callable[..., T],
        args: tuple[Any, ...],
        kwds: dict[str, Any],
        overrides: dict[str, Any],
    ) -> AsyncResult[T]:
        """A call of one task whose caller gets a handle (``apipe``, ``submit``...)."""
        from manymap.launcher._futures import AsyncResult  # (import time: see _futures.py)

        handle: AsyncResult[T] = AsyncResult()
        return self._eager(method, function, [args], True, kwds, overrides, handle, single=True)

    def _call(
        self,
        method: str,
        function: Callable[..., T],
        args: tuple[Any, ...],
        kwds: dict[str, Any],
        overrides: dict[str, Any],
    ) -> T:
        """A call of one task whose caller blocks on it (``pipe``, ``apply``)."""
        return self._wait(
            lambda wait: self._eager(
                method, function, [args], True, kwds, overrides, CallResult(), single=True, wait=wait
            )
        )

    def _options(self, overrides: dict[str, Any], method: str) -> TaskOptions:
        if not overrides:  # most calls (no f-string for an error that cannot happen)
            return self._defaults
        return self._defaults.merged(overrides, call=f"{type(self).__name__}.{method}()")

    def _chunksize(self, options: TaskOptions, length: int | None, function: Callable[..., Any]) -> int:
        """Tasks per batch (see ``_batching.py``): as asked; 1 with a timeout; else
        from the size and the cost of the function's earlier tasks."""
        if options.chunksize is not None:
            return options.chunksize
        return choose_chunksize(
            chunksize=None,
            timeout=options.timeout,
            length=length,
            workers=self._capacity(),
            cost=None if options.timeout is not None else self._scheduler.stats.task_seconds(function),
            batch_seconds=self.batch_seconds,
        )

    def _taper(self, options: TaskOptions, chunksize: int, function: Callable[..., Any]) -> int:
        """Workers the automatic batches (``chunksize`` tasks) of a map with known
        input are tapered over (``_batching.batch_sizes``); 0, the default: none."""
        return 0

    def _capacity(self) -> int:
        """The workers that batches are spread over: ``nodes``, unless the pool has others too."""
        return self._nodes

    def _listener(self, options: TaskOptions, total: int | None, method: str) -> ProgressListener | None:
        progress = options.progress
        if progress is True:
            from manymap.launcher._progress import progress_bar  # loaded by the first bar (import time)

            return progress_bar(total, f"{type(self).__name__}.{method}")
        if progress:
            return progress
        return None

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
        wait: object = None,
    ) -> H:
        check_callable(method, function)
        options = self._options(overrides, method)
        self._check_open(method)
        count = len(items)
        if count > 1:
            chunksize = self._chunksize(options, count, function)
            taper = self._taper(options, chunksize, function)
        else:  # one task is one batch, whatever the size (no look at the function's cost)
            chunksize, taper = 1, 0
        job = EagerJob(
            self._scheduler,
            function,
            star=star,
            kwargs=kwargs,
            options=options,
            chunksize=chunksize,
            taper=taper,
            listener=self._listener(options, count, method),
            handle=handle,
            single=single,
        )
        handle._job = job
        job.wait = wait
        batches = job.cut(items, 0)
        self._ensure_started()
        try:
            self._launch(method, job, batches, count)
        except BaseException:
            self._abandon(job)
            raise
        return handle

    def _launch(self, method: str, job: EagerJob, batches: list[Batch], count: int) -> None:
        """Queue the eager ``job``'s ``batches`` (``count`` tasks) and wake the workers.

        A pool may send a blocked caller's one batch to an idle worker at once
        instead (``ManagedWorkerPool``).
        """
        with self._lock:
            self._check_open(method)
            self._scheduler.add(job)
            job.load(batches, count)
        job.launch()

    @staticmethod
    def _task_items(method: str, function: object, iterables: tuple[Iterable[Any], ...]) -> Iterator[Any]:
        """The items of a map call, one per task, after the checks every pool
        makes of its arguments (for pools that read their input their own way)."""
        check_callable(method, function)
        return task_source(method, iterables)

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
        check_callable(method, function)
        options = self._options(overrides, method)
        source = task_source(method, iterables)
        self._check_open(method)
        total = length_hint(iterables)
        chunksize = self._chunksize(options, total, function)
        ahead = self._read_ahead(chunksize)
        from manymap.launcher._lazy_job import LazyJob  # imap and uimap only (import time)

        job = LazyJob(
            self._scheduler,
            function,
            star=star,
            kwargs={},
            options=options,
            chunksize=chunksize,
            listener=self._listener(options, total, method),
            source=source,
            window=max(ahead, chunksize),
        )
        self._ensure_started()
        try:
            with self._lock:
                self._check_open(method)
                self._scheduler.add(job)
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
        return read_ahead(chunksize, self._nodes)

    def _abandon(self, job: Job) -> None:
        """A call failed (Ctrl-C, say) before its caller got a handle: end its job.

        Nobody could wait for or cancel it, so it must not run on, nor leave
        the pool waiting for it on ``join``.
        """
        job.abort()
        self._interrupted(job)

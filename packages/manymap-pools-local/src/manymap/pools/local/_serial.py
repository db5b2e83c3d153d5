"""``SerialPool``: the pool contract, run in the caller's thread.

For debugging and for the serial end of "one code base from serial to
distributed". Every map is the builtin ``map`` (as pathos' ``SerialPool.map``
is): each input item is read just before the task that takes it runs, in the
thread that asks, so an input generator and a task that share state (both
draw from ``random``, say) give exactly what ``list(map(f, items))`` gives,
and a failing task ends the map. ``amap`` and ``asmap`` return a finished
result; ``imap``, ``uimap`` and ``ismap`` read and run nothing until their
first result is asked for. A task may call maps of its own pool: they run
inline.

A map without ``timeout``, ``retries`` or ``progress`` is a plain loop (see
``_inline.py``); with them it is the launcher's job, reading one item per
batch, never ahead of the consumer. A per-task ``timeout`` is reported once
the task has returned; nothing can interrupt it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from manymap.launcher import AbstractWorkerPool, PoolStats, ResultIterator
from manymap.launcher.lowlevel import TaskOptions, run_calls
from manymap.pools.local._inline import InlineResults, run_inline

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from manymap.launcher import AsyncResult
    from manymap.launcher.lowlevel import CallResult

    H = TypeVar("H", bound=AsyncResult[Any] | CallResult[Any])

__all__ = ["SerialPool"]


class SerialPool(AbstractWorkerPool):
    """Runs every task in the calling thread, in order, as builtin ``map`` does.

    Args:
        nodes: accepted for a uniform constructor; always 1.
        **options: default task options (``chunksize``, ``timeout``,
            ``retries``, ``progress``). ``chunksize`` is checked but has no
            effect: each item is read just before its task runs.
    """

    node_aliases = ()

    def __init__(self, nodes: int | None = None, **options: object) -> None:
        super().__init__(1, **options)  # type: ignore[arg-type]
        self._inline_stats: deque[tuple[str, int, int, float]] = deque()  # reported, not yet recorded

    @property
    def nodes(self) -> int:
        """Always 1: the caller is the one worker. A size assigned (or ``None``)
        is checked and changes nothing, as the constructor's ``nodes``."""
        return 1

    @nodes.setter
    def nodes(self, value: int | None) -> None:
        if value is not None:
            self._check_nodes(value)

    def _default_nodes(self) -> int:
        return 1

    # ------------------------------------------- reading the input lazily

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
        inline = self._inline(method, function, iterables, overrides, star)
        if inline is None:
            return super()._lazy(method, function, iterables, overrides, star=star, ordered=ordered)
        return InlineResults(inline)

    def _inline(
        self,
        method: str,
        function: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        overrides: dict[str, Any],
        star: bool,
    ) -> Iterator[Any] | None:
        """The plain loop of a map without ``timeout``, ``retries`` or ``progress``, else ``None``."""
        options = self._options(overrides, method)
        if options.timeout is not None or options.retries or options.progress:
            return None
        source = self._task_items(method, function, iterables)
        self._check_open(method)
        self._ensure_started()
        return run_inline(self, function, source, star=star)

    def _read_ahead(self, chunksize: int) -> int:
        return 0  # nothing read before the consumer asks: builtin map

    def _chunksize(self, options: TaskOptions, length: int | None, function: Callable[..., Any]) -> int:
        return 1  # one item read, one task run

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
        # An eager map is the lazy one, run to its end before returning: each
        # item is read just before its task, never the whole input first.
        star = len(iterables) > 1 if star is None else star
        results = self._inline(method, function, iterables, options, star) or super()._lazy(
            method, function, iterables, options, star=star, ordered=True
        )
        try:
            values = list(results)
        except (KeyboardInterrupt, SystemExit):
            raise  # Ctrl-C in the caller's thread: the map is over, nothing else runs
        except BaseException as error:  # the task's (or the input's) error, raised by get()
            handle._deliver(error=error)
        else:
            handle._deliver(values)
        return handle

    def _record_inline(self, worker: str, *, tasks: int, failed: int, busy: float) -> None:
        # Never waits for the pool's lock: an abandoned inline map may be
        # finalized by the garbage collector while this thread holds it.
        self._inline_stats.append((worker, tasks, failed, busy))
        if self._lock.acquire(blocking=False):
            try:
                self._fold_inline_stats()
            finally:
                self._lock.release()

    def _fold_inline_stats(self) -> None:
        """Record what inline maps reported (under the lock)."""
        pending = self._inline_stats
        while pending:
            worker, tasks, failed, busy = pending.popleft()
            self._stats.record(worker, None, tasks, failed, busy)

    def stats(self) -> PoolStats:
        with self._lock:
            self._fold_inline_stats()
        return super().stats()

    # ----------------------------------------------------- the "workers"

    def _start_workers(self) -> None:
        pass

    def _stop_workers(self, *, kill: bool) -> None:
        pass

    def _join_workers(self) -> None:
        pass

    def _resize(self, nodes: int) -> None:
        pass  # a serial pool has one worker, the caller, whatever it is called

    def _wake(self) -> None:
        # Run what is queued, now, in this thread. A task that maps on this
        # same pool gets here again from inside the loop: its tasks run
        # inline (the outer map has only its running task out, none queued).
        worker = f"serial[{threading.current_thread().name}]"
        while (batch := self._take_batch()) is not None:
            batch.start(worker)
            values, failures = run_calls(batch.function, batch.items, star=batch.star, kwargs=batch.kwargs)
            batch.finish(values, failures)

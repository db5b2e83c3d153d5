"""Pool statistics: what each worker did, and totals.

The bookkeeping (``_job.py``) records every settled batch here, so every
pool reports the same figures without a line of its own. ``stats()`` returns
a frozen :class:`PoolStats` snapshot.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable

from manymap.launcher._record import FrozenRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["PoolStats", "WorkerStats"]


class WorkerStats(FrozenRecord):
    """What one worker has done since the pool started.

    Attributes:
        worker: the worker's id.
        host: the host it runs on.
        tasks: tasks it finished or failed.
        failed: of those, tasks that raised.
        lost: tasks lost with it (died, or killed for a timeout).
        busy: seconds it spent running tasks.
    """

    _fields = ("worker", "host", "tasks", "failed", "lost", "busy")
    worker: str
    host: str
    tasks: int
    failed: int
    lost: int
    busy: float

    def __init__(
        self, worker: str, host: str, tasks: int = 0, failed: int = 0, lost: int = 0, busy: float = 0.0
    ) -> None:
        self._init(worker=worker, host=host, tasks=tasks, failed=failed, lost=lost, busy=busy)


class PoolStats(FrozenRecord):
    """A snapshot of a pool's statistics.

    Attributes:
        nodes: the pool's size.
        tasks: tasks that finished or failed, over all workers.
        failed: tasks that raised.
        lost: tasks whose worker died or timed out (retried or failed).
        workers_lost: workers that died or were killed under a task.
        busy: seconds of task time over all workers.
        workers: per worker id.
    """

    _fields = ("nodes", "tasks", "failed", "lost", "workers_lost", "busy", "workers")
    nodes: int
    tasks: int
    failed: int
    lost: int
    workers_lost: int
    busy: float
    workers: dict[str, WorkerStats]

    def __init__(
        self,
        nodes: int,
        tasks: int,
        failed: int,
        lost: int,
        workers_lost: int,
        busy: float,
        workers: dict[str, WorkerStats] | None = None,
    ) -> None:
        self._init(
            nodes=nodes,
            tasks=tasks,
            failed=failed,
            lost=lost,
            workers_lost=workers_lost,
            busy=busy,
            workers={} if workers is None else workers,
        )

    def as_dict(self) -> dict[str, object]:
        """The snapshot as plain data (for JSON)."""
        return {
            "nodes": self.nodes,
            "tasks": self.tasks,
            "failed": self.failed,
            "lost": self.lost,
            "workers_lost": self.workers_lost,
            "busy": self.busy,
            "workers": {
                name: {"host": w.host, "tasks": w.tasks, "failed": w.failed, "lost": w.lost, "busy": w.busy}
                for name, w in self.workers.items()
            },
        }


_MAX_COSTS = 256


def _cost_key(function: Callable[..., Any]) -> object:
    # A lambda made afresh at every call has the same code object each time;
    # so has the function under a partial made afresh.
    if isinstance(function, functools.partial):
        function = function.func
    return getattr(function, "__code__", None) or function


class _Tally:
    __slots__ = ("busy", "failed", "host", "lost", "tasks")

    def __init__(self, host: str) -> None:
        self.host = host
        self.tasks = 0
        self.failed = 0
        self.lost = 0
        self.busy = 0.0


class StatsRecorder:
    """Accumulates per-worker figures and per-function task costs. Called under the pool's lock."""

    def __init__(self) -> None:
        self._host = socket.gethostname()
        self._workers: dict[str, _Tally] = {}
        self._workers_lost = 0
        self._costs: dict[object, float] = {}  # seconds per task, by the function's code

    def record_cost(self, function: Callable[..., Any], tasks: int, busy: float) -> None:
        """A batch of ``tasks`` of ``function`` took ``busy`` seconds."""
        if tasks <= 0:
            return
        key = _cost_key(function)
        each = busy / tasks
        previous = self._costs.get(key)
        if previous is None and len(self._costs) >= _MAX_COSTS:
            self._costs.clear()
        self._costs[key] = each if previous is None else 0.5 * previous + 0.5 * each

    def task_seconds(self, function: Callable[..., Any]) -> float | None:
        """The recent average seconds per task of ``function``, if known."""
        return self._costs.get(_cost_key(function))

    def _tally(self, worker: str, host: str | None) -> _Tally:
        tally = self._workers.get(worker)
        if tally is None:
            tally = self._workers[worker] = _Tally(host or self._host)
        return tally

    def record(self, worker: str, host: str | None, tasks: int, failed: int, busy: float) -> None:
        """A batch of ``tasks`` finished on ``worker``, ``failed`` of them raising."""
        tally = self._tally(worker, host)
        tally.tasks += tasks
        tally.failed += failed
        tally.busy += busy

    def record_loss(self, worker: str, host: str | None, tasks: int, worker_died: bool) -> None:
        """``tasks`` were lost with ``worker`` (it died, or they timed out)."""
        self._tally(worker, host).lost += tasks
        self._workers_lost += worker_died

    def snapshot(self, nodes: int) -> PoolStats:
        """The figures so far."""
        workers = {
            name: WorkerStats(name, t.host, t.tasks, t.failed, t.lost, t.busy)
            for name, t in self._workers.items()
        }
        return PoolStats(
            nodes=nodes,
            tasks=sum(w.tasks for w in workers.values()),
            failed=sum(w.failed for w in workers.values()),
            lost=sum(w.lost for w in workers.values()),
            workers_lost=self._workers_lost,
            busy=sum(w.busy for w in workers.values()),
            workers=workers,
        )

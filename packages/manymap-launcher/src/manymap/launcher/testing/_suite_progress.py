"""Conformance: the task events of ``progress``, the progress bar, and ``stats()``.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): every task reported once (failures and ``imap`` included),
``progress`` as a pool default, a progress bar, a consumer that raises does
not break the map, and the counts of ``stats()``.
"""

from __future__ import annotations

import threading

import pytest

from manymap.launcher import (
    AbstractWorkerPool,
    EventKind,
    TaskEvent,
)
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._suite_part import SuitePart

__all__ = ["ProgressConformance"]


class ProgressConformance(SuitePart):
    """Progress events and stats, as tests (see the module)."""

    # ------------------------------------------------- progress and stats

    def test_progress_events_count_every_task_once(self, pool: AbstractWorkerPool) -> None:
        events: list[TaskEvent] = []
        lock = threading.Lock()

        def record(event: TaskEvent) -> None:
            with lock:
                events.append(event)

        assert pool.map(tasks.square, range(25), chunksize=4, progress=record) == [x * x for x in range(25)]
        for kind in (EventKind.SUBMITTED, EventKind.STARTED, EventKind.FINISHED):
            indices = sorted(e.index for e in events if e.kind is kind)
            assert indices == list(range(25)), kind
        assert not [e for e in events if e.kind in (EventKind.FAILED, EventKind.RETRIED)]
        finished = [e for e in events if e.kind is EventKind.FINISHED]
        assert all(e.worker and e.duration is not None and e.duration >= 0 for e in finished)
        assert len({e.job for e in events}) == 1

    def test_progress_events_of_failures_and_imap(self, pool: AbstractWorkerPool) -> None:
        events: list[TaskEvent] = []
        lock = threading.Lock()

        def record(event: TaskEvent) -> None:
            with lock:
                events.append(event)

        with pytest.raises(ValueError):
            pool.map(tasks.fail_on, range(4), chunksize=1, progress=record)
        failed = [e for e in events if e.kind is EventKind.FAILED]
        assert [e.index for e in failed] == [3]
        assert isinstance(failed[0].error, ValueError)
        events.clear()
        assert list(pool.imap(tasks.square, range(12), progress=record)) == [x * x for x in range(12)]
        assert sorted(e.index for e in events if e.kind is EventKind.FINISHED) == list(range(12))

    def test_progress_as_pool_default(self) -> None:
        events: list[TaskEvent] = []
        lock = threading.Lock()

        def record(event: TaskEvent) -> None:
            with lock:
                events.append(event)

        with self.make_pool(self.nodes, progress=record) as pool:
            pool.map(tasks.square, range(6))
            pool.map(tasks.square, range(6), progress=False)
        assert sorted(e.index for e in events if e.kind is EventKind.FINISHED) == list(range(6))

    def test_progress_bar(self, pool: AbstractWorkerPool, capsys: pytest.CaptureFixture[str]) -> None:
        assert pool.map(tasks.square, range(30), progress=True) == [x * x for x in range(30)]
        drawn = capsys.readouterr().err
        assert "30" in drawn
        assert f"{type(pool).__name__}.map" in drawn  # the bar names the call, not the amap behind it

    def test_broken_progress_consumer_does_not_break_the_map(self, pool: AbstractWorkerPool) -> None:
        def broken(event: TaskEvent) -> None:
            raise RuntimeError("consumer broke")

        with pytest.warns(RuntimeWarning, match="consumer broke"):
            assert pool.map(tasks.square, range(6), progress=broken) == [x * x for x in range(6)]

    def test_stats(self, pool: AbstractWorkerPool) -> None:
        pool.map(tasks.square, range(40), chunksize=5)
        with pytest.raises(ValueError):
            pool.map(tasks.fail_on, [3])
        stats = pool.stats()
        assert stats.nodes == pool.nodes
        assert stats.tasks == 41
        assert stats.failed == 1
        assert sum(w.tasks for w in stats.workers.values()) == 41
        assert all(w.host for w in stats.workers.values())
        assert stats.as_dict()["tasks"] == 41

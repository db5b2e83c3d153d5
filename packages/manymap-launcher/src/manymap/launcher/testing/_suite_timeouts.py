"""Conformance: per-task timeouts, result waits with a timeout, and retries.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): a task over its ``timeout`` fails with ``TaskTimeoutError``
(per call or as the pool's default), ``get(timeout)`` gives up without
cancelling, and ``retries`` re-run a timed-out task.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from manymap.launcher import (
    AbstractWorkerPool,
    EventKind,
    ResultTimeoutError,
    TaskEvent,
    TaskTimeoutError,
)
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._base import WAIT
from manymap.launcher.testing._suite_part import SuitePart

__all__ = ["TimeoutConformance"]


class TimeoutConformance(SuitePart):
    """Timeouts and retries, as tests (see the module)."""

    # ------------------------------------------------------------ timeouts

    def test_task_timeout(self, pool: AbstractWorkerPool) -> None:
        with pytest.raises(TaskTimeoutError) as caught:
            pool.map(tasks.sleep_then, [0, self.slow_task, 0], [0, self.slow_task, 0], timeout=self.timeout)
        error = caught.value
        assert error.index == 1
        assert "task 1 ran over its timeout" in str(error)
        assert isinstance(error, TimeoutError)
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

    def test_timeout_as_a_pool_default(self) -> None:
        with self.make_pool(self.nodes, timeout=self.timeout) as pool:
            with pytest.raises(TaskTimeoutError):
                pool.pipe(tasks.sleep_then, 1, self.slow_task)
            assert pool.pipe(tasks.square, 3) == 9

    def test_result_get_timeout(self, pool: AbstractWorkerPool) -> None:
        result = pool.apipe(tasks.sleep_then, 1, 0.5)
        if not self.concurrent:
            assert result.get(0.01) == 1
            return
        with pytest.raises(ResultTimeoutError):
            result.get(0.01)
        with pytest.raises(TimeoutError):
            result.get(0.01)
        assert result.get(WAIT) == 1

    def test_retries_rerun_a_timed_out_task(self, pool: AbstractWorkerPool, tmp_path: Path) -> None:
        marker = str(tmp_path / "first-attempt")
        events: list[TaskEvent] = []
        result = pool.map(
            tasks.sleep_once,
            [marker],
            [self.slow_task],
            timeout=self.timeout,
            retries=1,
            progress=events.append,
        )
        assert result == ["again"]
        assert [e.kind for e in events if e.kind is EventKind.RETRIED] == [EventKind.RETRIED]

    def test_without_retries_a_timed_out_task_fails(self, pool: AbstractWorkerPool, tmp_path: Path) -> None:
        marker = str(tmp_path / "first-attempt")
        with pytest.raises(TaskTimeoutError):
            pool.map(tasks.sleep_once, [marker], [self.slow_task], timeout=self.timeout)

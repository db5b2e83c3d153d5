"""Conformance: a task's error reaches the caller as itself, and nothing else fails with it.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): the task's own exception type, its remote traceback and the
task's index; every failure counted; ``SystemExit`` in a task fails only
that task; errors in reading the input; bad arguments refused at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from manymap.launcher import (
    AbstractWorkerPool,
    RemoteTraceback,
)
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._base import WAIT
from manymap.launcher.testing._suite_part import SuitePart

__all__ = ["ErrorConformance"]


class ErrorConformance(SuitePart):
    """Task errors as the caller sees them, as tests (see the module)."""

    # ---------------------------------------------------------- errors

    def test_a_blocked_call_is_a_call_like_any_other(self, pool: AbstractWorkerPool) -> None:
        # pipe and apply, whose caller blocks, may take a shorter way to a ready worker
        # than apipe (ManagedWorkerPool sends them itself, without a job); nothing else
        # tells them apart: values, errors with their notes and traceback, stats.
        assert pool.pipe(abs, -1) == 1  # (the workers are up and ready)
        before = pool.stats()
        assert [pool.pipe(pow, i, 2) for i in range(20)] == [i * i for i in range(20)]
        assert pool.apply(divmod, (7, 2)) == (3, 1)
        assert pool.pipe(dict, a=1) == {"a": 1}
        with pytest.raises(ValueError, match="bad value 3") as blocked:
            pool.pipe(tasks.fail_on, 3)
        with pytest.raises(ValueError, match="bad value 3") as queued:
            pool.apipe(tasks.fail_on, 3).get(WAIT)
        for caught in (blocked, queued):
            assert isinstance(caught.value.__cause__, RemoteTraceback)
            assert "fail_on" in str(caught.value.__cause__)

        def where_aside(error: BaseException) -> list[str]:
            return [re.sub(r" on worker .*", "", note) for note in getattr(error, "__notes__", [])]

        assert where_aside(blocked.value) == where_aside(queued.value)
        assert any("task 0 failed on worker" in note for note in getattr(blocked.value, "__notes__", []))
        after = pool.stats()
        assert after.tasks - before.tasks == 20 + 1 + 1 + 2
        assert after.failed - before.failed == 2

    def test_task_error_keeps_type_traceback_and_index(self, pool: AbstractWorkerPool) -> None:
        with pytest.raises(ValueError, match="bad value 3") as caught:
            pool.map(tasks.fail_on, range(8), chunksize=1)
        error = caught.value
        assert isinstance(error.__cause__, RemoteTraceback)
        assert "fail_on" in str(error.__cause__)
        assert "raise ValueError" in str(error.__cause__)
        notes = getattr(error, "__notes__", [])
        assert any("task 3 failed on worker" in note for note in notes), notes

    def test_task_error_in_a_chunk_names_its_index(self, pool: AbstractWorkerPool) -> None:
        with pytest.raises(ValueError) as caught:
            pool.map(tasks.fail_on, range(20), chunksize=5)
        assert any("task 3 failed" in note for note in getattr(caught.value, "__notes__", []))

    def test_every_failure_is_counted(self, pool: AbstractWorkerPool) -> None:
        result = pool.amap(tasks.fail_on, [3, 1, 3, 3], chunksize=4)
        with pytest.raises(ValueError) as caught:
            result.get(WAIT)
        notes = " ".join(getattr(caught.value, "__notes__", []))
        assert "task 0 failed" in notes
        if self.concurrent:
            assert "2 other tasks failed (2, 3)" in notes
        else:  # builtin map: the first failure ends the map, nothing after it is read or run
            assert "other tasks failed" not in notes
        assert not result.successful()

    def test_error_in_imap_and_uimap(self, pool: AbstractWorkerPool) -> None:
        results = pool.imap(tasks.fail_on, range(6), chunksize=1)
        assert [next(results) for _ in range(3)] == [0, 1, 4]
        with pytest.raises(ValueError, match="bad value 3"):
            next(results)
        with pytest.raises(ValueError, match="bad value 3"):
            list(pool.uimap(tasks.fail_on, range(6), chunksize=1))

    def test_error_in_apipe(self, pool: AbstractWorkerPool) -> None:
        result = pool.apipe(tasks.fail_on, 3)
        with pytest.raises(ValueError, match="bad value 3") as caught:
            result.get(WAIT)
        assert isinstance(caught.value.__cause__, RemoteTraceback)
        assert not result.successful()

    def test_system_exit_in_a_task_fails_only_that_task(self, pool: AbstractWorkerPool) -> None:
        with pytest.raises(SystemExit, match="task 1 called exit"):
            pool.pipe(tasks.raise_exit, 1)
        assert pool.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]

    def test_pool_survives_task_errors(self, pool: AbstractWorkerPool) -> None:
        for _ in range(3):
            with pytest.raises(ValueError):
                pool.map(tasks.fail_on, range(5))
        assert pool.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]

    def test_input_error_is_raised(self, pool: AbstractWorkerPool) -> None:
        def broken() -> Iterator[int]:
            yield 1
            raise LookupError("input broke")

        with pytest.raises(LookupError, match="input broke"):
            pool.map(tasks.square, broken())
        with pytest.raises(LookupError, match="input broke"):
            list(pool.imap(tasks.square, broken()))

    def test_bad_arguments_fail_at_once(self, pool: AbstractWorkerPool) -> None:
        with pytest.raises(TypeError, match="callable"):
            pool.map(42, range(3))  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="at least one iterable"):
            pool.map(tasks.square)
        with pytest.raises(TypeError, match="must be iterable"):
            pool.map(tasks.square, 5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="unexpected option 'chunk_size'"):
            pool.map(tasks.square, range(3), chunk_size=2)
        with pytest.raises(ValueError, match="chunksize must be a positive integer"):
            pool.map(tasks.square, range(3), chunksize=0)
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            pool.map(tasks.square, range(3), timeout=-1)
        with pytest.raises(ValueError, match="retries must be a non-negative integer"):
            pool.map(tasks.square, range(3), retries=1.5)
        with pytest.raises(TypeError, match="progress must be"):
            pool.map(tasks.square, range(3), progress="yes")

    def test_bad_pool_arguments_fail_at_once(self) -> None:
        with pytest.raises(ValueError, match="nodes must be a positive integer"):
            self.make_pool(0)
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            self.make_pool(1, timeout=0)

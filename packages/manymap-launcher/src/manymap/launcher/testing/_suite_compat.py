"""The conformance tests of the interfaces other libraries expect of a pool.

:class:`CompatConformance` is part of
:class:`~manymap.launcher.testing.PoolConformance` (every pool runs it):

- ``pool.executor``, the strict :class:`concurrent.futures.Executor` view:
  ``map`` an iterator with ``timeout`` a deadline for the whole map,
  ``chunksize``, ``shutdown(wait, cancel_futures)``, futures for
  ``concurrent.futures.wait`` / ``as_completed``, ``run_in_executor``;
- schwimmbad's pool surface: ``size``, ``map(worker, tasks, callback=...)``,
  ``is_master``, ``is_worker``, ``wait``, ``close``, and a program written
  for schwimmbad's ``MultiPool`` (``_schwimmbad_example.py``)
  run unchanged.

CPython's own executor tests run on top of this, see
:func:`~manymap.launcher.testing.cpython_executor_tests`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from pathlib import Path
from typing import Any

import pytest

from manymap.launcher import AbstractWorkerPool, ExecutorShutdownError, PoolClosedError, PoolExecutor
from manymap.launcher.testing import _schwimmbad_example as schwimmbad_example
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._guards import eventually

__all__ = ["CompatConformance"]

WAIT = 60.0  # seconds any single result may take in the suite


class CompatConformance:
    """The executor view and schwimmbad's surface, as tests (mixed into ``PoolConformance``)."""

    nodes: int
    concurrent: bool
    slow_task: float
    timeout: float

    def make_pool(self, nodes: int = 2, **options: Any) -> AbstractWorkerPool:
        raise NotImplementedError  # pragma: no cover - PoolConformance subclasses supply it

    # ------------------------------------------------------ executor view

    def test_executor_view_is_an_executor(self, pool: AbstractWorkerPool) -> None:
        executor = pool.executor
        assert isinstance(executor, concurrent.futures.Executor)
        assert isinstance(executor, PoolExecutor)
        assert executor.pool is pool
        future = executor.submit(tasks.describe, 1, fn=2, self=3)
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(WAIT) == ((1,), {"fn": 2, "self": 3})

    def test_executor_map_is_an_ordered_iterator(self, pool: AbstractWorkerPool) -> None:
        results = pool.executor.map(tasks.square, range(30))
        assert iter(results) is results
        assert next(results) == 0
        assert list(results) == [x * x for x in range(1, 30)]
        assert list(pool.executor.map(pow, range(10), [2, 3, 4])) == [0, 1, 16]
        for chunksize in (1, 4, 50):
            assert list(pool.executor.map(tasks.square, range(13), chunksize=chunksize)) == [
                x * x for x in range(13)
            ]
        assert list(pool.executor.map(tasks.square, [])) == []
        with pytest.raises(ValueError, match="chunksize"):
            pool.executor.map(tasks.square, range(3), chunksize=0)

    def test_executor_map_submits_everything_before_iteration(
        self, pool: AbstractWorkerPool, tmp_path: Path
    ) -> None:
        markers = [str(tmp_path / f"task-{i}") for i in range(5)]
        results = pool.executor.map(tasks.sleep_once, markers, [0] * 5)
        assert eventually(lambda: all(Path(m).exists() for m in markers), timeout=WAIT)
        assert list(results) == ["first"] * 5

    def test_executor_map_raises_a_task_error_at_its_place(self, pool: AbstractWorkerPool) -> None:
        results = pool.executor.map(tasks.fail_on, range(6))
        assert [next(results) for _ in range(3)] == [0, 1, 4]
        with pytest.raises(ValueError, match="bad value 3"):
            next(results)

    def test_executor_map_timeout_is_a_deadline_for_the_whole_map(self, tmp_path: Path) -> None:
        # One worker, tasks each well under the timeout: only a deadline for
        # the whole map (not a limit per task) runs out.
        short = self.timeout * 0.6 if self.concurrent else 0
        with self.make_pool(1) as pool:
            results = pool.executor.map(tasks.sleep_then, range(6), [short] * 6, timeout=self.timeout)
            if not self.concurrent:  # everything ran in map(); nothing is left to time out
                assert list(results) == list(range(6))
                return
            with pytest.raises(TimeoutError):
                list(results)

    def test_executor_map_timeout_cancels_what_has_not_started(self, tmp_path: Path) -> None:
        markers = [str(tmp_path / f"task-{i}") for i in range(6)]
        pool = self.make_pool(1)
        pool.map(tasks.square, [1])  # a started worker: the timeout then counts no start-up
        seconds = self.slow_task if self.concurrent else 0
        results = pool.executor.map(tasks.sleep_once, markers, [seconds] * 6, timeout=self.timeout)
        if self.concurrent:
            with pytest.raises(concurrent.futures.TimeoutError):
                next(results)
        pool.executor.shutdown(wait=True)  # waits for the running task only
        ran = [Path(m).exists() for m in markers]
        assert ran[0]
        if self.concurrent:
            assert not all(ran), "a timed-out executor map ran every task"
            assert not ran[-1]
        else:
            assert all(ran)

    def test_executor_futures_with_wait_and_as_completed(self, pool: AbstractWorkerPool) -> None:
        executor = pool.executor
        futures = [executor.submit(tasks.square, x) for x in range(8)]
        done, not_done = concurrent.futures.wait(futures, timeout=WAIT)
        assert set(futures) == done
        assert not not_done
        completed = list(concurrent.futures.as_completed(futures, timeout=WAIT))
        assert sorted(f.result() for f in completed) == [x * x for x in range(8)]
        slow = executor.submit(tasks.sleep_then, "slow", self.slow_task)
        failing = executor.submit(tasks.fail_on, 3)
        done, pending = concurrent.futures.wait(
            [slow, failing], timeout=WAIT, return_when=concurrent.futures.FIRST_EXCEPTION
        )
        assert failing in done
        assert isinstance(failing.exception(0), ValueError)
        assert (slow in pending) is self.concurrent

    def test_executor_with_asyncio(self, pool: AbstractWorkerPool) -> None:
        async def main() -> tuple[int, int]:
            loop = asyncio.get_running_loop()
            return await asyncio.wait_for(
                asyncio.gather(
                    loop.run_in_executor(pool.executor, tasks.square, 6),
                    # a pool has submit(), which is all run_in_executor uses (typeshed asks for an Executor)
                    loop.run_in_executor(pool, tasks.square, 7),  # type: ignore[arg-type]
                ),
                WAIT,
            )

        assert list(asyncio.run(main())) == [36, 49]

    def test_executor_shutdown_shuts_the_pool_down(self) -> None:
        pool = self.make_pool(self.nodes)
        with pool.executor as executor:
            future = executor.submit(tasks.square, 4)
        assert future.result(0) == 16
        for call in (lambda: executor.submit(tasks.square, 1), lambda: executor.map(tasks.square, [1])):
            with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
                call()
            with pytest.raises(PoolClosedError):
                call()
        with pytest.raises(ExecutorShutdownError, match=r"PoolExecutor\.map\(\)"):
            executor.map(tasks.square, [1])
        with pytest.raises(PoolClosedError):
            pool.map(tasks.square, [1])

    def test_executor_shutdown_cancels_futures(self) -> None:
        pool = self.make_pool(1)
        futures = [pool.executor.submit(tasks.sleep_then, x, 0.2) for x in range(10)]
        pool.executor.shutdown(wait=True, cancel_futures=True)
        assert any(f.cancelled() for f in futures) is self.concurrent
        for x, future in enumerate(futures):
            assert future.cancelled() or future.result(0) == x

    def test_executor_shutdown_without_waiting(self) -> None:
        pool = self.make_pool(self.nodes)
        future = pool.executor.submit(tasks.sleep_then, "done", 0.2)
        pool.executor.shutdown(wait=False)
        assert future.result(WAIT) == "done"
        pool.join()

    # --------------------------------------------------------- schwimmbad

    def test_schwimmbad_surface(self, pool: AbstractWorkerPool) -> None:
        assert isinstance(pool.size, int)
        assert pool.size >= 1
        assert pool.size >= pool.nodes or pool.nodes == 0
        assert pool.is_master() is True
        assert pool.is_worker() is False
        pool.wait()  # returns at once: the caller is the master
        assert pool.enabled() is True

    def test_map_callback_sees_every_result_in_the_caller(self, pool: AbstractWorkerPool) -> None:
        seen: list[tuple[int, int]] = []
        caller = threading.get_ident()
        results = pool.map(
            tasks.square, range(40), callback=lambda r: seen.append((r, threading.get_ident()))
        )
        assert results == [x * x for x in range(40)]
        assert [r for r, _ in seen] == results
        assert {thread for _, thread in seen} == {caller}
        seen.clear()
        assert pool.map(pow, range(5), [2] * 5, chunksize=2, callback=lambda r: seen.append((r, 0))) == [
            0,
            1,
            4,
            9,
            16,
        ]
        assert [r for r, _ in seen] == [0, 1, 4, 9, 16]

    def test_map_callback_is_keyword_only(self, pool: AbstractWorkerPool) -> None:
        # as in pathos, every positional argument after the function is an iterable
        assert pool.map(pow, [1, 2, 3], [3, 2, 1]) == [1, 4, 3]
        with pytest.raises(TypeError, match="must be iterable"):
            pool.map(tasks.square, range(3), print)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="callback must be a callable"):
            pool.map(tasks.square, range(3), callback=42)  # type: ignore[arg-type]

    def test_map_callback_and_a_failing_task(self, pool: AbstractWorkerPool) -> None:
        seen: list[int] = []
        with pytest.raises(ValueError, match="bad value 3"):
            pool.map(tasks.fail_on, range(8), chunksize=1, callback=seen.append)
        assert seen == [0, 1, 4]
        assert pool.map(tasks.square, range(3), callback=seen.append) == [0, 1, 4]

    def test_map_callback_that_raises(self, pool: AbstractWorkerPool) -> None:
        def callback(result: int) -> None:
            if result == 4:
                raise KeyError("callback broke")

        with pytest.raises(KeyError, match="callback broke"):
            pool.map(tasks.square, range(50), chunksize=1, callback=callback)
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

    def test_schwimmbad_program_runs_unchanged(self, tmp_path: Path) -> None:
        expected = schwimmbad_example.expected(tmp_path / "serial.txt")
        pool = self.make_pool(self.nodes)
        output = tmp_path / "pooled.txt"
        assert schwimmbad_example.main(pool, output) == expected
        assert output.read_text() == (tmp_path / "serial.txt").read_text()
        with pytest.raises(PoolClosedError):  # main() closed the pool, as schwimmbad programs do
            pool.map(tasks.square, [1])
        pool.join()

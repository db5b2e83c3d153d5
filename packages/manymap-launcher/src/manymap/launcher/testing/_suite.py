"""The conformance suite: the pool contract as pytest test classes.

A pool package proves its pool by subclassing :class:`PoolConformance` in
its own tests with a factory::

    from manymap.launcher.testing import PoolConformance

    class TestThreadPool(PoolConformance):
        def make_pool(self, nodes=2, **options):
            return ThreadPool(nodes, **options)

Every test is bounded: waits carry timeouts, and a test that still hangs
dumps every thread's traceback and ends the run (see ``_guards.py``).
The tasks come from :mod:`manymap.launcher.testing._tasks`, importable by
any worker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from manymap.launcher import (
    AbstractWorkerPool,
    AsyncResult,
    EventKind,
    MapResult,
    PoolClosedError,
    RemoteTraceback,
    ResultTimeoutError,
    TaskEvent,
    TaskTimeoutError,
)
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._base import WAIT, PoolSuite
from manymap.launcher.testing._guards import eventually, live_children, live_threads
from manymap.launcher.testing._suite_calls import CallOptionsConformance
from manymap.launcher.testing._suite_compat import CompatConformance
from manymap.launcher.testing._suite_config import PoolConfigConformance
from manymap.launcher.testing._suite_mp import MultiprocessingConformance
from manymap.launcher.testing._suite_pathos import PathosConformance

__all__ = ["PoolConformance"]


class PoolConformance(
    CompatConformance,
    CallOptionsConformance,
    PoolConfigConformance,
    MultiprocessingConformance,
    PathosConformance,
    PoolSuite,
):
    """The contract of :class:`~manymap.launcher.AbstractWorkerPool`, as tests.

    It includes :class:`CompatConformance`: the ``concurrent.futures`` view
    (``pool.executor``) and schwimmbad's surface.

    Subclasses implement :meth:`make_pool`. Class attributes tune the suite
    to what a pool can do:

    Attributes:
        nodes: the pool size the suite asks for.
        slow_task: seconds a task sleeps to outlive a timeout; keep it short:
            a thread pool abandons the thread, which sleeps on in the
            background of the following tests.
        timeout: the per-task timeout the suite sets (well above a quick
            task's start-up cost on this pool).
        concurrent: whether work runs apart from the caller; a serial pool
            finishes each call before it returns, so there is never pending
            work to cancel or wait for, and the suite checks that instead. It
            is the builtin ``map``: each item is read just before its task
            runs, so a failure ends the map (whatever the ``chunksize``).
    """

    # A thread pool abandons the thread of a task that timed out and says so in a
    # RuntimeWarning when it is closed: here that is what the timeout tests ask for.
    pytestmark = pytest.mark.filterwarnings(r"ignore:\w+ left \d+ threads? running:RuntimeWarning")

    nodes = 2
    concurrent = True
    slow_task = 3.0
    timeout = 1.0

    # ------------------------------------------------------------ ordering

    def test_map_keeps_order(self, pool: AbstractWorkerPool) -> None:
        assert pool.map(tasks.square, range(50)) == [x * x for x in range(50)]

    def test_map_with_chunksize(self, pool: AbstractWorkerPool) -> None:
        for chunksize in (1, 3, 7, 100):
            assert pool.map(tasks.square, range(20), chunksize=chunksize) == [x * x for x in range(20)]

    def test_imap_keeps_order(self, pool: AbstractWorkerPool) -> None:
        assert list(pool.imap(tasks.square, range(50))) == [x * x for x in range(50)]

    def test_amap_keeps_order(self, pool: AbstractWorkerPool) -> None:
        result = pool.amap(tasks.square, range(50))
        assert isinstance(result, MapResult)
        assert result.get(WAIT) == [x * x for x in range(50)]
        assert result.ready()
        assert result.successful()

    def test_uimap_returns_everything_once(self, pool: AbstractWorkerPool) -> None:
        results = list(pool.uimap(tasks.square, range(100)))
        assert sorted(results) == [x * x for x in range(100)]

    def test_imap_results_arrive_before_the_input_ends(self, pool: AbstractWorkerPool) -> None:
        first = next(pool.imap(tasks.square, range(10)))
        assert first == 0

    # ---------------------------------------------------- several iterables

    def test_map_stops_at_the_shortest_iterable(self, pool: AbstractWorkerPool) -> None:
        xs, ys = range(10), [2, 3, 4]
        assert pool.map(pow, xs, ys) == list(map(pow, xs, ys))
        assert list(pool.imap(pow, xs, ys)) == list(map(pow, xs, ys))
        assert pool.amap(pow, xs, ys).get(WAIT) == list(map(pow, xs, ys))
        assert sorted(pool.uimap(pow, xs, ys)) == sorted(map(pow, xs, ys))

    def test_map_over_three_iterables(self, pool: AbstractWorkerPool) -> None:
        assert pool.map(tasks.describe, "ab", [1, 2, 3], (True, False)) == [
            (("a", 1, True), {}),
            (("b", 2, False), {}),
        ]

    def test_map_stops_at_the_shortest_generator(self, pool: AbstractWorkerPool) -> None:
        endless = itertools.count()
        assert pool.map(pow, endless, [2, 2, 2]) == [0, 1, 4]

    # ------------------------------------------------------- star variants

    def test_star_variants(self, pool: AbstractWorkerPool) -> None:
        pairs = [(2, 3), (3, 2), (10, 0)]
        expected = [8, 9, 1]
        assert pool.smap(pow, pairs) == expected
        assert list(pool.ismap(pow, iter(pairs))) == expected
        assert pool.asmap(pow, pairs).get(WAIT) == expected

    # ----------------------------------------------------------- pipe

    def test_pipe_passes_args_and_kwargs(self, pool: AbstractWorkerPool) -> None:
        assert pool.pipe(tasks.describe, 1, "two", three=3) == ((1, "two"), {"three": 3})

    def test_apipe_passes_args_and_kwargs(self, pool: AbstractWorkerPool) -> None:
        result = pool.apipe(tasks.describe, 1, key="value")
        assert isinstance(result, AsyncResult)
        assert result.get(WAIT) == ((1,), {"key": "value"})
        assert result.successful()

    def test_pipe_kwargs_named_like_options_reach_the_function(self, pool: AbstractWorkerPool) -> None:
        assert pool.pipe(tasks.describe, timeout=1, retries=2) == ((), {"timeout": 1, "retries": 2})

    # ---------------------------------------------------------- errors

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

    # ------------------------------------------------------------- inputs

    def test_empty_input(self, pool: AbstractWorkerPool) -> None:
        assert pool.map(tasks.square, []) == []
        assert list(pool.imap(tasks.square, [])) == []
        assert list(pool.uimap(tasks.square, iter([]))) == []
        assert pool.amap(tasks.square, []).get(WAIT) == []
        assert pool.smap(pow, []) == []

    def test_generator_input(self, pool: AbstractWorkerPool) -> None:
        assert pool.map(tasks.square, (x for x in range(30))) == [x * x for x in range(30)]
        assert list(pool.imap(tasks.square, (x for x in range(30)))) == [x * x for x in range(30)]
        assert sorted(pool.uimap(tasks.square, (x for x in range(30)))) == [x * x for x in range(30)]

    def test_imap_reads_an_endless_generator_lazily(self, pool: AbstractWorkerPool) -> None:
        produced = 0

        def endless() -> Iterator[int]:
            nonlocal produced
            for x in itertools.count():
                produced = x + 1
                yield x

        results = pool.imap(tasks.square, endless())
        assert [next(results) for _ in range(100)] == [x * x for x in range(100)]
        # the window ahead is a few batches per worker, never the whole input
        assert produced < 100 + 2000, f"imap read {produced} items ahead for 100 results"
        unordered = pool.uimap(tasks.square, endless())
        assert len({next(unordered) for _ in range(50)}) == 50
        assert produced < 50 + 2000

    def test_abandoned_imap_lets_the_pool_go_on(self, pool: AbstractWorkerPool) -> None:
        results = pool.imap(tasks.square, itertools.count())
        assert next(results) == 0
        del results
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

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

    # ----------------------------------------------------------- lifecycle

    def test_closed_pool_refuses_work(self) -> None:
        pool = self.make_pool(self.nodes)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        pool.close()
        calls: dict[str, Callable[[], object]] = {
            "map": lambda: pool.map(tasks.square, range(3)),
            "amap": lambda: pool.amap(tasks.square, range(3)),
            "imap": lambda: pool.imap(tasks.square, range(3)),
            "uimap": lambda: pool.uimap(tasks.square, range(3)),
            "smap": lambda: pool.smap(pow, [(2, 3)]),
            "asmap": lambda: pool.asmap(pow, [(2, 3)]),
            "ismap": lambda: pool.ismap(pow, [(2, 3)]),
            "pipe": lambda: pool.pipe(tasks.square, 3),
            "apipe": lambda: pool.apipe(tasks.square, 3),
            "submit": lambda: pool.submit(tasks.square, 3),
        }
        for method, call in calls.items():
            # The error names the method the caller used (map(), not the amap() behind it).
            with pytest.raises(PoolClosedError, match=rf"\b{type(pool).__name__}\.{method}\(\) .*closed"):
                call()
        with pytest.raises(ValueError):  # PoolClosedError is a ValueError, as in pathos
            pool.map(tasks.square, range(3))
        pool.join()

    def test_join_needs_close(self, pool: AbstractWorkerPool) -> None:
        pool.map(tasks.square, range(3))
        with pytest.raises(ValueError, match="still running"):
            pool.join()

    def test_with_block_resolves_results_handed_out(self) -> None:
        with self.make_pool(self.nodes) as pool:
            pending = pool.amap(tasks.sleep_then, range(6), [0.05] * 6)
            single = pool.apipe(tasks.sleep_then, "done", 0.2)
        assert pending.get(WAIT) == list(range(6))
        assert single.get(WAIT) == "done"
        with pytest.raises(PoolClosedError):
            pool.map(tasks.square, range(3))

    def test_with_block_terminates_on_error(self) -> None:
        def fail_inside() -> None:
            with self.make_pool(1) as pool:
                pending = pool.amap(tasks.sleep_then, range(20), [0.1] * 20, chunksize=1)
                raise KeyError(pool, pending)

        with pytest.raises(KeyError) as caught:
            fail_inside()
        pool, pending = caught.value.args
        assert pending.cancelled() if self.concurrent else pending.successful()
        with pytest.raises(PoolClosedError):
            pool.map(tasks.square, range(3))

    def test_terminate_cancels_pending_results(self) -> None:
        pool = self.make_pool(1)
        pending = pool.amap(tasks.sleep_then, range(20), [0.1] * 20, chunksize=1)
        pool.terminate()
        pool.join()
        assert pending.wait(WAIT)
        if not self.concurrent:
            assert pending.get(0) == list(range(20))
            return
        assert pending.cancelled()
        with pytest.raises(concurrent.futures.CancelledError):
            pending.get(WAIT)

    def test_restart_and_clear(self) -> None:
        pool = self.make_pool(self.nodes)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        with pytest.raises(ValueError, match="running"):
            pool.restart()
        pool.close()
        pool.join()
        pool.restart()
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        pool.close()
        pool.join()
        pool.clear()
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        pool.restart(force=True)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        pool.close()
        pool.join()

    def test_resize_a_live_pool(self, pool: AbstractWorkerPool) -> None:
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]
        pool.nodes = self.nodes + 1
        # A serial pool has one worker, the caller, whatever size it is given.
        assert pool.nodes == (self.nodes + 1 if self.concurrent else 1)
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]
        pool.nodes = 1
        assert pool.nodes == 1
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]
        with pytest.raises(ValueError, match="nodes must be a positive integer"):
            pool.nodes = 0

    def test_two_pools_are_independent(self) -> None:
        first, second = self.make_pool(self.nodes), self.make_pool(self.nodes)
        try:
            assert first is not second
            assert first.map(tasks.square, range(5)) == second.map(tasks.square, range(5))
            first.close()
            first.join()
            assert second.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]
            with pytest.raises(PoolClosedError):
                first.map(tasks.square, range(5))
        finally:
            for pool in (first, second):
                pool.terminate()
                pool.join()

    def test_cancel_a_map(self, pool: AbstractWorkerPool) -> None:
        result = pool.amap(tasks.sleep_then, range(40), [0.05] * 40, chunksize=1)
        if not self.concurrent:
            assert not result.cancel()
            assert result.get(0) == list(range(40))
            return
        assert result.cancel()
        assert result.cancelled()
        assert result.ready()
        with pytest.raises(concurrent.futures.CancelledError):
            result.get(WAIT)
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]

    def test_nothing_left_behind_after_close_and_join(self) -> None:
        threads, children = live_threads(), live_children()
        pool = self.make_pool(self.nodes)
        pool.map(tasks.square, range(20))
        list(pool.imap(tasks.square, range(20)))
        pool.pipe(tasks.square, 2)
        pool.close()
        pool.join()
        assert eventually(lambda: not (live_threads() - threads)), live_threads() - threads
        assert eventually(lambda: not (live_children() - children)), live_children() - children

    def test_nothing_left_behind_after_terminate(self) -> None:
        threads, children = live_threads(), live_children()
        pool = self.make_pool(self.nodes)
        pool.amap(tasks.sleep_then, range(4), [0.2] * 4)
        pool.terminate()
        pool.join()
        assert eventually(lambda: not (live_threads() - threads)), live_threads() - threads
        assert eventually(lambda: not (live_children() - children)), live_children() - children

    # ----------------------------------------------- futures and asyncio

    def test_submit_returns_futures(self, pool: AbstractWorkerPool) -> None:
        futures = [pool.submit(tasks.square, x) for x in range(10)]
        assert all(isinstance(f, concurrent.futures.Future) for f in futures)
        _, not_done = concurrent.futures.wait(futures, timeout=WAIT)
        assert not not_done
        assert sorted(f.result() for f in concurrent.futures.as_completed(futures, timeout=WAIT)) == [
            x * x for x in range(10)
        ]
        assert pool.submit(tasks.describe, 1, k=2).result(WAIT) == ((1,), {"k": 2})

    def test_executor_shutdown(self) -> None:
        pool = self.make_pool(self.nodes)
        future = pool.submit(tasks.square, 4)
        pool.shutdown(wait=True)
        assert future.result(0) == 16
        with pytest.raises(PoolClosedError):
            pool.submit(tasks.square, 1)

    def test_executor_shutdown_cancels_futures(self) -> None:
        pool = self.make_pool(1)
        futures = [pool.submit(tasks.sleep_then, x, 0.2) for x in range(10)]
        pool.shutdown(wait=True, cancel_futures=True)
        assert any(f.cancelled() for f in futures) is self.concurrent
        for future in futures:
            assert future.cancelled() or future.result(0) in range(10)

    def test_done_callbacks(self, pool: AbstractWorkerPool) -> None:
        seen: list[Any] = []
        arrived = threading.Event()

        def callback(result: concurrent.futures.Future[Any]) -> None:
            seen.append(result.result())
            arrived.set()

        pool.amap(tasks.square, range(4)).add_done_callback(callback)
        assert arrived.wait(WAIT)
        assert seen == [[0, 1, 4, 9]]

    def test_future_conversion(self, pool: AbstractWorkerPool) -> None:
        result = pool.apipe(tasks.square, 5)
        future = result.as_future()
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(WAIT) == 25
        with concurrent.futures.ThreadPoolExecutor(1) as other:
            wrapped = AsyncResult.from_future(other.submit(tasks.square, 6))
            assert wrapped.get(WAIT) == 36
            assert wrapped.successful()

    def test_asyncio(self, pool: AbstractWorkerPool) -> None:
        async def main() -> tuple[Any, ...]:
            loop = asyncio.get_running_loop()
            return await asyncio.wait_for(
                asyncio.gather(
                    pool.amap(tasks.square, range(5)),
                    pool.apipe(tasks.describe, 1, k=2),
                    loop.run_in_executor(pool, tasks.square, 7),  # type: ignore[arg-type]  # needs only submit()
                ),
                WAIT,
            )

        mapped, piped, executed = asyncio.run(main())
        assert mapped == [0, 1, 4, 9, 16]
        assert piped == ((1,), {"k": 2})
        assert executed == 49

    def test_asyncio_error(self, pool: AbstractWorkerPool) -> None:
        async def main() -> Any:
            return await asyncio.wait_for(pool.apipe(tasks.fail_on, 3), WAIT)

        with pytest.raises(ValueError, match="bad value 3"):
            asyncio.run(main())

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

"""Conformance: ``multiprocessing.Pool``'s methods, with its signatures and semantics.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): ``apply``, ``apply_async``, ``map_async``, ``starmap``,
``starmap_async`` and ``imap_unordered`` as the stdlib has them; handles with
``get(timeout)``, ``wait``, ``ready`` and ``successful``; callbacks that run
on a thread of the pool before their handle is settled, that ``join()``
waits for, and that cannot break the pool by raising.
"""

from __future__ import annotations

import multiprocessing
import threading
import warnings
from typing import Any

import pytest

from manymap.launcher import AbstractWorkerPool, AsyncResult, MapResult, PoolClosedError
from manymap.launcher.testing import _tasks as tasks

__all__ = ["MultiprocessingConformance"]

WAIT = 60.0


class MultiprocessingConformance:
    """``multiprocessing.Pool``'s surface on every pool, as tests (see the module)."""

    nodes: int
    concurrent: bool

    def make_pool(self, nodes: int = 2, **options: Any) -> AbstractWorkerPool:
        raise NotImplementedError

    def test_mp_apply(self, pool: AbstractWorkerPool) -> None:
        assert pool.apply(divmod, (7, 2)) == (3, 1)
        assert pool.apply(tasks.describe, [1, 2], {"key": "value"}) == ((1, 2), {"key": "value"})
        assert pool.apply(tasks.describe) == ((), {})
        assert pool.apply(tasks.square, (4,), timeout=WAIT, retries=1) == 16

    def test_mp_apply_async_handle(self, pool: AbstractWorkerPool) -> None:
        result = pool.apply_async(tasks.describe, (1,), {"k": 2})
        assert isinstance(result, AsyncResult)
        assert result.get(timeout=WAIT) == ((1,), {"k": 2})
        assert result.wait(WAIT)
        assert result.ready()
        assert result.successful()
        failing = pool.apply_async(tasks.fail_on, (3,))
        failing.wait(WAIT)
        assert failing.ready()
        assert not failing.successful()
        with pytest.raises(ValueError, match="bad value 3"):
            failing.get(WAIT)

    def test_mp_get_timeout_is_multiprocessing_timeout_error(self, pool: AbstractWorkerPool) -> None:
        result = pool.apply_async(tasks.sleep_then, (1, 0.5))
        if not self.concurrent:
            assert result.get(0.01) == 1
            return
        with pytest.raises(multiprocessing.TimeoutError):
            result.get(timeout=0.01)
        with pytest.raises(ValueError, match="not ready"):
            result.successful()
        assert result.get(WAIT) == 1

    def test_mp_maps(self, pool: AbstractWorkerPool) -> None:
        squares = [x * x for x in range(12)]
        assert pool.starmap(pow, [(x, 2) for x in range(12)]) == squares
        assert pool.starmap(pow, [(x, 2) for x in range(12)], 5) == squares  # chunksize by position
        mapped = pool.map_async(tasks.square, range(12), 4)
        assert isinstance(mapped, MapResult)
        assert mapped.get(WAIT) == squares
        starred = pool.starmap_async(pow, iter([(x, 2) for x in range(12)]), chunksize=2)
        assert starred.get(WAIT) == squares
        assert sorted(pool.imap_unordered(tasks.square, range(12))) == squares
        assert sorted(pool.imap_unordered(tasks.square, iter(range(12)), 3)) == squares
        assert list(pool.imap(tasks.square, range(12), chunksize=1)) == squares

    def test_mp_errors_name_the_method(self, pool: AbstractWorkerPool) -> None:
        with pytest.raises(ValueError, match="bad value 3"):
            pool.starmap(tasks.fail_on, [(3,)])
        with pytest.raises(TypeError, match=r"apply_async\(\) args must be a tuple"):
            pool.apply_async(tasks.square, 3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"apply\(\) kwds must be a mapping"):
            pool.apply(tasks.square, (3,), [1])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"map_async\(\) callback must be callable"):
            pool.map_async(tasks.square, [1], callback=42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"starmap\(\) needs a callable"):
            pool.starmap(42, [(1,)])  # type: ignore[arg-type]

    def test_mp_callbacks_run_on_a_pool_thread_before_the_handle_is_settled(
        self, pool: AbstractWorkerPool
    ) -> None:
        seen: list[tuple[str, Any, str]] = []

        def record(kind: str) -> Any:
            return lambda value: seen.append((kind, value, threading.current_thread().name))

        assert pool.apply_async(tasks.square, (3,), callback=record("apply")).get(WAIT) == 9
        assert seen[-1][:2] == ("apply", 9)
        assert pool.map_async(tasks.square, [1, 2], callback=record("map")).get(WAIT) == [1, 4]
        assert seen[-1][:2] == ("map", [1, 4])
        assert pool.starmap_async(pow, [(2, 3)], callback=record("starmap")).get(WAIT) == [8]
        assert seen[-1][:2] == ("starmap", [8])
        failing = pool.apply_async(
            tasks.fail_on, (3,), callback=record("wrong"), error_callback=record("error")
        )
        with pytest.raises(ValueError, match="bad value 3"):
            failing.get(WAIT)
        kind, error, _ = seen[-1]
        assert kind == "error"
        assert isinstance(error, ValueError)
        assert all(kind != "wrong" for kind, _, _ in seen)
        caller = threading.current_thread().name
        assert {name for _, _, name in seen} == {f"manymap-callbacks-{id(pool):x}"} != {caller}

    def test_mp_join_waits_for_every_callback(self) -> None:
        collected: list[int] = []

        def slow_collect(value: int) -> None:
            sum(range(200_000))  # a callback that takes a while, so that some are still due at join
            collected.append(value)

        pool = self.make_pool(self.nodes)
        for x in range(40):
            pool.apply_async(tasks.square, (x,), callback=slow_collect)
        pool.map_async(tasks.square, range(5), callback=lambda values: collected.append(sum(values)))
        pool.close()
        pool.join()
        assert sorted(collected) == sorted([x * x for x in range(40)] + [30])

    def test_mp_a_raising_callback_breaks_nothing(self, pool: AbstractWorkerPool) -> None:
        def broken(value: Any) -> None:
            raise RuntimeError("callback broke")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = pool.apply_async(tasks.square, (5,), callback=broken)
            assert result.get(WAIT) == 25
            failing = pool.map_async(tasks.fail_on, [3], error_callback=broken)
            with pytest.raises(ValueError, match="bad value 3"):
                failing.get(WAIT)
        messages = [str(warning.message) for warning in caught if warning.category is RuntimeWarning]
        assert sum("raised RuntimeError('callback broke')" in m for m in messages) == 2, messages
        after: list[int] = []
        assert pool.apply_async(tasks.square, (6,), callback=after.append).get(WAIT) == 36
        assert after == [36]
        pool.close()
        pool.join()

    def test_mp_cancel_and_closed_pool(self) -> None:
        pool = self.make_pool(1)
        blocker = pool.apply_async(tasks.sleep_then, (0, 0.3))
        queued = pool.apply_async(tasks.square, (2,), callback=lambda value: None)
        if self.concurrent:
            assert queued.cancel() or queued.get(WAIT) == 4
        if queued.cancelled():
            assert queued.ready()
        assert blocker.get(WAIT) == 0
        pool.close()
        with pytest.raises(PoolClosedError, match=r"\.apply_async\(\)"):
            pool.apply_async(tasks.square, (1,))
        with pytest.raises(PoolClosedError, match=r"\.imap_unordered\(\)"):
            pool.imap_unordered(tasks.square, [1])
        pool.join()

"""Conformance: a pool's life: close, join, ``with``, terminate, restart, resize.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): a closed pool refuses work, ``with`` resolves the results it
handed out (and terminates on an error), ``terminate`` cancels what is
pending, two pools are independent, a map can be cancelled, and nothing
(threads, child processes) is left behind.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import pytest

from manymap.launcher import (
    AbstractWorkerPool,
    PoolClosedError,
)
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._base import WAIT
from manymap.launcher.testing._guards import eventually, live_children, live_threads
from manymap.launcher.testing._suite_part import SuitePart

__all__ = ["LifecycleConformance"]


class LifecycleConformance(SuitePart):
    """A pool's lifecycle, as tests (see the module)."""

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

    def test_a_pool_starts_when_first_called_or_entered(self) -> None:
        built = self.make_pool(self.nodes)
        try:
            assert "new" in repr(built)  # built: nothing started yet
            assert built.map(tasks.square, range(3)) == [0, 1, 4]
            assert "running" in repr(built)
        finally:
            built.terminate()
            built.join()
        entered = self.make_pool(self.nodes)
        with entered:
            assert "running" in repr(entered)  # started before its first call
            assert entered.map(tasks.square, range(3)) == [0, 1, 4]
        assert "closed" in repr(entered)

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

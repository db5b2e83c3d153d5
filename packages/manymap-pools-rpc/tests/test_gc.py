"""A ParallelPool dropped without close() stops its workers once it is
garbage-collected (issue 12, row 8: ten ``ParallelPool(2)`` left 47 processes)."""

from __future__ import annotations

import gc
import os

from manymap.launcher.testing import eventually
from manymap.launcher.testing._faults import alive, descendants
from manymap.pools.rpc import ParallelPool


def test_dropped_pools_leave_no_process() -> None:
    before = descendants(os.getpid())
    started: set[int] = set()
    for _ in range(5):
        pool = ParallelPool(2)
        assert pool.map(abs, range(-4, 0)) == [4, 3, 2, 1]
        started |= descendants(os.getpid()) - before  # (while it lives: once dropped, it may go at once)
        del pool
    assert started, "the pools started no local process"
    gc.collect()
    try:
        assert eventually(lambda: not any(alive(pid) for pid in started), 30.0), (
            f"dropped pools left {sorted(p for p in started if alive(p))}"
        )
    finally:
        for pid in started:
            if alive(pid):
                os.kill(pid, 9)


def test_a_dropped_pool_is_collected_and_stops_its_workers() -> None:
    before = descendants(os.getpid())
    pool = ParallelPool(2)
    assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
    started = descendants(os.getpid()) - before
    del pool
    gc.collect()
    try:
        assert eventually(lambda: not any(alive(pid) for pid in started), 30.0)
    finally:
        for pid in started:
            if alive(pid):
                os.kill(pid, 9)

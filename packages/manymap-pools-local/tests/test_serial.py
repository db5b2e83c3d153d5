"""SerialPool is the builtin ``map``: each input item is read just before its task runs.

pathos' ``SerialPool.map`` *is* the builtin ``map``, so code whose input
generator and task share state (both draw from ``random``, both advance one
counter) gives the same results on a SerialPool as without a pool. The pools
that run tasks elsewhere read the whole input of an eager map first, as
pathos' (multiprocess') ``map`` does with ``list(iterable)``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from manymap.launcher import PoolClosedError
from manymap.pools.local import SerialPool, ThreadPool

WAIT = 30.0


def _solve(x: float) -> float:
    return x + random.random()


def _draws(n: int) -> Iterator[float]:
    return (random.random() for _ in range(n))


def test_the_issue_reproduction() -> None:
    random.seed(0)
    expected = list(map(_solve, _draws(3)))
    random.seed(0)
    assert SerialPool().map(_solve, _draws(3)) == expected


class _Trace:
    """A generator and a function that log, in one list, when each item is read and used."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def items(self, n: int) -> Iterator[int]:
        for i in range(n):
            with self._lock:
                self.log.append(("read", i))
            yield i

    def pairs(self, n: int) -> Iterator[tuple[int, int]]:
        return ((i, 2) for i in self.items(n))

    def call(self, x: int, *rest: int) -> int:
        with self._lock:
            self.log.append(("call", x))
        return x if not rest else x ** rest[0]


_CALLS: dict[str, Callable[[Any, _Trace], list[int]]] = {
    "map": lambda pool, t: pool.map(t.call, t.items(4)),
    "map, two iterables": lambda pool, t: pool.map(t.call, t.items(4), [2] * 5),
    "amap": lambda pool, t: pool.amap(t.call, t.items(4)).get(WAIT),
    "smap": lambda pool, t: pool.smap(t.call, t.pairs(4)),
    "asmap": lambda pool, t: pool.asmap(t.call, t.pairs(4)).get(WAIT),
    "imap": lambda pool, t: list(pool.imap(t.call, t.items(4))),
    "ismap": lambda pool, t: list(pool.ismap(t.call, t.pairs(4))),
    "uimap": lambda pool, t: list(pool.uimap(t.call, t.items(4))),
}


def _builtin(name: str, trace: _Trace) -> list[int]:
    import itertools

    if "two" in name:
        return list(map(trace.call, trace.items(4), [2] * 5))
    if name.lstrip("a").lstrip("i").startswith("smap"):
        return list(itertools.starmap(trace.call, trace.pairs(4)))
    return list(map(trace.call, trace.items(4)))


@pytest.mark.parametrize("name", sorted(_CALLS))
def test_serial_maps_read_each_item_just_before_its_call(name: str) -> None:
    expected_trace = _Trace()
    expected = _builtin(name, expected_trace)
    trace = _Trace()
    with SerialPool() as pool:
        assert _CALLS[name](pool, trace) == expected
    assert trace.log == expected_trace.log
    assert trace.log[:4] == [("read", 0), ("call", 0), ("read", 1), ("call", 1)]


@pytest.mark.parametrize(
    "options", [{}, {"chunksize": 3}, {"retries": 1, "timeout": WAIT}, {"progress": lambda event: None}]
)
def test_serial_map_shares_random_state_with_its_input_whatever_the_options(options: dict[str, Any]) -> None:
    random.seed(1)
    expected = list(map(_solve, _draws(20)))
    with SerialPool() as pool:
        random.seed(1)
        assert pool.map(_solve, _draws(20), **options) == expected
        random.seed(1)
        assert list(pool.imap(_solve, _draws(20), **options)) == expected


def test_serial_imap_reads_nothing_until_asked() -> None:
    trace = _Trace()
    with SerialPool() as pool:
        results = pool.imap(trace.call, trace.items(3))
        assert trace.log == []
        assert next(results) == 0
        assert trace.log == [("read", 0), ("call", 0)]
        assert list(results) == [1, 2]


def test_serial_map_stops_reading_at_a_failing_task() -> None:
    trace = _Trace()

    def fail_on_one(x: int) -> int:
        trace.call(x)
        if x == 1:
            raise ValueError("one")
        return x

    with SerialPool() as pool, pytest.raises(ValueError, match="one"):
        pool.map(fail_on_one, trace.items(5))
    assert trace.log == [("read", 0), ("call", 0), ("read", 1), ("call", 1)]


def test_a_serial_task_may_map_on_its_own_pool() -> None:
    with SerialPool() as pool:
        assert pool.map(lambda x: pool.map(abs, [x, -x]), [1, 2]) == [[1, 1], [2, 2]]
        assert list(pool.imap(lambda x: sum(pool.imap(abs, [x, -x])), [1, 2])) == [2, 4]


def test_a_thread_pool_map_reads_its_whole_input_first() -> None:
    # pathos' ThreadPool.map is multiprocess' map, which starts with list(iterable).
    trace = _Trace()
    with ThreadPool(2) as pool:
        assert pool.map(trace.call, trace.items(6)) == list(range(6))
    assert trace.log[:6] == [("read", i) for i in range(6)]


def test_a_failing_input_is_named_and_counted() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise KeyError("input broke")

    with SerialPool() as pool:
        with pytest.raises(KeyError, match="input broke") as caught:
            pool.map(abs, items())
        assert "manymap: reading input item 1 failed" in caught.value.__notes__
        assert pool.stats().tasks == 1


def test_serial_stats_count_every_task() -> None:
    with SerialPool() as pool:
        assert pool.map(abs, range(3000)) == list(range(3000))
        results = pool.imap(abs, range(10))
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        results.close()
        with pytest.raises(ZeroDivisionError):
            pool.map(lambda x: 1 / x, [1, 0, 2])
        stats = pool.stats()
        assert (stats.tasks, stats.failed) == (3000 + 3 + 2, 1)


def test_closing_the_pool_ends_a_serial_imap_before_the_next_item() -> None:
    trace = _Trace()
    pool = SerialPool()
    results = pool.imap(trace.call, trace.items(5))
    assert next(results) == 0
    pool.close()
    with pytest.raises(PoolClosedError, match="closed before task 1 was read"):
        next(results)
    assert trace.log == [("read", 0), ("call", 0)]
    pool.join()


def test_a_serial_pool_has_one_worker_whatever_nodes_is_set_to() -> None:
    pool = SerialPool(4)
    assert pool.nodes == 1
    pool.nodes = 3
    assert pool.nodes == 1
    assert pool.stats().nodes == 1
    pool.nodes = None
    assert pool.nodes == 1
    with pytest.raises(ValueError, match="nodes must be a positive integer"):
        pool.nodes = 0
    assert pool.map(abs, [-1]) == [1]
    pool.close()
    pool.join()


def test_dropping_a_serial_imap_never_waits_for_the_pools_lock() -> None:
    # The garbage collector may finalize an abandoned inline map while this
    # very thread holds the pool's lock: recording its stats must not wait.
    pool = SerialPool()
    results = pool.imap(abs, range(-5, 0))
    assert next(results) == 5

    def drop_under_the_lock() -> None:
        nonlocal results
        with pool._lock:
            del results  # finalizes the generator here, in this thread

    thread = threading.Thread(target=drop_under_the_lock, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "dropping the iterator deadlocked on the pool's lock"
    assert pool.stats().tasks == 1
    pool.close()
    pool.join()


def test_callbacks_run_in_a_forked_child_of_a_serial_pools_owner() -> None:
    # A SerialPool inherited through fork works in the child; so must its
    # multiprocessing-style callbacks, although the parent's callback thread
    # (busy here at the fork) is not in the child.
    import os
    import signal

    from manymap.launcher.testing import eventually

    pool = SerialPool()
    release = threading.Event()
    busy = pool.apply_async(abs, (-1,), callback=lambda value: release.wait(WAIT))
    runner = pool._callback_thread  # type: ignore[attr-defined]
    with runner._cond:  # held at the fork, as the parent's callback thread may hold it
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                got: list[int] = []
                result = pool.apply_async(abs, (-2,), callback=got.append)
                code = 0 if result.wait(WAIT) and got == [2] else 2
            finally:
                os._exit(code)
    release.set()
    assert busy.get(WAIT) == 1
    exited: list[int] = []

    def reaped() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            exited.append(os.waitstatus_to_exitcode(status))
        return bool(done)

    try:
        eventually(reaped, timeout=WAIT)
    finally:
        if not exited:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert exited == [0]
    pool.close()
    pool.join()

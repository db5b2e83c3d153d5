"""A dropped ``imap`` iterator cancels its job without taking the pool's lock
in the garbage collector (which may run on a thread that holds it)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

from manymap.launcher.testing import ReferencePool, eventually
from manymap.launcher.testing import _tasks as tasks


def _endless() -> Iterator[int]:
    n = 0
    while True:
        yield n
        n += 1


def test_an_iterator_collected_under_the_pool_lock_does_not_deadlock() -> None:
    pool = ReferencePool(2)
    results = pool.imap(tasks.square, _endless())
    assert next(results) == 0
    job = results._job
    cycle: list[object] = [results]
    cycle.append(cycle)  # only the cycle collector can free the iterator now
    del results, cycle

    def collect_holding_the_lock() -> None:
        with pool._lock:  # as the manager thread does when the collector runs in it
            gc.collect()

    collector = threading.Thread(target=collect_holding_the_lock, daemon=True)
    collector.start()
    collector.join(10)
    # (a deadlocked pool cannot even be closed: leave it to the process's exit)
    assert not collector.is_alive(), "the collector deadlocked on the pool's lock"
    try:
        assert eventually(lambda: job._cancelled), "the dropped iterator's job was never cancelled"
    finally:
        pool.terminate()
        pool.join()

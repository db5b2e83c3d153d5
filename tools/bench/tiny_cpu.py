"""Where a warm map of tiny tasks spends its time: CPU seconds per thread and per worker.

The warm ``tiny`` row of ``bench_pools.py`` (``map`` of ``x * x`` over 100,000
ints on a pool of 2 workers) is bound by the processors, not by waiting: the
workers unpickle their items, call the function and pickle the results, and
the pool's own process pickles the items and unpickles the results. This
runs the map ``--maps`` times on a warm pool and gives, per map, the wall
time and the CPU time of each thread of this process and of the workers
together (from ``/proc``), for ``multiprocessing.Pool`` and manymap's
``ProcessPool`` in turn, so that the floor the processors set is plain:
the CPU time of all of them over the number of cores.

    python tools/bench/tiny_cpu.py --maps 50

Run it with the interpreter of the environment to measure (``.nox/bench``
after ``nox -s bench``). Linux only (``/proc``, per-thread CPU clocks).
"""

from __future__ import annotations

import argparse
import multiprocessing.pool
import os
import threading
import time
from collections.abc import Callable
from typing import Any

ITEMS = 100_000
WORKERS = 2


def square(x: int) -> int:
    return x * x


def _thread_seconds() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by name."""
    return {
        thread.name: time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        for thread in threading.enumerate()
        if thread.ident is not None
    }


def _children_seconds() -> float:
    """CPU seconds (user + system) of this process's live children."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    with open(f"/proc/self/task/{os.getpid()}/children") as listing:
        pids = listing.read().split()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # gone since the listing
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def measure(name: str, make: Callable[[], Any], maps: int) -> None:
    items = list(range(ITEMS))
    expected = [x * x for x in items]
    pool = make()
    try:
        pool.map(square, list(range(8 * WORKERS)))  # workers started, function shipped
        threads, workers, start = _thread_seconds(), _children_seconds(), time.perf_counter()
        for _ in range(maps):
            if pool.map(square, items) != expected:
                raise AssertionError(f"{name}: wrong result")
        wall = time.perf_counter() - start
        workers = _children_seconds() - workers
        after = _thread_seconds()
    finally:
        pool.close()
        pool.join()
    spent = {thread: after.get(thread, seconds) - seconds for thread, seconds in threads.items()}
    parts = [f"{thread} {seconds / maps * 1e3:.1f}" for thread, seconds in spent.items()]
    parent = sum(spent.values())
    total = (parent + workers) / maps
    print(
        f"{name}: wall {wall / maps * 1e3:.1f} ms per map; CPU ms per map: "
        f"{', '.join(parts)}; workers {workers / maps * 1e3:.1f}; "
        f"all {total * 1e3:.1f}, over {os.cpu_count()} cores {total / (os.cpu_count() or 1) * 1e3:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, default=50, help="timed maps per pool (default 50)")
    args = parser.parse_args()
    from manymap.pools.local import ProcessPool

    for _ in range(2):  # in turn, twice: the machine's load moves
        measure("multiprocessing.Pool", lambda: multiprocessing.pool.Pool(WORKERS), args.maps)
        measure("manymap ProcessPool", lambda: ProcessPool(WORKERS), args.maps)


if __name__ == "__main__":
    main()

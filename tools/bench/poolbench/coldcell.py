"""One cell of the cold table, run in a fresh process: ``bench_pools.py --cold-cell KEY MEASURE``.

This module imports only ``sys``, ``time`` and ``json`` at the top, and each
pool's library when its cell asks for it, so that nothing the harness loads
makes a pool's start-up or first map look cheaper than it is in a user's
script. It prints one JSON line: ``{"seconds": ...}`` (and ``"warm"`` for the
pipe cell: the seconds of 300 more calls on the same, now warm, pool).

Measures (the pool's class is imported before the clock starts, except in
``import``, which the parent times in a ``python -c`` of its own):

- ``startup``: build the pool, ``map`` 10 items, close and join it;
- ``firstmap``: the first ``map`` of 100,000 tiny items on a pool just built
  and entered (``with Pool() as p:``, untimed);
- ``pipes``: the first 300 single calls on a pool just built and entered, then 300 more.

``raw-pipe`` is the physical floor: a ``multiprocessing.Pipe`` ping-pong with
one child process (start-up: start it, one round trip of 10 items, join it;
map: the 100,000 items there and back in one message; pipes: 300 round trips).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

WORKERS = 2
STARTUP_ITEMS = 10
MAP_ITEMS = 100_000
PIPE_CALLS = 300


def _stdlib_chunksize(items: int) -> int:
    chunksize, extra = divmod(items, WORKERS * 4)
    return chunksize + 1 if extra else chunksize


class _Ops:
    """How one library's pool is built, mapped, called and closed (its own defaults, as in the warm table)."""

    def __init__(self, key: str) -> None:
        self.key = key
        if key == "stdlib":
            import multiprocessing.pool

            self.make: Callable[[], Any] = lambda: multiprocessing.pool.Pool(WORKERS)
        elif key == "futures":
            import concurrent.futures.process

            self.make = lambda: concurrent.futures.process.ProcessPoolExecutor(WORKERS)
        elif key == "loky":
            import loky

            self.make = lambda: loky.ProcessPoolExecutor(max_workers=WORKERS)
        elif key == "pathos-process":
            import pathos.pools

            self.make = lambda: pathos.pools.ProcessPool(nodes=WORKERS)
        elif key in ("manymap-serial", "manymap-thread", "manymap-process"):
            import manymap.pools.local as local

            cls = {
                "manymap-serial": "SerialPool",
                "manymap-thread": "ThreadPool",
                "manymap-process": "ProcessPool",
            }
            pool_class = getattr(local, cls[key])
            self.make = pool_class if key == "manymap-serial" else lambda: pool_class(WORKERS)
        elif key == "manymap-parallel":
            import manymap.pools.rpc as rpc

            self.make = lambda: rpc.ParallelPool(WORKERS)
        elif key == "manymap-dask":
            import distributed

            import manymap.pools.dask as dask_pools

            self.make = lambda: dask_pools.DaskPool(WORKERS)
        elif key == "dask":  # a bare LocalCluster + Client, Dask's own map (a task per item)
            import distributed  # noqa: F401  (imported before the clock)

            from poolbench.contenders import DaskClient

            self.make = lambda: DaskClient(WORKERS)
        else:
            raise SystemExit(f"no cold cell for {key!r}")

    def map(self, pool: Any, fn: Callable[[int], int], items: list[int]) -> list[int]:
        if self.key in ("futures", "loky"):
            return list(pool.map(fn, items, chunksize=_stdlib_chunksize(len(items))))
        return list(pool.map(fn, items))

    def call(self, pool: Any, fn: Callable[[int], int], arg: int) -> int:
        if self.key == "dask":
            return int(pool.call(fn, arg))
        if self.key == "stdlib":
            return int(pool.apply(fn, (arg,)))
        if self.key in ("futures", "loky"):
            return int(pool.submit(fn, arg).result())
        return int(pool.pipe(fn, arg))

    def enter(self, pool: Any) -> None:
        """What ``with Pool() as p:`` does before its block (a script's usual form):
        a manymap pool starts its workers there, the stdlib Pool did in its
        constructor; the explicit close after the block stands for the exit."""
        enter = getattr(pool, "__enter__", None)
        if enter is not None:
            enter()

    def close(self, pool: Any) -> None:
        if self.key == "dask":
            pool.close()
            return
        if self.key in ("futures", "loky"):
            pool.shutdown(wait=True)
            return
        pool.close()
        pool.join()
        if self.key == "pathos-process":
            pool.clear()  # pathos caches pools globally


def _check(result: list[int], items: list[int]) -> None:
    if result != [x * x for x in items]:
        raise AssertionError("wrong result")


def _pool_cell(key: str, measure: str, square: Callable[[int], int]) -> dict[str, float]:
    ops = _Ops(key)
    out: dict[str, float] = {}
    if measure == "startup":
        items = list(range(STARTUP_ITEMS))
        start = time.perf_counter()
        pool = ops.make()
        result = ops.map(pool, square, items)
        ops.close(pool)
        out["seconds"] = time.perf_counter() - start
        _check(result, items)
        return out
    pool = ops.make()
    try:
        ops.enter(pool)
        if measure == "firstmap":
            items = list(range(MAP_ITEMS))
            start = time.perf_counter()
            result = ops.map(pool, square, items)
            out["seconds"] = time.perf_counter() - start
            _check(result, items)
        elif measure == "pipes":
            for name in ("seconds", "warm"):
                start = time.perf_counter()
                result = [ops.call(pool, square, i) for i in range(PIPE_CALLS)]
                out[name] = time.perf_counter() - start
                _check(result, list(range(PIPE_CALLS)))
        else:
            raise SystemExit(f"no cold measure {measure!r}")
    finally:
        ops.close(pool)
    return out


def _echo(conn: Any, square: Callable[[int], int]) -> None:
    """The raw pipe's child: square what comes (an int or a list), until None."""
    while True:
        item = conn.recv()
        if item is None:
            return
        conn.send([square(x) for x in item] if isinstance(item, list) else square(item))


def _raw_cell(measure: str, square: Callable[[int], int]) -> dict[str, float]:
    import multiprocessing

    def start_child() -> tuple[Any, Any]:
        mine, theirs = multiprocessing.Pipe()
        child = multiprocessing.Process(target=_echo, args=(theirs, square))
        child.start()
        theirs.close()
        return mine, child

    def stop(conn: Any, child: Any) -> None:
        conn.send(None)
        child.join(30)
        if child.exitcode is None:
            child.kill()
            raise AssertionError("the raw pipe's child did not end")

    out: dict[str, float] = {}
    if measure == "startup":
        items = list(range(STARTUP_ITEMS))
        start = time.perf_counter()
        conn, child = start_child()
        conn.send(items)
        result = conn.recv()
        stop(conn, child)
        out["seconds"] = time.perf_counter() - start
        _check(result, items)
        return out
    conn, child = start_child()
    try:
        if measure == "firstmap":
            items = list(range(MAP_ITEMS))
            start = time.perf_counter()
            conn.send(items)
            result = conn.recv()
            out["seconds"] = time.perf_counter() - start
            _check(result, items)
        elif measure == "pipes":
            for name in ("seconds", "warm"):
                start = time.perf_counter()
                replies = []
                for i in range(PIPE_CALLS):
                    conn.send(i)
                    replies.append(conn.recv())
                out[name] = time.perf_counter() - start
                _check(replies, list(range(PIPE_CALLS)))
        else:
            raise SystemExit(f"no cold measure {measure!r}")
    finally:
        stop(conn, child)
    return out


def main(square: Callable[[int], int], argv: list[str]) -> int:
    """Run the cell ``argv == [KEY, MEASURE, WORKERS]``; print its JSON line."""
    global WORKERS
    key, measure, workers = argv
    WORKERS = int(workers)
    out = _raw_cell(measure, square) if key == "raw-pipe" else _pool_cell(key, measure, square)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0

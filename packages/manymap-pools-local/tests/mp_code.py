"""Code written for ``multiprocessing.Pool``, as its users write it (see test_multiprocessing_code.py).

A module of its own, importable by name, so that spawned workers find its functions.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from typing import Any

WAIT = 30.0


def cube(x: int) -> int:
    return x * x * x


def scale(x: int, factor: int = 1) -> int:
    return x * factor


def reciprocal(x: int) -> float:
    return 1 / x


def napping(x: int) -> int:
    time.sleep(1.0)  # outlives the 0.01 s get() below on any machine
    return x


def client(pool: Any) -> dict[str, Any]:
    """multiprocessing.Pool code, as written for it."""
    out: dict[str, Any] = {}
    out["map"] = pool.map(cube, range(10))
    out["map chunksize"] = pool.map(cube, range(10), chunksize=3)
    out["starmap"] = pool.starmap(pow, zip(range(6), itertools.repeat(3)))
    out["starmap chunksize"] = pool.starmap(pow, [(2, 3), (3, 2)], 1)
    out["apply"] = pool.apply(divmod, (17, 5))
    out["apply kwds"] = pool.apply(scale, (3,), {"factor": 4})
    collected: list[Any] = []
    lock = threading.Lock()

    def collect(value: Any) -> None:
        with lock:
            collected.append(value)

    handles = [pool.apply_async(cube, (x,), callback=collect) for x in range(8)]
    out["apply_async"] = [handle.get(timeout=WAIT) for handle in handles]
    mapped = pool.map_async(cube, range(5), callback=collect)
    mapped.wait(timeout=WAIT)
    out["map_async state"] = (mapped.ready(), mapped.successful())
    out["map_async"] = mapped.get(timeout=WAIT)
    out["starmap_async"] = pool.starmap_async(pow, [(2, 5), (3, 3)], callback=collect).get(WAIT)
    out["imap"] = list(pool.imap(cube, range(7)))
    out["imap chunksize"] = list(pool.imap(cube, range(7), chunksize=2))
    out["imap_unordered"] = sorted(pool.imap_unordered(cube, range(7)))
    out["imap_unordered chunksize"] = sorted(pool.imap_unordered(cube, range(7), 3))
    errors: list[str] = []
    bad = pool.apply_async(reciprocal, (0,), error_callback=lambda error: errors.append(type(error).__name__))
    try:
        bad.get(timeout=WAIT)
    except ZeroDivisionError as error:
        out["apply_async error"] = str(error)
    out["failed handle"] = (bad.ready(), bad.successful())
    try:
        pool.map(reciprocal, [1, 0, 2])
    except ZeroDivisionError as error:
        out["map error"] = str(error)
    slow = pool.apply_async(napping, (7,))
    try:
        slow.get(timeout=0.01)
    except multiprocessing.TimeoutError:
        out["get timeout"] = "multiprocessing.TimeoutError"
    try:
        slow.successful()
    except ValueError:
        out["successful before ready"] = "ValueError"
    out["after timeout"] = slow.get(timeout=WAIT)
    for x in range(20):
        pool.apply_async(scale, (x,), {"factor": 10}, callback=collect)
    pool.close()
    pool.join()
    out["collected after join"] = sorted(collected, key=repr)
    out["error_callback"] = errors
    return out

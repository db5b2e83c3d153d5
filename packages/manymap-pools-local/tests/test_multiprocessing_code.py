"""Code written for ``multiprocessing.Pool`` runs unchanged on ProcessPool and ThreadPool.

:func:`client` uses the stdlib pool's surface the way its documentation and
the libraries built on it do (pymoo hands ``pool.starmap`` around; tutorials
collect results with ``apply_async(..., callback=results.append)`` and read
them after ``close()`` + ``join()``). It runs once on a real
``multiprocessing.Pool`` and once on each manymap pool, and every outcome
must be the same.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from manymap.pools.local import ProcessPool, SerialPool, ThreadPool

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


_POOLS: dict[str, Callable[[], Any]] = {
    "ProcessPool": lambda: ProcessPool(2),
    "ProcessPool spawn": lambda: ProcessPool(2, context="spawn"),
    "ThreadPool": lambda: ThreadPool(2),
}


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    pool = multiprocessing.get_context("fork").Pool(2)
    try:
        return client(pool)
    finally:
        pool.terminate()
        pool.join()


@pytest.mark.parametrize("name", sorted(_POOLS))
def test_multiprocessing_code_runs_unchanged(name: str, expected: dict[str, Any]) -> None:
    pool = _POOLS[name]()
    try:
        assert client(pool) == expected
    finally:
        pool.terminate()
        pool.join()


def test_the_client_sees_every_outcome(expected: dict[str, Any]) -> None:
    # The reference run exercised what it claims to (the comparison above is not vacuous).
    assert expected["get timeout"] == "multiprocessing.TimeoutError"
    assert expected["successful before ready"] == "ValueError"
    assert expected["apply_async error"] == expected["map error"] == "division by zero"
    assert expected["error_callback"] == ["ZeroDivisionError"]
    assert len(expected["collected after join"]) == 8 + 1 + 1 + 20


def test_serial_pool_runs_it_too(expected: dict[str, Any]) -> None:
    # SerialPool runs each call before it returns: nothing is ever pending,
    # so its get(timeout=0.01) returns the value instead of timing out.
    outcome = client(SerialPool())
    assert outcome.pop("get timeout", None) is None
    assert outcome.pop("successful before ready", None) is None
    expected = {k: v for k, v in expected.items() if k not in ("get timeout", "successful before ready")}
    assert outcome == expected

"""Code written for ``multiprocessing.Pool`` runs unchanged on ProcessPool and ThreadPool.

:func:`mp_code.client` uses the stdlib pool's surface the way its documentation and
the libraries built on it do (pymoo hands ``pool.starmap`` around; tutorials
collect results with ``apply_async(..., callback=results.append)`` and read
them after ``close()`` + ``join()``). It runs once on a real
``multiprocessing.Pool`` and once on each manymap pool, and every outcome
must be the same.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

import pytest
from mp_code import client

from manymap.pools.local import ProcessPool, SerialPool, ThreadPool

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

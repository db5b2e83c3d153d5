"""The workloads: what is timed on a warm pool, and how its result is checked.

The task functions themselves live in ``bench_pools.py``, the script run as
``__main__``: the stdlib pools pickle them by reference (re-importing
``__main__`` under spawn), manymap and pathos ship ``__main__`` functions by
value, exactly as a user's script does. They reach this module as a :class:`Tasks`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from poolbench import config
from poolbench.config import (
    CLOSURE_FACTOR,
    CLOSURE_ITEMS,
    CPU_TASK_SECONDS,
    CPU_TASKS,
    DASK_KEYS,
    DASK_TINY_ITEMS,
    LATENCY_CALLS,
    LATENCY_ROUNDS,
    PAYLOAD_ARRAYS,
    PAYLOAD_ELEMENTS,
    REFERENCE,
    SHORT_INNER,
    TINY_ITEMS,
)
from poolbench.contenders import Contender, Pool


@dataclass(frozen=True)
class Tasks:
    """The task functions, defined in the ``__main__`` script (see the module docstring)."""

    square: Callable[[int], int]
    spin: Callable[[int], int]
    double: Callable[[Any], Any]
    scale: Callable[..., int]
    make_closure: Callable[[int], Callable[[int], int]]


@dataclass
class Series:
    """One timed call of a workload; a workload has one or more (closure: lambda and partial)."""

    name: str
    run: Callable[[Contender, Pool], Any]
    check: Callable[[Any], None]
    per: int = 1  # the figure shown is the median divided by this (per call, per item)
    inner: int = 1  # timed calls per round (each one a sample): more for the short ones
    unit: str = ""  # "per call", "per item" or "" (the whole call)
    reference: tuple[str, str] | None = None  # (series, contender) the ratios are to; default REFERENCE


@dataclass
class Workload:
    name: str
    title: str  # column title in the table
    warm: Callable[[Contender, Pool], None]
    series: list[Series]
    rounds: int = 1  # rounds per --repeat: more for the cheap ones whose figure varies from pool to pool
    only: tuple[str, ...] = ()  # the contenders that run it (default: every one)
    skip: tuple[str, ...] = ()  # contenders that do not

    def runs(self, key: str) -> bool:
        return (not self.only or key in self.only) and key not in self.skip


def _expect(expected: Sequence[Any]) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        if list(result) != list(expected):
            raise AssertionError("wrong result")

    return check


def warm_up(tasks: Tasks) -> Callable[[Contender, Pool], None]:
    """The common warm-up: start every worker, run a first map and a first call (pathos gets it too)."""

    def warm(c: Contender, pool: Pool) -> None:
        expected = [x * x for x in range(8 * config.WORKERS)]
        if c.map(pool, tasks.square, list(range(8 * config.WORKERS))) != expected:
            raise AssertionError("wrong result in the warm-up")
        c.call(pool, tasks.square, 3)

    return warm


def make_workloads(spin_n: int, tasks: Tasks) -> dict[str, Workload]:
    """Every workload by name; ``spin_n`` sizes the cpu tasks (see :func:`calibrate_spin`)."""
    square, spin, double, scale, make_closure = (
        tasks.square,
        tasks.spin,
        tasks.double,
        tasks.scale,
        tasks.make_closure,
    )
    _warm = warm_up(tasks)
    tiny_items = list(range(TINY_ITEMS))
    dask_items = list(range(DASK_TINY_ITEMS))
    closure_items = list(range(CLOSURE_ITEMS))
    cpu_items = [spin_n] * CPU_TASKS
    spin_result = spin(spin_n)
    arrays: list[Any] = []

    def payload_arrays() -> list[Any]:
        if not arrays:  # made on first use only: 320 MB
            import numpy as np

            arrays.extend(np.random.default_rng(i).random(PAYLOAD_ELEMENTS) for i in range(PAYLOAD_ARRAYS))
        return arrays

    def warm_payload(c: Contender, pool: Pool) -> None:
        import numpy as np

        _warm(c, pool)
        c.map(pool, double, [np.ones(1000) for _ in range(4 * config.WORKERS)])

    def check_payload(result: Any) -> None:
        result = list(result)
        if len(result) != PAYLOAD_ARRAYS:
            raise AssertionError(f"{len(result)} arrays back, not {PAYLOAD_ARRAYS}")
        for array, out in zip(arrays, result, strict=True):
            if out.shape != array.shape or out.dtype != array.dtype:
                raise AssertionError("wrong array shape or dtype")
            for index in (0, PAYLOAD_ELEMENTS // 2, -1):
                if out[index] != array[index] * 2:
                    raise AssertionError("wrong array content")

    def warm_closure(c: Contender, pool: Pool) -> None:
        _warm(c, pool)
        c.map(pool, functools.partial(scale, k=2), list(range(4 * config.WORKERS)))

    return {
        "tiny": Workload(
            "tiny",
            f"tiny: map x*x, {TINY_ITEMS:,} ints",
            _warm,
            [
                Series(
                    "tiny",
                    lambda c, pool: c.map(pool, square, tiny_items),
                    _expect([x * x for x in tiny_items]),
                    inner=SHORT_INNER,
                )
            ],
            skip=("dask",),  # 100,000 Dask tasks outlast the timeout: see tiny-dask
        ),
        "tiny-dask": Workload(
            "tiny-dask",
            f"tiny-dask: map x*x, {DASK_TINY_ITEMS:,} ints",
            _warm,
            [
                Series(
                    "tiny-dask",
                    lambda c, pool: c.map(pool, square, dask_items),
                    _expect([x * x for x in dask_items]),
                    inner=SHORT_INNER,
                    reference=("tiny-dask", "dask"),  # the ratio is to Dask's own client.map
                )
            ],
            only=DASK_KEYS,
        ),
        "cpu": Workload(
            "cpu",
            f"cpu: {CPU_TASKS} x {CPU_TASK_SECONDS * 1e3:.0f} ms",
            _warm,
            [Series("cpu", lambda c, pool: c.map(pool, spin, cpu_items), _expect([spin_result] * CPU_TASKS))],
        ),
        "payload": Workload(
            "payload",
            f"payload: {PAYLOAD_ARRAYS} x 8 MB arrays",
            warm_payload,
            [Series("payload", lambda c, pool: c.map(pool, double, payload_arrays()), check_payload)],
        ),
        "latency": Workload(
            "latency",
            f"latency: {LATENCY_CALLS} single calls",
            _warm,
            [
                Series(
                    "latency",
                    lambda c, pool: [c.call(pool, square, i) for i in range(LATENCY_CALLS)],
                    _expect([i * i for i in range(LATENCY_CALLS)]),
                    per=LATENCY_CALLS,
                    unit="per call",
                )
            ],
            rounds=LATENCY_ROUNDS,
        ),
        "closure": Workload(
            "closure",
            f"closure: lambda, {CLOSURE_ITEMS:,} items",
            warm_closure,
            [
                Series(
                    "closure",
                    lambda c, pool: c.map(pool, make_closure(CLOSURE_FACTOR), closure_items),
                    _expect([x * CLOSURE_FACTOR for x in closure_items]),
                    per=CLOSURE_ITEMS,
                    unit="per item",
                    inner=SHORT_INNER,
                    reference=("closure-partial", REFERENCE),
                ),
                Series(
                    "closure-partial",
                    lambda c, pool: c.map(pool, functools.partial(scale, k=CLOSURE_FACTOR), closure_items),
                    _expect([x * CLOSURE_FACTOR for x in closure_items]),
                    per=CLOSURE_ITEMS,
                    unit="per item",
                    inner=SHORT_INNER,
                ),
            ],
            skip=("dask",),  # 100,000 Dask tasks outlast the timeout, as in tiny
        ),
    }


def calibrate_spin(spin: Callable[[int], object], seconds: float) -> int:
    """The ``n`` for which ``spin(n)`` takes about ``seconds`` here (best of 5)."""
    n = 10_000
    while True:
        best = min(_time(spin, n) for _ in range(3))
        if best >= 0.005:
            break
        n *= 2
    n = round(n * seconds / best)
    best = min(_time(spin, n) for _ in range(5))
    return round(n * seconds / best)


def _time(fn: Callable[[int], object], arg: int) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start

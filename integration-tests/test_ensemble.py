"""An optimisation ensemble: scipy.optimize from many starting points, over the local pools and every host.

The same user code runs on every pool, pathos style: only the map object changes.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
from scipy.optimize import minimize, rosen, rosen_der

from manymap.maps import Amap, Map, Uimap
from manymap.pools.local import ProcessPool, SerialPool, ThreadPool


def solve(start: Any) -> tuple[float, list[float]]:
    result = minimize(rosen, np.asarray(start), jac=rosen_der, method="BFGS", options={"gtol": 1e-8})
    return float(result.fun), [float(v) for v in result.x]


STARTS = [np.random.default_rng(seed).uniform(-2.0, 2.0, size=4) for seed in range(24)]


@pytest.mark.parametrize(
    "map_object",
    [Map(SerialPool), Map(ThreadPool, 4, join=True), Map(ProcessPool, 4, clear=True)],
    ids=["serial", "thread", "process"],
)
def test_ensemble_finds_the_minimum_from_every_start(map_object: Map) -> None:
    results = map_object(solve, STARTS, timeout=60)
    assert len(results) == len(STARTS)
    reference = [solve(start) for start in STARTS]
    assert results == reference, "the pool gives exactly what the serial loop gives"
    best_value, best_x = min(results)
    assert best_value < 1e-10
    np.testing.assert_allclose(best_x, [1.0, 1.0, 1.0, 1.0], atol=1e-5)
    map_object.clear()


def test_ensemble_of_scipy_itself_on_the_async_and_unordered_maps() -> None:
    """No user function at all: a partial of scipy.optimize.minimize is the task."""
    task = functools.partial(minimize, rosen, jac=rosen_der, method="BFGS")
    with Amap(ProcessPool, 4) as asynchronous:
        pending = asynchronous(task, STARTS, timeout=60)
        values = [float(result.fun) for result in pending.get(120)]
    assert min(values) < 1e-8
    with Uimap(ProcessPool, 4) as unordered:
        assert sorted(float(r.fun) for r in unordered(task, STARTS, timeout=60)) == sorted(values)


TESTHOSTS = 2  # the testhosts fixture's namespace hosts (each its own network namespace and sshd)


def test_ensemble_over_every_host(testhosts: Any) -> None:
    """The same ensemble on a ParallelPool of one local worker and both hosts' manymap-servers."""
    import sys

    from manymap.pools.rpc import ParallelPool

    task = functools.partial(minimize, rosen, jac=rosen_der, method="BFGS")
    servers = [host.alias for host in testhosts]
    with Map(
        ParallelPool,
        1,
        servers=servers,
        ssh_config=testhosts.ssh_config,
        python=sys.executable,
        server_workers=1,
    ) as everywhere:
        results = everywhere(task, STARTS, chunksize=1, timeout=60)
        used = {w.host for w in everywhere._pool.stats().workers.values() if w.tasks}
    assert used == {"localhost", *servers}, "every host ran part of the ensemble"
    reference = [task(start) for start in STARTS]
    assert [float(r.fun) for r in results] == [float(r.fun) for r in reference]
    best = min(results, key=lambda r: float(r.fun))
    np.testing.assert_allclose(best.x, [1.0, 1.0, 1.0, 1.0], atol=1e-5)

"""Optimisers given a manymap pool's ``map``, as their docs show: scipy's
``differential_evolution(workers=pool.map)`` and mystic's solvers (``map=pool.map``,
``SetMapper(pool.map)``), pathos' sibling.

Both draw their random numbers in the caller from a seeded generator and evaluate
the cost of a whole population through the map, so every pool gives exactly what the
builtin ``map`` gives.
"""

from __future__ import annotations

from typing import Any

import client_code
import numpy as np
from client_support import require

SEED = 7


def run_differential_evolution(workers: Any) -> Any:
    optimize = require("scipy.optimize")
    return optimize.differential_evolution(
        optimize.rosen,
        [(-2.0, 2.0)] * 3,
        workers=workers,
        updating="deferred",
        popsize=8,
        maxiter=40,
        tol=1e-8,
        polish=False,
        rng=np.random.default_rng(SEED),
    )


def test_scipy_differential_evolution(pool: Any) -> None:
    result = run_differential_evolution(pool.map)
    serial = run_differential_evolution(map)
    assert result.nfev == serial.nfev
    assert result.nit == serial.nit
    np.testing.assert_array_equal(result.x, serial.x)
    assert result.fun == serial.fun


def run_diffev2(map_function: Any) -> Any:
    """mystic's function interface: ``diffev2(cost, x0, npop, map=...)``."""
    require("mystic")
    from mystic.solvers import diffev2
    from mystic.tools import random_seed

    random_seed(SEED)
    return diffev2(
        client_code.rosen,
        [0.5] * 3,
        bounds=[(-2.0, 2.0)] * 3,
        npop=20,
        maxiter=40,
        gtol=10,
        disp=False,
        full_output=True,
        map=map_function,
    )


def test_mystic_diffev2_with_a_map(pool: Any) -> None:
    xopt, fopt, iterations, fcalls, _ = run_diffev2(pool.map)
    serial = run_diffev2(None)
    np.testing.assert_array_equal(xopt, serial[0])
    assert (fopt, iterations, fcalls) == serial[1:4]


def run_solver(map_function: Any) -> Any:
    """mystic's class interface, as pathos' own docs show: ``solver.SetMapper(pool.map)``."""
    require("mystic")
    from mystic.monitors import VerboseMonitor
    from mystic.solvers import DifferentialEvolutionSolver2
    from mystic.termination import ChangeOverGeneration
    from mystic.tools import random_seed

    random_seed(SEED)
    solver = DifferentialEvolutionSolver2(3, 20)
    solver.SetRandomInitialPoints(min=[-2.0] * 3, max=[2.0] * 3)
    solver.SetEvaluationLimits(generations=40)
    solver.SetGenerationMonitor(VerboseMonitor(0))  # records, prints nothing
    if map_function is not None:
        solver.SetMapper(map_function)
    solver.Solve(client_code.rosen, ChangeOverGeneration(1e-8, 10), CrossProbability=0.9, ScalingFactor=0.8)
    return solver


def test_mystic_solver_with_set_mapper(pool: Any) -> None:
    solver = run_solver(pool.map)
    serial = run_solver(None)
    np.testing.assert_array_equal(solver.bestSolution, serial.bestSolution)
    assert solver.bestEnergy == serial.bestEnergy
    assert solver.generations == serial.generations
    assert solver.evaluations == serial.evaluations

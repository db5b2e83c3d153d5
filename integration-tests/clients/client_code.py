"""The user's own module of the real-client suite: what a project hands to its libraries.

Written the way each library's documentation writes it: plain module-level functions,
closures built by a factory (they refer to this module's globals, ``np`` here), a
callable class with a callback. It is importable (the suite puts this directory on the
workers' ``PYTHONPATH``), like a module of a user's project.
"""

from __future__ import annotations

import importlib
import random
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

# ------------------------------------------------------------------ emcee, zeus


def log_prob(x: Any, mu: Any, icov: Any) -> float:
    """emcee's quickstart: the log-density of a multivariate gaussian (``args=[mu, icov]``)."""
    diff = x - mu
    return float(-0.5 * np.dot(diff, np.dot(icov, diff)))


def gaussian_log_prob(mu: Any, icov: Any) -> Callable[[Any], float]:
    """The same density as a closure over its parameters (it uses the module global ``np``)."""

    def log_prob_of(x: Any) -> float:
        diff = x - mu
        return float(-0.5 * np.dot(diff, np.dot(icov, diff)))

    return log_prob_of


def gaussian_problem(ndim: int, seed: int) -> tuple[Any, Any]:
    """emcee's quickstart problem: random means and a random positive definite covariance."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(-1.0, 1.0, ndim)
    cov = 0.5 - rng.random((ndim, ndim))
    cov = np.triu(cov)
    cov += cov.T - np.diag(cov.diagonal())
    cov = np.dot(cov, cov)
    return means, np.linalg.inv(cov)


# ----------------------------------------------------------------------- dynesty


def loglike(x: Any) -> float:
    """dynesty's quickstart: a correlated 3-d gaussian likelihood."""
    return float(-0.5 * np.dot(x, np.dot(DYNESTY_ICOV, x)) + DYNESTY_NORM)


def prior_transform(u: Any) -> Any:
    """dynesty's quickstart: the unit cube onto a flat prior in [-10, 10)."""
    return 20.0 * u - 10.0


DYNESTY_NDIM = 3
_DYNESTY_COV = np.identity(DYNESTY_NDIM) * (1 - 0.95) + 0.95
DYNESTY_ICOV = np.linalg.inv(_DYNESTY_COV)
DYNESTY_NORM = -0.5 * (np.log(2 * np.pi) * DYNESTY_NDIM + np.linalg.slogdet(_DYNESTY_COV)[1])


# --------------------------------------------------------------------- schwimmbad


def worker(task: tuple[float, float]) -> float:
    """schwimmbad's demo worker."""
    a, b = task
    return a**2 + b**2


def schwimmbad_tasks(n: int, seed: int) -> list[tuple[float, float]]:
    """schwimmbad's demo data: pairs of random numbers."""
    generator = random.Random(seed)
    a = [generator.random() for _ in range(n)]
    b = [generator.random() for _ in range(n)]
    return list(zip(a, b, strict=True))


def schwimmbad_main(pool: Any, tasks: list[tuple[float, float]]) -> list[float]:
    """schwimmbad's demo ``main(pool)``: map the worker, close the pool."""
    results = pool.map(worker, tasks)
    pool.close()
    return list(results)


class Worker:
    """schwimmbad's class-based worker: the callback writes each result in the caller."""

    def __init__(self, output_filename: str) -> None:
        self.output_filename = output_filename

    def work(self, a: float, b: float) -> float:
        return a * a + b * b

    def callback(self, result: float) -> None:
        with open(self.output_filename, "a") as f:
            f.write(f"{result}\n")

    def __call__(self, task: tuple[float, float]) -> float:
        a, b = task
        return self.work(a, b)


def schwimmbad_callback_main(pool: Any, output_filename: str, n: int) -> list[float]:
    """schwimmbad's callback demo: results to a file through ``map(..., callback=)``."""
    worker = Worker(output_filename)
    tasks = list(zip(range(n), range(n)[::-1], strict=True))
    results = [r for r in pool.map(worker, tasks, callback=worker.callback)]
    pool.close()
    return results


def schwimmbad_mpi_style_main(pool: Any, tasks: list[tuple[float, float]]) -> list[float]:
    """schwimmbad's MPI idiom: workers wait, the master maps (every manymap pool is a master)."""
    if not pool.is_master():
        pool.wait()
        sys.exit(0)
    results = pool.map(worker, tasks)
    pool.close()
    return list(results)


# ------------------------------------------------------------------------ mystic


def rosen(x: Any) -> float:
    """The Rosenbrock function, as mystic's examples define their cost functions."""
    x = np.asarray(x)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2.0) ** 2.0 + (1 - x[:-1]) ** 2.0))


# ------------------------------------------- a closure over module state guarded by a lock

_DATA_LOCK = threading.Lock()
_DATA: dict[int, Any] = {}


def data_log_likelihood(seed: int) -> Callable[[Any], tuple[float, bool]]:
    """A closure over the module's data cache and its lock (module globals).

    Like dill, the far side must give it its own module's globals, by reference: each
    worker then makes the data once. Its emcee blob says whether the cache it used is
    the one of the module the worker imported (a copy of the globals would not be).
    """

    def log_likelihood(theta: Any) -> tuple[float, bool]:
        with _DATA_LOCK:
            if seed not in _DATA:  # in a real project: read from disk once per process
                _DATA[seed] = np.random.default_rng(seed).normal(1.0, 0.5, 40)
            y = _DATA[seed]
        mu, log_sigma = theta
        log_l = float(-0.5 * np.sum(((y - mu) / np.exp(log_sigma)) ** 2) - y.size * log_sigma)
        return log_l, importlib.import_module(__name__)._DATA is _DATA

    return log_likelihood

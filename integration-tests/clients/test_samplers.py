"""MCMC and nested samplers given a manymap pool (``pool=``), as their docs show.

emcee, zeus and dynesty draw every random number in the caller from a seeded
generator and only evaluate densities through ``pool.map``, so the chains and
evidences on every pool equal their serial run exactly.
"""

from __future__ import annotations

import random
from typing import Any

import client_code
import numpy as np
from client_support import require

NDIM = 3
NWALKERS = 12
NSTEPS = 30
SEED = 20240611


def start_positions() -> Any:
    return np.random.default_rng(SEED).random((NWALKERS, NDIM))


def run_emcee(log_prob: Any, pool: Any, args: list[Any] | None = None) -> tuple[Any, Any]:
    """emcee's documented parallel run: ``EnsembleSampler(..., pool=pool)`` then ``run_mcmc``."""
    emcee = require("emcee")
    np.random.seed(SEED)  # emcee's sampler takes numpy's global state when it is built
    sampler = emcee.EnsembleSampler(NWALKERS, NDIM, log_prob, args=args, pool=pool)
    sampler.run_mcmc(start_positions(), NSTEPS, progress=False)
    return sampler.get_chain(), sampler.get_log_prob()


def test_emcee_with_a_module_level_log_prob(pool: Any) -> None:
    mu, icov = client_code.gaussian_problem(NDIM, SEED)
    chain, log_prob = run_emcee(client_code.log_prob, pool, args=[mu, icov])
    serial_chain, serial_log_prob = run_emcee(client_code.log_prob, None, args=[mu, icov])
    assert chain.shape == (NSTEPS, NWALKERS, NDIM)
    np.testing.assert_array_equal(chain, serial_chain)
    np.testing.assert_array_equal(log_prob, serial_log_prob)


def test_emcee_with_a_closure_log_prob(pool: Any) -> None:
    """A closure from an importable module, over the module's global ``np``."""
    mu, icov = client_code.gaussian_problem(NDIM, SEED)
    chain, log_prob = run_emcee(client_code.gaussian_log_prob(mu, icov), pool)
    serial_chain, serial_log_prob = run_emcee(client_code.gaussian_log_prob(mu, icov), None)
    np.testing.assert_array_equal(chain, serial_chain)
    np.testing.assert_array_equal(log_prob, serial_log_prob)


def test_emcee_with_a_closure_over_module_state(pool: Any) -> None:
    """A closure from an importable module that uses the module's lock and data cache; its blob
    says whether the worker ran it with the module's own globals, as dill would."""
    emcee = require("emcee")
    ndim, start = 2, np.random.default_rng(SEED).random((NWALKERS, 2))
    chains = []
    for each in (pool, None):
        np.random.seed(SEED)
        sampler = emcee.EnsembleSampler(NWALKERS, ndim, client_code.data_log_likelihood(5), pool=each)
        sampler.run_mcmc(start, NSTEPS, progress=False)
        chains.append(sampler.get_chain())
        assert sampler.get_blobs().all(), "the log-likelihood ran with a copy of its module's globals"
    np.testing.assert_array_equal(chains[0], chains[1])


def test_emcee_with_a_lambda_log_prob(pool: Any) -> None:
    """A lambda of the test itself: goes by value with its cells."""
    mu, icov = client_code.gaussian_problem(NDIM, SEED)
    density = client_code.log_prob
    chain, _ = run_emcee(lambda x: density(x, mu, icov), pool)
    serial_chain, _ = run_emcee(lambda x: density(x, mu, icov), None)
    np.testing.assert_array_equal(chain, serial_chain)


def run_zeus(pool: Any) -> Any:
    """zeus's documented parallel run: ``EnsembleSampler(..., pool=pool)``."""
    zeus = require("zeus")
    mu, icov = client_code.gaussian_problem(NDIM, SEED)
    random.seed(SEED)  # zeus draws from the random module's and numpy's global generators
    np.random.seed(SEED)
    sampler = zeus.EnsembleSampler(
        NWALKERS, NDIM, client_code.log_prob, args=[mu, icov], pool=pool, verbose=False
    )
    sampler.run_mcmc(start_positions(), NSTEPS, progress=False)
    return sampler.get_chain()


def test_zeus_ensemble_slice_sampler(pool: Any) -> None:
    chain = run_zeus(pool)
    assert chain.shape == (NSTEPS, NWALKERS, NDIM)
    np.testing.assert_array_equal(chain, run_zeus(None))


def run_dynesty(pool: Any) -> Any:
    """dynesty's documented pool use: ``NestedSampler(..., pool=pool, queue_size=...)``."""
    dynesty = require("dynesty")
    sampler = dynesty.NestedSampler(
        client_code.loglike,
        client_code.prior_transform,
        client_code.DYNESTY_NDIM,
        nlive=40,
        pool=pool,
        queue_size=2,
        rstate=np.random.default_rng(SEED),
    )
    sampler.run_nested(dlogz=1.0, maxiter=5000, print_progress=False)
    return sampler.results


def test_dynesty_nested_sampler(pool: Any) -> None:
    """The serial run is dynesty's own with schwimmbad's SerialPool (the builtin ``map``)."""
    schwimmbad = require("schwimmbad")
    results = run_dynesty(pool)
    serial = run_dynesty(schwimmbad.SerialPool())
    assert results.niter == serial.niter
    np.testing.assert_array_equal(results.samples, serial.samples)
    np.testing.assert_array_equal(results.logz, serial.logz)
    np.testing.assert_array_equal(results.logl, serial.logl)

"""Conformance of a pool that lends its workers to blocked callers.

A :class:`~manymap.launcher.lowlevel.ManagedWorkerPool` whose ``_channels``
returns a worker's channels lends that worker to a caller blocked on its
call, and one that sets ``_calls_direct`` sends a blocked call of one task to
a ready worker without making it a job. What that must not change, with
real workers: a pool that ends while a worker is on loan, by ``terminate``
or ``close``, with the caller's lease still running or over, ends at once
and settles the call (close lets it finish). A pool package whose pool lends its workers and takes
direct calls subclasses :class:`LendingConformance` with a ``make_pool``
factory, as it does :class:`~manymap.launcher.testing.PoolConformance`.
"""

from __future__ import annotations

import threading
import time

import pytest

from manymap.launcher import AbstractWorkerPool
from manymap.launcher import _managed as managed
from manymap.launcher.lowlevel import ManagedWorkerPool
from manymap.launcher.testing._base import PoolSuite, bounded_join
from manymap.launcher.testing._guards import eventually

__all__ = ["LendingConformance"]


class LendingConformance(PoolSuite):
    """The loans of a pool that lends its workers, as tests (see the module)."""

    nodes = 1

    def test_a_blocked_call_to_a_ready_worker_leaves_no_job(self, pool: AbstractWorkerPool) -> None:
        assert isinstance(pool, ManagedWorkerPool)
        assert pool._calls_direct, f"{type(pool).__name__} does not take direct calls"
        assert pool.pipe(abs, -1) == 1  # its worker is ready from here on
        assert [pool.pipe(pow, i, 2) for i in range(20)] == [i * i for i in range(20)]
        assert pool.apply(divmod, (7, 2)) == (3, 1)
        assert not pool._scheduler.jobs

    @pytest.mark.parametrize("ending", ["terminate", "close"])
    @pytest.mark.parametrize("lease", ["long", "short"])
    def test_the_pool_ends_while_a_worker_is_on_loan(
        self, monkeypatch: pytest.MonkeyPatch, ending: str, lease: str
    ) -> None:
        # A long lease outlasts the test: terminate must wake the caller, close wait
        # for the task. A short one ends while the task runs: a call sent straight to
        # its worker becomes a job then, and a closing pool still waits for it.
        monkeypatch.setattr(managed, "_LEASE", 60.0 if lease == "long" else 0.05)
        outcome: list[object] = []
        pool = self.make_pool(1)
        assert isinstance(pool, ManagedWorkerPool)

        def caller() -> None:
            try:
                outcome.append(pool.pipe(time.sleep, 0.5))
            except Exception as error:
                outcome.append(error)

        try:
            assert pool.pipe(abs, -1) == 1
            thread = threading.Thread(target=caller)
            thread.start()
            assert eventually(lambda: pool._on_loan == 1, timeout=10)
            if lease == "short":
                assert eventually(lambda: bool(pool._scheduler.jobs), timeout=10)  # the lease ended
            started = time.monotonic()
            getattr(pool, ending)()
            bounded_join(pool)
            thread.join(10)
            assert not thread.is_alive()
            assert time.monotonic() - started < 10
        finally:
            pool.terminate()
            bounded_join(pool)
        if ending == "close":
            assert outcome == [None]  # the task ran to its end
        else:
            assert len(outcome) == 1, outcome
            assert isinstance(outcome[0], Exception), outcome

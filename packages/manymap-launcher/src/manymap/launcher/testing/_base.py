"""What every test suite of ``manymap.launcher.testing`` stands on: a pool
factory, a guard that turns a hang into a failure with every thread's stack,
and a ``pool`` fixture whose teardown cannot hang either."""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from manymap.launcher import AbstractWorkerPool
from manymap.launcher.testing._guards import hang_guard

__all__ = ["WAIT", "PoolSuite", "bounded_join"]

WAIT = 60.0  # seconds any single result may take in a suite


class PoolSuite(abc.ABC):
    """Base of the conformance suites: subclasses implement :meth:`make_pool`.

    Attributes:
        nodes: the pool size the suite asks for.
    """

    nodes = 2

    @abc.abstractmethod
    def make_pool(self, nodes: int = 2, **options: Any) -> AbstractWorkerPool:
        """A new, independent pool of ``nodes`` workers with default ``options``."""

    @pytest.fixture(autouse=True)
    def _guard(self, request: pytest.FixtureRequest) -> Iterator[None]:
        with hang_guard(capture=request.config.pluginmanager.getplugin("capturemanager")):
            yield

    @pytest.fixture
    def pool(self) -> Iterator[AbstractWorkerPool]:
        pool = self.make_pool(self.nodes)
        try:
            yield pool
        finally:
            pool.terminate()
            bounded_join(pool)


def bounded_join(pool: AbstractWorkerPool, timeout: float = WAIT) -> None:
    """``pool.join()``, failing the test instead of hanging it."""
    joiner = threading.Thread(target=pool.join, daemon=True)
    joiner.start()
    joiner.join(timeout)
    assert not joiner.is_alive(), f"{pool!r}.join() did not return in {timeout:g} s"

"""Testing helpers of the manymap family.

- :class:`PoolConformance`: the pool contract as pytest test classes; a pool
  package subclasses it with a ``make_pool`` factory (needs pytest);
- :func:`cpython_executor_tests`: CPython's own executor tests (the generic
  parts of ``test_concurrent_futures``) on a pool's ``executor`` view;
- :class:`ReferencePool`: the minimal thread pool that proves the suite;
- :class:`DistributionConformance`: the packaging rules, as tests of an
  installed distribution (needs pytest);
- guards: :func:`hang_guard`, :func:`live_threads`, :func:`live_children`,
  :func:`eventually`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from manymap.launcher.testing._guards import eventually, hang_guard, live_children, live_threads
from manymap.launcher.testing._reference import ReferencePool

if TYPE_CHECKING:
    from manymap.launcher.testing._cpython import cpython_executor_tests
    from manymap.launcher.testing._distribution import DistributionConformance
    from manymap.launcher.testing._suite import PoolConformance

__all__ = [
    "DistributionConformance",
    "PoolConformance",
    "ReferencePool",
    "cpython_executor_tests",
    "eventually",
    "hang_guard",
    "live_children",
    "live_threads",
]


def __getattr__(name: str) -> Any:
    # The suites import pytest: load them only when asked for.
    if name == "PoolConformance":
        from manymap.launcher.testing._suite import PoolConformance

        return PoolConformance
    if name == "cpython_executor_tests":  # imports nothing heavy, but only when asked for
        from manymap.launcher.testing._cpython import cpython_executor_tests

        return cpython_executor_tests
    if name == "DistributionConformance":
        from manymap.launcher.testing._distribution import DistributionConformance

        return DistributionConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

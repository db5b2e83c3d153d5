"""Testing helpers of the manymap family.

- :class:`PoolConformance`: the pool contract as pytest test classes; a pool
  package subclasses it with a ``make_pool`` factory (needs pytest);
- :class:`FaultConformance`: the fault table of ``docs/faults.md`` as pytest
  test classes, with flags for what a pool's workers are (needs pytest);
- :func:`cpython_executor_tests`: CPython's own executor tests (the generic
  parts of ``test_concurrent_futures``) on a pool's ``executor`` view;
- :class:`ReferencePool`: the minimal thread pool that proves the suite;
- :class:`DistributionConformance`: the packaging rules, as tests of an
  installed distribution (needs pytest);
- guards: :func:`hang_guard`, :func:`live_threads`, :func:`live_children`,
  :func:`eventually`, :func:`kill_started`;
- terminals: :func:`run_in_terminal` runs a command on a real pty of a given
  width and :class:`TerminalScreen` replays what it drew (progress bars).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from manymap.launcher.testing._guards import eventually, hang_guard, kill_started, live_children, live_threads
from manymap.launcher.testing._reference import ReferencePool
from manymap.launcher.testing._terminal import RESIZE_HELPER, TerminalScreen, run_in_terminal

if TYPE_CHECKING:
    from manymap.launcher.testing._cpython import cpython_executor_tests
    from manymap.launcher.testing._distribution import DistributionConformance
    from manymap.launcher.testing._faults import FaultConformance
    from manymap.launcher.testing._suite import PoolConformance

__all__ = [
    "RESIZE_HELPER",
    "DistributionConformance",
    "FaultConformance",
    "PoolConformance",
    "ReferencePool",
    "TerminalScreen",
    "cpython_executor_tests",
    "eventually",
    "hang_guard",
    "kill_started",
    "live_children",
    "live_threads",
    "run_in_terminal",
]


def _public(obj: Any) -> Any:
    """Name this package as ``obj``'s module, not the private one defining it."""
    if obj.__module__.startswith(f"{__name__}._"):
        obj.__module__ = __name__
    return obj


for _obj in (
    ReferencePool,
    TerminalScreen,
    eventually,
    hang_guard,
    kill_started,
    live_children,
    live_threads,
    run_in_terminal,
):
    _public(_obj)
del _obj


def __dir__() -> list[str]:
    # The names loaded on first access too, before they are (tab completion, help()).
    return sorted({*globals(), *__all__})


def __getattr__(name: str) -> Any:
    # The suites import pytest: load them only when asked for.
    if name == "PoolConformance":
        from manymap.launcher.testing._suite import PoolConformance

        return _public(PoolConformance)
    if name == "FaultConformance":
        from manymap.launcher.testing._faults import FaultConformance

        return _public(FaultConformance)
    if name == "cpython_executor_tests":  # imports nothing heavy, but only when asked for
        from manymap.launcher.testing._cpython import cpython_executor_tests

        return _public(cpython_executor_tests)
    if name == "DistributionConformance":
        from manymap.launcher.testing._distribution import DistributionConformance

        return _public(DistributionConformance)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

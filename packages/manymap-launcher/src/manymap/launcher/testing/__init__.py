"""Testing helpers of the manymap family.

- :class:`PoolConformance`: the pool contract as pytest test classes; a pool
  package subclasses it with a ``make_pool`` factory (needs pytest);
- :class:`FaultConformance`: the fault table of ``docs/faults.md`` as pytest
  test classes, with flags for what a pool's workers are (needs pytest);
- :class:`LendingConformance`: what a pool that lends its workers to blocked
  callers must keep when it ends during a loan (needs pytest);
- :func:`cpython_executor_tests`: CPython's own executor tests (the generic
  parts of ``test_concurrent_futures``) on a pool's ``executor`` view;
- :class:`ReferencePool`: the minimal thread pool that proves the suite;
- :class:`DistributionConformance`: the packaging rules, as tests of an
  installed distribution (needs pytest);
- guards: :func:`hang_guard`, :func:`live_threads`, :func:`live_children`,
  :func:`eventually`, :func:`kill_started`, :func:`cpu_seconds`;
- terminals: :func:`run_in_terminal` runs a command on a real pty of a given
  width and :class:`TerminalScreen` replays what it drew (progress bars).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from manymap.launcher._public import load_on_access, show_public_paths
from manymap.launcher.testing._guards import (
    cpu_seconds,
    eventually,
    hang_guard,
    kill_started,
    live_children,
    live_threads,
)
from manymap.launcher.testing._reference import ReferencePool
from manymap.launcher.testing._terminal import RESIZE_HELPER, TerminalScreen, run_in_terminal

if TYPE_CHECKING:
    from manymap.launcher.testing._cpython import cpython_executor_tests
    from manymap.launcher.testing._distribution import DistributionConformance
    from manymap.launcher.testing._faults import FaultConformance
    from manymap.launcher.testing._suite import PoolConformance
    from manymap.launcher.testing._suite_lending import LendingConformance

__all__ = [
    "RESIZE_HELPER",
    "DistributionConformance",
    "FaultConformance",
    "LendingConformance",
    "PoolConformance",
    "ReferencePool",
    "TerminalScreen",
    "cpu_seconds",
    "cpython_executor_tests",
    "eventually",
    "hang_guard",
    "kill_started",
    "live_children",
    "live_threads",
    "run_in_terminal",
]


show_public_paths(globals())

# The suites import pytest: they load only when asked for (so does the CPython suite's
# loader, which imports nothing heavy).
__getattr__, __dir__ = load_on_access(
    globals(),
    {
        "PoolConformance": "manymap.launcher.testing._suite",
        "FaultConformance": "manymap.launcher.testing._faults",
        "LendingConformance": "manymap.launcher.testing._suite_lending",
        "cpython_executor_tests": "manymap.launcher.testing._cpython",
        "DistributionConformance": "manymap.launcher.testing._distribution",
    },
)

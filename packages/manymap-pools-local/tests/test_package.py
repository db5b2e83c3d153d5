"""The installed manymap-pools-local distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-pools-local)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

from manymap.launcher.testing import DistributionConformance
from manymap.launcher.testing._imports import fresh_run_loads


class TestDistribution(DistributionConformance):
    distribution = "manymap-pools-local"
    module = "manymap.pools.local"
    namespaces = ("manymap", "manymap.pools")
    lazy_modules = DistributionConformance.FAMILY_DEFERRED


SCRIPT_RUN = """
from manymap.pools.local import ProcessPool, SerialPool, ThreadPool
for pool in (ProcessPool(2), ThreadPool(2), SerialPool()):
    with pool:
        assert pool.map(abs, [-1, -2]) == [1, 2] and pool.pipe(abs, -3) == 3
"""


def test_a_script_run_loads_no_typing() -> None:
    """A script's whole run (import, start-up, map, pipe, close) never loads typing (5 to 10 ms)."""
    assert not fresh_run_loads(SCRIPT_RUN, ["typing"], what="the script")

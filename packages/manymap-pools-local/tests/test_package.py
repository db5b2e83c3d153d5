"""The installed manymap-pools-local distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-pools-local)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

import subprocess
import sys

from manymap.launcher.testing import DistributionConformance


class TestDistribution(DistributionConformance):
    distribution = "manymap-pools-local"
    module = "manymap.pools.local"
    namespaces = ("manymap", "manymap.pools")
    lazy_modules = DistributionConformance.FAMILY_DEFERRED


def test_a_map_and_a_pipe_load_no_typing() -> None:
    """A script's whole run (import, start-up, map, pipe, close) never loads typing (5 to 10 ms)."""
    code = (
        "import sys\n"
        "from manymap.pools.local import ProcessPool, SerialPool, ThreadPool\n"
        "for pool in (ProcessPool(2), ThreadPool(2), SerialPool()):\n"
        "    with pool:\n"
        "        assert pool.map(abs, [-1, -2]) == [1, 2] and pool.pipe(abs, -3) == 3\n"
        "assert 'typing' not in sys.modules, 'typing was loaded'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr

"""The installed manymap-pools-rpc distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-pools-rpc)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

import subprocess
import sys

from manymap.launcher.testing import DistributionConformance


class TestDistribution(DistributionConformance):
    distribution = "manymap-pools-rpc"
    module = "manymap.pools.rpc"
    public_modules = ("manymap.pools.rpc", "manymap.pools.rpc.bootstrap")
    scripts = ("manymap-server",)
    namespaces = ("manymap", "manymap.pools")
    lazy_modules = DistributionConformance.FAMILY_DEFERRED


def test_a_map_and_a_pipe_load_no_typing() -> None:
    """A script's whole run (import, start-up, map, pipe, close) never loads typing (5 to 10 ms)."""
    code = (
        "import sys\n"
        "from manymap.pools.rpc import ParallelPool\n"
        "with ParallelPool(2) as pool:\n"
        "    assert pool.map(abs, [-1, -2]) == [1, 2] and pool.pipe(abs, -3) == 3\n"
        "assert 'typing' not in sys.modules, 'typing was loaded'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr

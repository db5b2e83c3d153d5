"""The installed manymap-pools-rpc distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-pools-rpc)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

from manymap.launcher.testing import DistributionConformance


class TestDistribution(DistributionConformance):
    distribution = "manymap-pools-rpc"
    module = "manymap.pools.rpc"
    public_modules = ("manymap.pools.rpc", "manymap.pools.rpc.bootstrap")
    scripts = ("manymap-server",)
    namespaces = ("manymap", "manymap.pools")
    lazy_modules = DistributionConformance.FAMILY_DEFERRED

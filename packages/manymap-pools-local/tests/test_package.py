"""The installed manymap-pools-local distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-pools-local)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

from manymap.launcher.testing import DistributionConformance


class TestDistribution(DistributionConformance):
    distribution = "manymap-pools-local"
    module = "manymap.pools.local"
    namespaces = ("manymap", "manymap.pools")
    lazy_modules = DistributionConformance.FAMILY_DEFERRED

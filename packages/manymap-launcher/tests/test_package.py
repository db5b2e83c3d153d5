"""The installed manymap-launcher distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-launcher)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

from manymap.launcher.testing import DistributionConformance


class TestDistribution(DistributionConformance):
    distribution = "manymap-launcher"
    module = "manymap.launcher"
    public_modules = ("manymap.launcher", "manymap.launcher.lowlevel", "manymap.launcher.testing")
    namespaces = ("manymap",)
    lazy_modules = DistributionConformance.FAMILY_DEFERRED

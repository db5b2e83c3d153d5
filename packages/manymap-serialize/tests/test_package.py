"""The installed manymap-serialize distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-serialize)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

from manymap.launcher.testing import DistributionConformance


class TestDistribution(DistributionConformance):
    distribution = "manymap-serialize"
    module = "manymap.serialize"
    scripts = ("manymap-serialize",)
    namespaces = ("manymap",)
    lazy_modules = DistributionConformance.FAMILY_DEFERRED

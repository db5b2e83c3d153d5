"""The installed manymap-portpicker distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-portpicker)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

from manymap.launcher.testing import DistributionConformance


class TestDistribution(DistributionConformance):
    distribution = "manymap-portpicker"
    module = "manymap.portpicker"
    scripts = ("manymap-portpicker",)
    namespaces = ("manymap",)

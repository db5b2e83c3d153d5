"""The installed manymap-pools-dask distribution keeps the family's packaging rules.

These tests run against the installed distribution (``nox -s "tests(manymap-pools-dask)"``
installs it from the checkout, non-editable), not against ``src/``.
"""

from __future__ import annotations

from manymap.launcher.testing import DistributionConformance


class TestDistribution(DistributionConformance):
    distribution = "manymap-pools-dask"
    module = "manymap.pools.dask"
    namespaces = ("manymap", "manymap.pools")
    # Dask is imported when a pool starts, not by `import manymap.pools.dask` (the
    # manymap command lists the installed pools without starting them)
    lazy_modules = (*DistributionConformance.FAMILY_DEFERRED, "dask", "distributed")

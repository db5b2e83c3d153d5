"""DaskPool on its embedded LocalCluster (real scheduler, nannies and worker
processes on 127.0.0.1): the fault table always, the whole conformance suite
when ``MANYMAP_DASK_EMBEDDED_SUITE=1``.

Every test of the suite starts a cluster of its own (about 1-3 s each, over a
hundred tests); the default run proves the same suite on clusters the pools
join (``test_joined.py``), where a pool costs one connection, and the
lifecycle of the embedded cluster through the fault table and
``test_dask_pool.py``. The whole suite on embedded clusters passed
(``MANYMAP_DASK_EMBEDDED_SUITE=1 nox -s "tests(manymap-pools-dask)"``)
before this split; run it so after changing how the embedded cluster starts
or stops.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from manymap.launcher.testing import FaultConformance, PoolConformance
from manymap.pools.dask import DaskPool


@pytest.mark.skipif(
    os.environ.get("MANYMAP_DASK_EMBEDDED_SUITE") != "1",
    reason="the whole suite on embedded clusters runs with MANYMAP_DASK_EMBEDDED_SUITE=1 (CI time)",
)
class TestEmbeddedCluster(PoolConformance):
    timeout = 2.0

    def make_pool(self, nodes: int = 2, **options: Any) -> DaskPool:
        return DaskPool(nodes, **options)


class TestEmbeddedClusterFaults(FaultConformance):
    owner_source = "from manymap.pools.dask import DaskPool\npool = DaskPool(2)"

    def make_pool(self, nodes: int = 2, **options: Any) -> DaskPool:
        return DaskPool(nodes, **options)

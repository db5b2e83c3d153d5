"""DaskPool passes the launcher's conformance suite and fault table on an embedded
LocalCluster (real scheduler, nannies and worker processes on 127.0.0.1)."""

from __future__ import annotations

from typing import Any

from manymap.launcher.testing import FaultConformance, PoolConformance
from manymap.pools.dask import DaskPool


class TestEmbeddedCluster(PoolConformance):
    timeout = 2.0

    def make_pool(self, nodes: int = 2, **options: Any) -> DaskPool:
        return DaskPool(nodes, **options)


class TestEmbeddedClusterFaults(FaultConformance):
    owner_source = "from manymap.pools.dask import DaskPool\npool = DaskPool(2)"

    def make_pool(self, nodes: int = 2, **options: Any) -> DaskPool:
        return DaskPool(nodes, **options)

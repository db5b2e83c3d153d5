"""DaskPool on its embedded LocalCluster (real scheduler, nannies and worker
processes on 127.0.0.1): the whole conformance suite and the fault table.

Every test starts a cluster of its own; from a warm forkserver (the session
fixture of conftest.py starts it) that costs about 0.2 s for the cluster and
0.3-0.4 s for a pool's start, first map and close (measured: the whole class
runs in about 80 s of a single process, the fault table in about 30 s).
"""

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

"""The fault table of docs/faults.md (``manymap.launcher.testing.FaultConformance``)
against ProcessPool with each start method and ThreadPool."""

from __future__ import annotations

from typing import Any

from manymap.launcher.testing import FaultConformance
from manymap.pools.local import ProcessPool, ThreadPool


class _ProcessPoolFaults(FaultConformance):
    context = "fork"

    def make_pool(self, nodes: int = 2, **options: Any) -> ProcessPool:
        return ProcessPool(nodes, context=self.context, **options)


class TestProcessPoolForkFaults(_ProcessPoolFaults):
    context = "fork"
    owner_source = "from manymap.pools.local import ProcessPool\npool = ProcessPool(2, context='fork')"


class TestProcessPoolSpawnFaults(_ProcessPoolFaults):
    context = "spawn"
    owner_source = "from manymap.pools.local import ProcessPool\npool = ProcessPool(2, context='spawn')"


class TestProcessPoolForkserverFaults(_ProcessPoolFaults):
    context = "forkserver"
    owner_source = "from manymap.pools.local import ProcessPool\npool = ProcessPool(2, context='forkserver')"


class TestThreadPoolFaults(FaultConformance):
    """Threads of this process: no worker to kill, nothing left when the owner dies."""

    kills_workers = False
    kills_on_timeout = False
    reaps_on_gc = False

    def make_pool(self, nodes: int = 2, **options: Any) -> ThreadPool:
        return ThreadPool(nodes, **options)

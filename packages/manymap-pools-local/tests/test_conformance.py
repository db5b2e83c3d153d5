"""Every local pool passes the launcher's conformance suite; ProcessPool with each start method."""

from __future__ import annotations

from typing import Any

from manymap.launcher.testing import PoolConformance
from manymap.pools.local import ProcessPool, SerialPool, ThreadPool


class TestSerialPool(PoolConformance):
    concurrent = False

    def make_pool(self, nodes: int = 2, **options: Any) -> SerialPool:
        if nodes < 1:  # SerialPool ignores nodes; the suite checks that bad sizes are refused
            raise ValueError(f"nodes must be a positive integer, got {nodes!r}")
        return SerialPool(**options)


class TestThreadPool(PoolConformance):
    def make_pool(self, nodes: int = 2, **options: Any) -> ThreadPool:
        return ThreadPool(nodes, **options)


class TestProcessPoolFork(PoolConformance):
    def make_pool(self, nodes: int = 2, **options: Any) -> ProcessPool:
        return ProcessPool(nodes, context="fork", **options)


class TestProcessPoolSpawn(PoolConformance):
    def make_pool(self, nodes: int = 2, **options: Any) -> ProcessPool:
        return ProcessPool(nodes, context="spawn", **options)


class TestProcessPoolForkserver(PoolConformance):
    def make_pool(self, nodes: int = 2, **options: Any) -> ProcessPool:
        return ProcessPool(nodes, context="forkserver", **options)

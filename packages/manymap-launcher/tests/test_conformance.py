"""The conformance suite, proven against the launcher's reference pool."""

from __future__ import annotations

from typing import Any

from manymap.launcher.testing import PoolConformance, ReferencePool


class TestReferencePool(PoolConformance):
    def make_pool(self, nodes: int = 2, **options: Any) -> ReferencePool:
        return ReferencePool(nodes, **options)

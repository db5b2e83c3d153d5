"""What every part of :class:`~manymap.launcher.testing.PoolConformance` reads of the
suite: its settings, and the pool it makes (documented on ``PoolConformance``)."""

from __future__ import annotations

from typing import Any

from manymap.launcher import AbstractWorkerPool

__all__ = ["SuitePart"]


class SuitePart:
    """The base of the suite's parts (maps, errors, timeouts, lifecycle, futures, progress)."""

    nodes: int
    concurrent: bool
    slow_task: float
    timeout: float

    def make_pool(self, nodes: int = 2, **options: Any) -> AbstractWorkerPool:
        """The pool under test; the package's subclass of the suite defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define make_pool(nodes, **options)")

"""Conformance: a pool's configuration, as pathos users set it.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): ``nodes`` and its pathos aliases (``ncpus``, ``nthreads``) set
to ``None`` mean the default size, in the constructor and by assignment.
"""

from __future__ import annotations

from typing import Any

from manymap.launcher import AbstractWorkerPool, NodesAlias
from manymap.launcher.testing import _tasks as tasks

__all__ = ["PoolConfigConformance"]


def _aliases(pool: AbstractWorkerPool) -> list[str]:
    """The pathos names of ``nodes`` that this pool has as attributes."""
    return [name for name in dir(type(pool)) if isinstance(getattr(type(pool), name, None), NodesAlias)]


class PoolConfigConformance:
    """Pool configuration as pathos users set it, as tests (see the module)."""

    nodes: int

    def make_pool(self, nodes: int = 2, **options: Any) -> AbstractWorkerPool:
        raise NotImplementedError

    def test_nodes_set_to_none_means_the_default_size(self, pool: AbstractWorkerPool) -> None:
        default = pool._default_nodes()
        pool.nodes = None
        assert pool.nodes == default
        assert pool.map(tasks.square, range(6)) == [x * x for x in range(6)]  # a live pool resizes
        pool.nodes = 1
        pool.nodes = None
        assert pool.nodes == default
        assert pool.map(tasks.square, range(6)) == [x * x for x in range(6)]

    def test_every_alias_of_nodes_takes_none(self, pool: AbstractWorkerPool) -> None:
        default = pool._default_nodes()
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        for alias in _aliases(pool):
            setattr(pool, alias, 1)
            assert (pool.nodes, getattr(pool, alias)) == (1, 1)
            setattr(pool, alias, None)
            assert (pool.nodes, getattr(pool, alias)) == (default, default), alias
            assert pool.map(tasks.square, range(3)) == [0, 1, 4]

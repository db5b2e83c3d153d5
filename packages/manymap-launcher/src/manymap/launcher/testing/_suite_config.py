"""Conformance: a pool's configuration, as pathos users set it.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): ``nodes`` and its pathos aliases (``ncpus``, ``nthreads``) set
to ``None`` mean the default size, in the constructor and by assignment; a
pool pickles as its configuration, the copy a new open pool.
"""

from __future__ import annotations

import pickle
from typing import Any

from manymap.launcher import AbstractWorkerPool
from manymap.launcher.lowlevel import NodesAlias
from manymap.launcher.testing import _tasks as tasks

__all__ = ["PoolConfigConformance"]

WAIT = 60.0


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

    def test_a_pool_pickles_as_its_configuration(self) -> None:
        original = self.make_pool(self.nodes, timeout=WAIT, retries=1)
        try:
            assert original.map(tasks.square, range(4)) == [0, 1, 4, 9]
            original.close()
            copy = pickle.loads(pickle.dumps(original))  # a closed, started pool
            try:
                assert type(copy) is type(original)
                assert copy is not original
                assert copy.nodes == original.nodes
                assert "new" in repr(copy)  # no workers until it is used
                assert copy.map(tasks.square, range(4)) == [0, 1, 4, 9]  # open, whatever the original's state
                mapper = pickle.loads(pickle.dumps(copy.map))  # a bound map: its own pool again
                assert mapper(tasks.square, [5]) == [25]
                mapper.__self__.terminate()
                mapper.__self__.join()
            finally:
                copy.terminate()
                copy.join()
        finally:
            original.terminate()
            original.join()

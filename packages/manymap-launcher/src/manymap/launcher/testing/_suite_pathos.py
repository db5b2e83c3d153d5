"""Conformance: what pathos code passes to a pool's constructor works.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests). pathos' pools take ``id=``, the key of a pool in pathos' cache
of pools (two pools with one ``id`` share their workers there); a manymap
pool takes it too and, owning its workers, shares nothing.
"""

from __future__ import annotations

import pickle
from typing import Any

from manymap.launcher import AbstractWorkerPool
from manymap.launcher.testing import _tasks as tasks

__all__ = ["PathosConformance"]


class PathosConformance:
    """pathos' constructor keywords on every pool, as tests (see the module)."""

    nodes: int

    def make_pool(self, nodes: int = 2, **options: Any) -> AbstractWorkerPool:
        raise NotImplementedError

    def test_pathos_id_is_accepted_and_shares_nothing(self) -> None:
        first = self.make_pool(self.nodes, id="shared")
        second = self.make_pool(self.nodes, id="shared")
        copy: AbstractWorkerPool | None = None
        try:
            assert first.map(tasks.square, range(4)) == [0, 1, 4, 9]
            first.close()
            first.join()
            assert second.map(tasks.square, range(3)) == [0, 1, 4]  # not the closed one
            copy = pickle.loads(pickle.dumps(second))
            assert copy is not second
            assert copy.map(tasks.square, range(2)) == [0, 1]
        finally:
            for pool in (first, second, copy):
                if pool is not None:
                    pool.terminate()
                    pool.join()

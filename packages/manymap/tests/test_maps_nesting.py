"""Map objects over a live pool are task arguments too: the pool ships as its configuration."""

from __future__ import annotations

import os
import pickle

import pytest

from manymap.maps import Amap, Asmap, Imap, Ismap, Map, Smap, Uimap
from manymap.pools.local import ProcessPool, ThreadPool
from manymap.serialize import dumps, loads


@pytest.mark.parametrize("cls", [Map, Smap, Imap, Ismap, Uimap, Amap, Asmap])
def test_a_map_object_over_a_live_pool_serializes_as_its_configuration(cls: type[Map]) -> None:
    live = ThreadPool(3, timeout=30)
    m = cls(live)
    m(pow, [(1, 2)]) if cls in (Smap, Ismap, Asmap) else m(abs, [1])  # the live pool has workers now
    for copy in (loads(dumps(m)), pickle.loads(pickle.dumps(m))):
        assert type(copy) is cls
        assert isinstance(copy.pool, ThreadPool)
        assert copy.pool is not live
        assert copy.pool.nodes == 3
        assert "new" in repr(copy.pool)  # no workers shipped, none started yet
        copy.pool.terminate()
        copy.pool.join()
    live.terminate()
    live.join()


def test_a_map_object_over_a_live_thread_pool_runs_in_each_process_task() -> None:
    inner = Map(ThreadPool(2))
    with ProcessPool(2) as outer:

        def row(xs: list[int]) -> tuple[list[int], int]:
            return inner(abs, xs), os.getpid()

        results = outer.map(row, [[-1, -2], [-3]])
    assert [values for values, _ in results] == [[1, 2], [3]]
    assert all(worker != os.getpid() for _, worker in results)
    assert "new" in repr(inner.pool)  # the caller's pool never started

"""manymap.maps over our pools, the stdlib's Pool and the builtins: results, flags, serialization, nesting."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from typing import Any

import pytest

from manymap.launcher import PoolClosedError
from manymap.maps import Amap, Asmap, Imap, Ismap, Map, Smap, Uimap
from manymap.pools.local import ProcessPool, SerialPool, ThreadPool
from manymap.serialize import dumps, loads

X = [1, 2, 3, 4, 5]
Y = [5, 4, 3, 2, 1]
POW = [pow(x, y) for x, y in zip(X, Y, strict=False)]
OURS = [pytest.param(SerialPool, (), id="serial"), pytest.param(ThreadPool, (2,), id="thread")]
OURS_AND_PROCESS = [*OURS, pytest.param(ProcessPool, (2,), id="process")]
ALL = [*OURS_AND_PROCESS, pytest.param(multiprocessing.get_context("fork").Pool, (2,), id="stdlib")]


def _get(result: Any) -> Any:
    return result.get(30)


@pytest.mark.parametrize(("factory", "args"), ALL)
def test_every_map_object_on_every_pool(factory: Any, args: tuple[Any, ...]) -> None:
    pairs = list(zip(X, Y, strict=False))
    with Map(factory, *args) as m:
        assert m(pow, X, Y) == POW
        assert m(abs, [-1, -2]) == [1, 2]
    with Smap(factory, *args) as m:
        assert m(pow, pairs) == POW
    with Imap(factory, *args) as m:
        result = m(pow, X, Y)
        assert not isinstance(result, list)
        assert list(result) == POW
    with Ismap(factory, *args) as m:
        assert list(m(pow, pairs)) == POW
    with Uimap(factory, *args) as m:
        assert sorted(m(pow, X, Y)) == sorted(POW)
    with Amap(factory, *args) as m:
        assert _get(m(pow, X, Y)) == POW
    with Asmap(factory, *args) as m:
        assert _get(m(pow, pairs)) == POW


def test_without_a_pool_the_builtins_run() -> None:
    pairs = list(zip(X, Y, strict=False))
    assert Map()(pow, X, Y) == POW
    assert Map(map)(pow, X, Y) == POW
    assert Smap()(pow, pairs) == POW
    lazy = Imap()(pow, X, Y)
    assert not isinstance(lazy, list)
    assert list(lazy) == POW
    assert list(Ismap()(pow, pairs)) == POW
    assert list(Uimap()(pow, X, Y)) == POW
    assert _get(Amap()(pow, X, Y)) == POW
    assert _get(Asmap()(pow, pairs)) == POW


def test_a_map_object_reuses_its_pool_until_closed() -> None:
    m = Map(ThreadPool, 2)
    m(abs, [1])
    first = m._pool
    m(abs, [1])
    assert m._pool is first, "an open pool is reused, not remade per call"
    m.close()
    m.join()
    m(abs, [1])
    assert m._pool is not first, "a closed pool is replaced at the next call"
    assert repr(first).endswith("closed>")
    m.clear()
    assert m._pool is None


def test_close_flag_closes_after_each_call() -> None:
    m = Map(ThreadPool, 2, close=True)
    assert m.flags == {"close": True, "join": False, "clear": False}
    assert m(abs, [-1, -2]) == [1, 2]
    pool = m._pool
    assert "closed" in repr(pool)
    with pytest.raises(PoolClosedError):
        pool.map(abs, [1])
    assert m(abs, [-3]) == [3]  # a new pool
    assert m._pool is not pool
    m.join()


def test_join_and_clear_flags() -> None:
    m = Map(ProcessPool, 2, join=True)
    assert m.flags == {"close": True, "join": True, "clear": False}
    assert m(abs, [-1]) == [1]
    assert "closed" in repr(m._pool)
    cleared = Map(ProcessPool, 2, clear=True)
    assert cleared.flags == {"close": True, "join": True, "clear": True}
    assert cleared(abs, [-1, -2]) == [1, 2]
    assert cleared._pool is None
    with pytest.raises(ValueError, match="needs"):
        Map(ThreadPool, clear=True, join=False)


def test_join_of_a_running_pool_is_a_value_error_as_in_pathos() -> None:
    m = Map(ThreadPool, 2)
    m(abs, [1])
    with pytest.raises(ValueError, match="still running"):
        m.join()
    m.clear()


def test_lazy_maps_apply_the_flags_once_read() -> None:
    m = Imap(ThreadPool, 2, close=True)
    results = m(abs, range(-50, 0))
    assert m._pool is not None
    assert "running" in repr(m._pool)
    assert list(results) == list(range(50, 0, -1))
    assert "closed" in repr(m._pool)
    m.join()


def test_a_task_error_reaches_the_caller_and_the_flags_still_apply() -> None:
    m = Map(ThreadPool, 2, close=True)
    with pytest.raises(ZeroDivisionError):
        m(lambda x: 1 / x, [1, 0])
    assert "closed" in repr(m._pool)
    m.join()


def test_a_live_pool_is_used_as_is() -> None:
    with ThreadPool(2) as pool:
        m = Map(pool)
        assert m(pow, X, Y) == POW
        assert m._held() is pool
        with pytest.raises(TypeError, match="live pool"):
            Map(pool, 3)
    with pytest.raises(TypeError, match="not a pool"):
        Map(42)


@pytest.mark.parametrize("cls", [Map, Smap, Imap, Ismap, Uimap, Amap, Asmap])
def test_map_objects_serialize_without_their_pool(cls: type[Map]) -> None:
    m = cls(ThreadPool, 2, clear=True, chunksize=1)
    m(pow, [(1, 2)]) if cls in (Smap, Ismap, Asmap) else m(abs, [1])
    for copy in (loads(dumps(m)), pickle.loads(pickle.dumps(m))):
        assert type(copy) is cls
        assert copy.pool is ThreadPool
        assert copy.args == (2,)
        assert copy.kwds == {"chunksize": 1}
        assert copy.flags == m.flags
        assert copy._pool is None


def test_serialized_map_object_runs_after_its_original_is_gone() -> None:
    m = Map(ProcessPool, 2, clear=True)
    copy = loads(dumps(m))
    del m
    assert copy(lambda x: x * 3, [1, 2]) == [3, 6]


def test_map_objects_nest() -> None:
    """A map object is a task's argument and runs its own pool inside a worker of another."""
    inner = Map(ProcessPool, 2, clear=True)
    outer = Map(ProcessPool, 2, clear=True)

    def row(xs: list[int]) -> tuple[list[int], int]:
        return inner(lambda x: (x * 10, os.getppid()), xs), os.getpid()

    results = outer(row, [[1, 2], [3], [4, 5, 6]])
    assert [[v for v, _ in values] for values, _ in results] == [[10, 20], [30], [40, 50, 60]]
    for values, worker in results:
        assert worker != os.getpid()
        assert all(parent == worker for _, parent in values), "inner tasks ran in the worker's own pool"


def test_a_map_object_is_itself_a_task() -> None:
    inner = Smap(ThreadPool, 2, clear=True)
    outer = Map(ProcessPool, 2, clear=True)
    assert outer(inner, [pow, pow], [[(2, 3)], [(3, 2), (2, 2)]]) == [[8], [9, 4]]

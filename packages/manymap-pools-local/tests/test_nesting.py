"""Pools and their maps as task arguments: a pool pickles as its configuration,
and each worker builds (lazily) and keeps its own pool from it."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator

import pool_helpers
import pytest

from manymap.launcher.testing import eventually, live_children
from manymap.pools.local import ProcessPool, SerialPool, ThreadPool
from manymap.serialize import dumps, loads

WAIT = 60.0


@pytest.fixture(params=["fork", "spawn"])
def outer(request: pytest.FixtureRequest) -> Iterator[ProcessPool]:
    pool = ProcessPool(2, context=request.param)
    yield pool
    pool.terminate()
    pool.join()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_thread_map_inside_each_process_task(outer: ProcessPool) -> None:
    inner = ThreadPool(2)
    result = outer.amap(inner.map, [pool_helpers.thread_of] * 4, [range(6)] * 4)
    rows = result.get(WAIT)
    assert [[x for x, _, _ in row] for row in rows] == [list(range(6))] * 4
    for row in rows:
        pids = {pid for _, pid, _ in row}
        assert len(pids) == 1  # the whole inner map ran in one worker process
        assert pids != {os.getpid()}
    assert "new" in repr(inner)  # the caller's pool never started: only its configuration went


def test_a_process_map_inside_each_process_task(outer: ProcessPool) -> None:
    before = live_children()
    rows = outer.map(ProcessPool(2).map, [pool_helpers.family] * 2, [range(4)] * 2)
    assert [[x for x, _, _ in row] for row in rows] == [list(range(4))] * 2
    outer_workers = {ppid for row in rows for _, _, ppid in row}
    inner_workers = {pid for row in rows for _, pid, _ in row}
    assert os.getpid() not in outer_workers  # the inner workers are the outer workers' children
    assert not inner_workers & outer_workers
    outer.close()
    outer.join()
    # the inner pools go with the workers that built them
    assert eventually(lambda: not any(_alive(pid) for pid in inner_workers | outer_workers), timeout=WAIT)
    assert eventually(lambda: not (live_children() - before))


def test_a_pool_round_trips_through_manymap_serialize() -> None:
    for pool in (ThreadPool(3, timeout=5, retries=2), ProcessPool(ncpus=2, chunksize=4), SerialPool()):
        copy = loads(dumps(pool))
        assert type(copy) is type(pool)
        assert copy is not pool
        assert (copy.nodes, copy._defaults) == (pool.nodes, pool._defaults)
        assert copy.map(abs, [-1, -2]) == [1, 2]
        copy.close()
        copy.join()


def test_a_resized_pool_ships_its_size_and_a_closed_one_a_fresh_pool() -> None:
    pool = ThreadPool(3)
    pool.nthreads = 1
    pool.close()
    copy = pickle.loads(pickle.dumps(pool))
    assert copy.nodes == 1
    assert copy.map(abs, [-3]) == [3]
    copy.close()
    copy.join()
    pool.join()


def test_a_worker_keeps_the_pool_it_built(outer: ProcessPool) -> None:
    # The same bound map, shipped again, is the worker's cached function: one inner pool per worker.
    inner = ThreadPool(2).map
    firsts = outer.map(inner, [pool_helpers.thread_of] * 6, [[0]] * 6, chunksize=1)
    seconds = outer.map(inner, [pool_helpers.thread_of] * 6, [[0]] * 6, chunksize=1)
    by_pid: dict[int, set[int]] = {}
    for row in firsts + seconds:
        for _, pid, thread in row:
            by_pid.setdefault(pid, set()).add(thread)
    assert all(len(threads) <= 2 for threads in by_pid.values()), by_pid

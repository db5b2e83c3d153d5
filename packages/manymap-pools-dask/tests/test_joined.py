"""DaskPool joined by address to a ``dask scheduler`` and two ``dask worker``
processes started by hand on 127.0.0.1: the conformance suite and the fault
table, the pool never stopping what it did not start, and a lost scheduler."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from dask_processes import HandCluster, wait_for_workers

from manymap.launcher import ConnectionLostError, PoolClosedError
from manymap.launcher.testing import FaultConformance, PoolConformance
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._base import WAIT
from manymap.pools.dask import DaskPool


class _Joined:
    cluster: ClassVar[HandCluster]

    @pytest.fixture(autouse=True)
    def _cluster(self, hand_cluster: HandCluster) -> None:
        type(self).cluster = hand_cluster
        wait_for_workers(hand_cluster.address, 2)  # a worker restarted by an earlier test is back

    def make_pool(self, nodes: int = 2, **options: Any) -> DaskPool:
        return DaskPool(nodes, address=self.cluster.address, **options)


class TestJoinedByAddress(_Joined, PoolConformance):
    timeout = 2.0


class TestJoinedByAddressFaults(_Joined, FaultConformance):
    # Not the pool's workers: it does not reap them when dropped, nor kill what
    # a task started on them (see the docs' "What the pool pins").
    reaps_on_gc = False
    child_kinds = ()


def test_closing_a_joined_pool_leaves_the_cluster_running(hand_cluster: HandCluster) -> None:
    wait_for_workers(hand_cluster.address, 2)  # a worker restarted by an earlier test is back
    with DaskPool(address=hand_cluster.address) as pool:
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        assert pool.nodes == 2  # every thread of the cluster
    assert all(process.poll() is None for process in hand_cluster.processes)
    with DaskPool(address=hand_cluster.address) as again:
        assert again.map(tasks.square, range(4)) == [0, 1, 4, 9]


def test_a_lost_scheduler_is_an_error_naming_it(tmp_path: Path) -> None:
    own = HandCluster(tmp_path).start(workers=1)
    try:
        wait_for_workers(own.address, 1)
        pool = DaskPool(address=own.address)
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        handle = pool.apipe(tasks.sleep_then, 1, WAIT)
        own.kill_scheduler()
        with pytest.raises(ConnectionLostError, match=re.escape(own.address)):
            handle.get(WAIT)
        pool.terminate()
        pool.join()
    finally:
        own.stop()


def test_an_unreachable_scheduler_is_an_error_naming_it() -> None:
    import dask

    pool = DaskPool(address="tcp://127.0.0.1:1")
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "2s"}),
        pytest.raises(ConnectionLostError, match=re.escape("127.0.0.1:1")),
    ):
        pool.map(tasks.square, range(2))
    with pytest.raises(PoolClosedError, match="broken"):
        pool.map(tasks.square, range(2))

"""Shared set-up of the DaskPool tests.

Dask keeps a few process-wide helpers alive once used (a callback thread, an
offload thread, the forkserver the embedded clusters start workers from).
They belong to the interpreter, not to a pool, so one pool is started and
closed before the tests: the leak checks then see only what a pool leaves.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helper module below, by name

from dask_processes import HandCluster, wait_for_workers

from manymap.launcher.testing import _tasks as tasks
from manymap.pools.dask import DaskPool


@pytest.fixture(scope="session", autouse=True)
def _dask_helpers_started() -> None:
    with DaskPool(1) as pool:
        assert pool.map(tasks.square, range(2)) == [0, 1]


@pytest.fixture(scope="session")
def hand_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HandCluster]:
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, for the session."""
    cluster = HandCluster(tmp_path_factory.mktemp("dask-cluster"))
    try:
        cluster.start(workers=2)
        wait_for_workers(cluster.address, 2)
        yield cluster
    finally:
        cluster.stop()

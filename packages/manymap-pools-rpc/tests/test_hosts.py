"""ParallelPool over local workers plus two namespace hosts (each its own network
namespace and sshd): the conformance suite, and a host's server killed mid-map."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from manymap_testhosts import HostNetwork, process_gone, wait_until

from manymap.launcher import EventKind, TaskEvent
from manymap.launcher.testing import PoolConformance
from manymap.launcher.testing import _tasks as tasks
from manymap.pools.rpc import ParallelPool

TESTHOSTS = 2
WAIT = 60.0


def host_pool(hosts: HostNetwork, nodes: int, **options: Any) -> ParallelPool:
    return ParallelPool(
        nodes,
        servers=[host.alias for host in hosts],
        ssh_config=hosts.ssh_config,
        python=sys.executable,
        server_workers=1,
        **options,
    )


class TestParallelPoolLocalAndTwoHosts(PoolConformance):
    hosts: ClassVar[HostNetwork]

    @pytest.fixture(autouse=True)
    def _hosts(self, testhosts: HostNetwork) -> None:
        type(self).hosts = testhosts

    def make_pool(self, nodes: int = 2, **options: Any) -> ParallelPool:
        if nodes < 1:  # this set-up has local workers; 0 of them is the ssh-only set-up
            raise ValueError(f"nodes must be a positive integer, got {nodes!r}")
        return host_pool(self.hosts, nodes, **options)


@pytest.fixture
def pool(testhosts: HostNetwork) -> Iterator[ParallelPool]:
    pool = host_pool(testhosts, 1)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def test_every_node_gets_work(pool: ParallelPool, testhosts: HostNetwork) -> None:
    assert pool.map(tasks.sleep_then, range(30), [0.02] * 30, chunksize=1) == list(range(30))
    hosts = {w.host for w in pool.stats().workers.values() if w.tasks}
    assert hosts == {"localhost", *(host.alias for host in testhosts)}


def test_a_host_server_killed_mid_map(pool: ParallelPool, testhosts: HostNetwork) -> None:
    victim = testhosts[0].alias
    assert pool.pipe(tasks.square, 2) == 4
    server_pid = next(slot.info["pid"] for slot in pool._slots if slot.node.label == victim)
    killed = threading.Event()

    def consume(event: TaskEvent) -> None:
        on_victim = (event.worker or "").startswith(victim)
        if event.kind is EventKind.STARTED and on_victim and not killed.is_set():
            killed.set()
            os.kill(server_pid, signal.SIGKILL)

    with pytest.warns(RuntimeWarning, match=rf"server {victim} is lost"):
        result = pool.map(tasks.sleep_then, range(30), [0.05] * 30, chunksize=1, progress=consume)
    assert result == list(range(30))
    assert killed.is_set()
    wait_until(lambda: process_gone(server_pid), WAIT, "the killed server to be gone")
    assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]

"""ParallelPool over local workers plus two namespace hosts (each its own network
namespace and sshd): the conformance suite, and a host's server killed mid-map."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from manymap_testhosts import HostNetwork, process_gone, wait_until

from manymap.launcher import EventKind, TaskEvent
from manymap.launcher.testing import PoolConformance
from manymap.launcher.testing import _tasks as tasks
from manymap.pools.rpc import ParallelPool, RemoteHost
from manymap.secure import HostProfile, resolve

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


@dataclass(frozen=True)
class Profiled:
    """A host profile as a host registry gives it (manymap.hosts.Host is one)."""

    name: str
    ssh_config: str
    workers: int | None
    env: Mapping[str, str]
    python: str = sys.executable

    def profile(self) -> HostProfile:
        return resolve(self.name, ssh_config=self.ssh_config)


def test_each_host_profile_brings_its_own_workers_and_environment(testhosts: HostNetwork) -> None:
    first, second = testhosts
    profiles = [
        Profiled(first.alias, str(testhosts.ssh_config), 1, {"MANYMAP_MARK": "first"}),
        Profiled(second.alias, str(testhosts.ssh_config), 2, {"MANYMAP_MARK": "second"}),
    ]
    assert all(isinstance(profile, RemoteHost) for profile in profiles)

    def mark(_: object) -> str:  # a closure: it goes by value to the hosts
        import time

        time.sleep(0.02)
        return os.environ["MANYMAP_MARK"]

    with ParallelPool(0, servers=profiles) as pool:
        marks = pool.map(mark, range(30), chunksize=1)
        assert set(marks) == {"first", "second"}
        assert pool.capacity == 3
        workers = Counter(w.host for w in pool.stats().workers.values())
        assert workers == {first.alias: 1, second.alias: 2}


def test_servers_must_be_specs_or_host_profiles() -> None:
    with pytest.raises(TypeError, match="42 is neither a server spec"):
        ParallelPool(0, servers=[42])  # type: ignore[list-item]

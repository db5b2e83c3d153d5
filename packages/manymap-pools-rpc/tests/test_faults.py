"""ParallelPool's faults, on real servers: a server killed mid-map, every server gone,
a dropped ssh tunnel, unreachable servers, tasks that kill their worker; functions by
value and task output through ssh."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from manymap_testhosts import SSHServer, process_gone, wait_until
from rpc_helpers import ServerProcess, free_port, ssh_pool

from manymap.launcher import ConnectionLostError, EventKind, RemoteTraceback, TaskEvent, WorkerLostError
from manymap.launcher.testing import _tasks as tasks
from manymap.pools.rpc import ParallelPool

WAIT = 60.0


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    first = ServerProcess(tmp_path, workers=2)
    second = ServerProcess(tmp_path, workers=2, secret=first.secret)
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_server_killed_mid_map_its_tasks_rerun_elsewhere(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = two_servers
    killed = threading.Event()

    def consume(event: TaskEvent) -> None:
        on_first = (event.worker or "").startswith(first.address)
        if event.kind is EventKind.STARTED and on_first and not killed.is_set():
            killed.set()
            first.kill()

    with ParallelPool(0, servers=[first.address, second.address], secret=first.secret) as pool:
        with pytest.warns(RuntimeWarning, match=rf"server {first.address} is lost"):
            result = pool.map(tasks.sleep_then, range(40), [0.02] * 40, chunksize=1, progress=consume)
        assert result == list(range(40))
        assert killed.is_set()
        stats = pool.stats()
        assert stats.tasks == 40  # each once: the killed server's task ran again, uncharged
        assert sum(w.tasks for name, w in stats.workers.items() if name.startswith(second.address)) >= 20
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]


def test_a_task_rerun_after_its_server_died_gets_its_whole_timeout(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path, workers=1)
    second = ServerProcess(tmp_path, workers=1, secret=first.secret)
    killed = threading.Event()

    def consume(event: TaskEvent) -> None:
        on_first = (event.worker or "").startswith(first.address)
        if event.kind is EventKind.STARTED and on_first and not killed.is_set():
            killed.set()
            first.kill()

    try:
        with ParallelPool(0, servers=[first.address, second.address], secret=first.secret) as pool:
            # Task 0 starts on the first server, which dies; it runs again on the second once
            # task 1 is done there (1.2 s later), and needs 1.2 s more: past 2 s from its first
            # start, within 2 s of its second.
            with pytest.warns(RuntimeWarning, match="is lost"):
                result = pool.map(tasks.sleep_then, range(3), [1.2] * 3, timeout=2.0, progress=consume)
            assert result == [0, 1, 2]
            assert killed.is_set()
    finally:
        first.stop()
        second.stop()


def test_every_server_gone_is_worker_lost_not_a_hang(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, workers=2)
    try:

        def consume(event: TaskEvent) -> None:
            if event.kind is EventKind.STARTED:
                server.kill()

        pool = ParallelPool(0, servers=[server.address], secret=server.secret)
        with pytest.warns(RuntimeWarning, match="is lost"), pytest.raises(WorkerLostError):
            pool.amap(tasks.sleep_then, range(10), [0.5] * 10, chunksize=1, progress=consume).get(WAIT)
        pool.terminate()
        pool.join()
    finally:
        server.stop()


def test_unreachable_server_is_a_warning_and_its_share_goes_elsewhere(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"
    pool = ParallelPool(1, servers=[dead], secret="whatever")
    # The pool starts as a with block enters it: the warning comes then.
    with pytest.warns(RuntimeWarning, match=rf"server {dead} is not used: .*refused") as record:
        pool.__enter__()
    # The warning points at the line that started the pool, not at manymap's source.
    assert [w.filename for w in record] == [__file__]
    with pool:
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]
        assert {w.host for w in pool.stats().workers.values()} == {"localhost"}


def test_no_usable_node_names_each_server_and_why() -> None:
    dead = [f"127.0.0.1:{free_port()}", "ssh://nobody@127.0.0.1:1"]
    pool = ParallelPool(0, servers=dead, secret="whatever")
    with pytest.warns(RuntimeWarning), pytest.raises(ConnectionLostError) as caught:
        pool.map(tasks.square, range(3))
    text = str(caught.value)
    assert dead[0] in text
    assert "refused" in text
    assert "nobody@127.0.0.1:1" in text
    pool.join()


def test_a_task_that_kills_its_worker_is_worker_lost_and_the_pool_goes_on() -> None:
    with ParallelPool(2) as pool:
        with pytest.raises(WorkerLostError, match="task 0"):
            pool.pipe(os._exit, 3)
        with pytest.raises(WorkerLostError, match="SIGKILL"):
            pool.pipe(_kill_self, signal.SIGKILL)
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]
        assert pool.stats().workers_lost >= 2


def _kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)


def test_task_output_reaches_the_caller_prefixed(capfd: pytest.CaptureFixture[str]) -> None:
    with ParallelPool(1) as pool:
        assert pool.map(print, ["first line", "second line"], chunksize=1) == [None, None]
    out = capfd.readouterr().out
    assert "] first line\n" in out
    assert "] second line\n" in out
    assert "[localhost/ppft-" in out


# --------------------------------------------------------------------------- over ssh


@pytest.fixture(name="ssh_pool")
def _ssh_pool(sshd: SSHServer) -> Iterator[ParallelPool]:
    pool = ssh_pool(sshd)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def test_closures_and_lambdas_by_value_with_remote_tracebacks(
    ssh_pool: ParallelPool, capfd: pytest.CaptureFixture[str]
) -> None:
    offset = 1000

    def shifted(x: int) -> int:
        if x == 3:
            raise KeyError(f"no {x}")
        print(f"shifting {x}")
        return x + offset

    assert ssh_pool.map(lambda x: x * offset, range(3)) == [0, 1000, 2000]
    with pytest.raises(KeyError, match="no 3") as caught:
        ssh_pool.map(shifted, range(5), chunksize=1)
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert "in shifted" in str(caught.value.__cause__)
    assert "shifting 1" in capfd.readouterr().out
    assert ssh_pool.pipe(shifted, 1) == 1001
    server = next(iter(ssh_pool.stats().workers.values()))
    assert server.host == "manymap-sshd"


def test_dropped_ssh_connection_is_worker_lost_not_a_hang(ssh_pool: ParallelPool, sshd: SSHServer) -> None:
    assert ssh_pool.pipe(tasks.square, 3) == 9
    tunnel = ssh_pool._remote[0].tunnel
    server_pid = ssh_pool._slots[0].info["pid"]
    client_port = tunnel.connection.client_address[1]
    dropped = threading.Event()

    def consume(event: TaskEvent) -> None:
        if event.kind is EventKind.STARTED and not dropped.is_set():
            dropped.set()
            assert sshd.kill_connection(client_port), "found no sshd process serving the pool"

    with (
        pytest.warns(RuntimeWarning, match="is lost"),
        pytest.raises(WorkerLostError, match="ssh connection dropped"),
    ):
        ssh_pool.amap(tasks.sleep_then, range(6), [0.5] * 6, chunksize=1, progress=consume).get(WAIT)
    assert dropped.is_set()
    # the server saw the end of its stdin with the ssh session, and stopped
    wait_until(lambda: process_gone(server_pid), WAIT, "the orphaned manymap-server to exit")


def test_closing_the_pool_stops_the_remote_server(sshd: SSHServer) -> None:
    pool = ParallelPool(
        0, servers=[sshd.alias], ssh_config=sshd.ssh_config, python=sys.executable, server_workers=1
    )
    try:
        assert pool.pipe(os.getpid) != os.getpid()
        node = pool._remote[0]
        server_pid = pool._slots[0].info["pid"]
        secret = node.secret
        assert secret.encode() not in Path(f"/proc/{server_pid}/cmdline").read_bytes()
        assert len(bytes.fromhex(secret)) == 32
    finally:
        pool.close()
        pool.join()
    wait_until(lambda: process_gone(server_pid), WAIT, "the remote manymap-server to exit")

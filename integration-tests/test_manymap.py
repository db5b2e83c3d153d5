"""The meta package end to end on two network namespace hosts (each its own sshd) and as a user runs it.

- a hierarchical map: map objects over a ParallelPool of the hosts' manymap-servers,
  whose tasks each run a local ProcessPool map;
- one host's processes all killed mid-map, the map still completing right;
- manymap.core's copy, serve and connect on a registered host;
- manymap-server and manymap-connect started by hand (through ``manymap``), then used by a pool;
- ``manymap map`` and ``python -m manymap`` in a fresh directory, as a user types them.

The hosts share this machine's filesystem, so ``sys.executable`` runs there too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from manymap_testhosts import HostNetwork, process_gone, wait_until

from manymap import core, hosts
from manymap.launcher import EventKind, TaskEvent
from manymap.maps import Map
from manymap.pools.local import ProcessPool
from manymap.pools.rpc import ParallelPool

TESTHOSTS = 2
WAIT = 60.0
PY = sys.executable
MANYMAP = str(Path(sys.executable).with_name("manymap"))


@pytest.fixture
def host_names(testhosts: HostNetwork) -> Iterator[list[str]]:
    """Every namespace host registered in manymap.hosts: pools name them, nothing else."""
    names = [f"integration-host-{i}" for i in range(len(testhosts))]
    for name, host in zip(names, testhosts, strict=True):
        hosts.register(name, host.alias, ssh_config=testhosts.ssh_config, python=PY, workers=1)
    yield names
    for name in names:
        hosts.unregister(name)


# Remote tasks are lambdas and closures: they go by value. (A function of this test module
# would go by reference, and the hosts cannot import a module that pytest imported from a path.)
def squarer() -> Any:
    return lambda x: x * x


def slow_squarer() -> Any:
    def slow_square(x: int) -> int:
        import time

        time.sleep(0.05)  # keeps tasks in flight long enough for the kill to land mid-map
        return x * x

    return slow_square


def test_hierarchical_map_remote_servers_running_local_process_pools(host_names: list[str]) -> None:
    inner = Map(ProcessPool, 2, clear=True)
    square = squarer()

    def row(xs: list[int]) -> tuple[list[int], int, list[int]]:
        values = inner(lambda x: (square(x), os.getpid()), xs)
        return [v for v, _ in values], os.getpid(), [pid for _, pid in values]

    rows = [list(range(i, i + 4)) for i in range(0, 24, 4)]
    with Map(ParallelPool, 0, servers=host_names) as outer:
        results = outer(row, rows, chunksize=1)
        stats = outer._pool.stats()
    assert [values for values, _, _ in results] == [[square(x) for x in r] for r in rows]
    for _, worker, inner_pids in results:
        assert worker != os.getpid()
        assert worker not in inner_pids, "each remote task ran its own process pool"
    used = {w.host for w in stats.workers.values() if w.tasks}
    assert used == set(host_names), "both hosts did work"


def test_one_hosts_processes_killed_mid_map(testhosts: HostNetwork, host_names: list[str]) -> None:
    victim, victim_name = testhosts[0], host_names[0]
    square, slow_square = squarer(), slow_squarer()
    with ParallelPool(1, servers=host_names) as pool:
        assert pool.map(square, range(8)) == [square(x) for x in range(8)]  # every server is up
        doomed = [pid for pid in victim.pids() if pid != victim.sshd.pid]
        assert doomed, f"nothing runs on {victim.alias}"
        killed = threading.Event()

        def consume(event: TaskEvent) -> None:
            on_victim = (event.worker or "").startswith(victim_name)
            if event.kind is EventKind.STARTED and on_victim and not killed.is_set():
                killed.set()
                for pid in doomed:  # the hosts share this machine's pids
                    with contextlib.suppress(ProcessLookupError):
                        core.kill(pid, sig=signal.SIGKILL)

        with pytest.warns(RuntimeWarning, match=rf"{victim_name}.*lost|lost.*{victim_name}"):
            result = pool.map(slow_square, range(40), chunksize=1, progress=consume, timeout=WAIT)
        assert result == [square(x) for x in range(40)]
        assert killed.is_set()
        for pid in doomed:
            wait_until(lambda pid=pid: process_gone(pid), WAIT, f"process {pid} of {victim.alias} gone")
        assert pool.map(square, range(10)) == [square(x) for x in range(10)], "the pool goes on"


@pytest.fixture
def registered(testhosts: HostNetwork) -> Iterator[str]:
    host = testhosts[1]
    hosts.register("integration-node", host.alias, ssh_config=testhosts.ssh_config, python=PY, workers=2)
    yield "integration-node"
    hosts.unregister("integration-node")


def test_core_copy_serve_and_connect_on_a_registered_host(registered: str, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(200_000))
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    copied = core.copy(source, f"{registered}:{remote_dir}", timeout=WAIT)
    assert copied.bytes == 200_000
    assert (remote_dir / "in" / "data.bin").read_bytes() == (source / "data.bin").read_bytes()

    server = core.serve(registered, timeout=WAIT)
    pid = server.pid()
    assert pid is not None
    try:
        with core.connect(registered, server.port) as tunnel:
            address = f"127.0.0.1:{tunnel.local_port}"
            with ParallelPool(0, servers=[address], secret=server.secret) as pool:
                assert pool.map(lambda x: x + 1, range(20)) == list(range(1, 21))
                assert core.getppid(pid, registered, group=True) == core.getppid(pid, group=True)
    finally:
        server.stop()
    wait_until(lambda: process_gone(pid), WAIT, "the served manymap-server stopped")


def test_server_and_connect_by_hand_then_a_pool(testhosts: HostNetwork, tmp_path: Path) -> None:
    """What a user types: a free port on the host, manymap-server there through manymap connect."""
    host = testhosts[0]
    square = squarer()
    port = core.randomport(host.alias, ssh_config=testhosts.ssh_config, python=PY)
    secret = secrets.token_hex(32)
    secret_file = tmp_path / "secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    pid_file = tmp_path / "server.pid"
    server = f"{PY} -m manymap.pools.rpc --port {port} --workers 2"
    server += f" --secret-file {secret_file} --pid-file {pid_file}"
    argv = [MANYMAP, "connect", host.alias, "--ssh-config", str(testhosts.ssh_config)]
    argv += ["--remote-port", str(port), "--server", server]
    connect = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert connect.stdout is not None
        local_port = int(readline(connect.stdout, WAIT))
        # The server binds before it writes its pid file (a file on the shared filesystem).
        wait_until(pid_file.exists, WAIT, "manymap-server wrote its pid file")
        server_pid = int(pid_file.read_text())
        with ParallelPool(0, servers=[f"127.0.0.1:{local_port}"], secret=secret) as pool:
            assert pool.map(square, range(16)) == [square(x) for x in range(16)]
            task_pids = set(pool.map(lambda _: os.getpid(), range(16), chunksize=1))
            children = core.getchild(server_pid, host.alias, ssh_config=testhosts.ssh_config)
            assert task_pids <= set(children), "the tasks ran under the hand-started server"
    finally:
        try:
            # End of input: manymap connect tears everything down (the server's process group too).
            _, stderr = connect.communicate(timeout=WAIT)
        finally:
            if connect.poll() is None:
                connect.kill()
                connect.communicate(timeout=WAIT)
    assert connect.returncode == 0, stderr
    said = stderr.decode(errors="replace")
    what = f"the hand-started manymap-server was killed (manymap connect said: {said})"
    wait_until(lambda: process_gone(server_pid), WAIT, what)


def readline(stream: Any, timeout: float) -> bytes:
    """One line of a pipe, failing after ``timeout`` seconds instead of blocking for ever."""
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([stream], [], [], remaining)[0]:
            raise AssertionError(f"no line within {timeout} s (got {line!r})")
        byte = os.read(stream.fileno(), 1)
        if not byte:
            raise AssertionError(f"end of output before a full line (got {line!r})")
        line += byte
    return line


USER_MODULE = """
def word_count(line):
    return len(line.split())
"""


def test_manymap_map_and_python_dash_m_as_a_user(tmp_path: Path) -> None:
    (tmp_path / "counting.py").write_text(USER_MODULE)
    text = "\n".join(" ".join(["word"] * n) for n in range(50)) + "\n"
    for pool in ("process", "thread", "serial", "parallel"):
        result = subprocess.run(
            [MANYMAP, "map", "counting:word_count", "--pool", pool, "-n", "2"],
            input=text,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{pool}: {result.stderr}"
        assert result.stdout.split() == [str(n) for n in range(50)], pool
    info = subprocess.run(
        [PY, "-m", "manymap", "info"], capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False
    )
    assert info.returncode == 0, info.stderr
    assert "ParallelPool           available" in info.stdout

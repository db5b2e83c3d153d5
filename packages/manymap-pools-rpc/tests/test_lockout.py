"""manymap-server and ParallelPool against descriptor exhaustion (fault table, issue 12 row 5).

Real connections on 127.0.0.1, bounded in number, each closed by the test:
a flood of connections that never authenticate, a server out of descriptors
(EMFILE), and a client process holding more than 1,024 open files.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from rpc_helpers import WAIT, ServerProcess

from manymap.launcher.testing import cpu_seconds
from manymap.pools.rpc import ParallelPool

if TYPE_CHECKING:
    from manymap_testhosts import SSHServer

FLOOD = 1100  # connections: past select()'s limit of 1,024 descriptors


@pytest.fixture(autouse=True)
def enough_files() -> Iterator[None]:
    """This process (and the servers it starts) may open FLOOD + some descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = FLOOD + 512
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.skip(f"this machine allows {hard} open files per process, these tests need {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def serves(server: ServerProcess) -> bool:
    with ParallelPool(0, servers=[server.address], secret=server.secret) as pool:
        return pool.map(abs, range(-20, 0)) == list(range(20, 0, -1))


def flood(server: ServerProcess, count: int) -> list[socket.socket]:
    """``count`` connections to ``server`` that never say a word."""
    held = []
    try:
        for _ in range(count):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=WAIT))
    except BaseException:
        close(held)
        raise
    return held


def close(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (what it sent before, its greeting, is read)."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_a_flood_of_unauthenticated_connections_does_not_lock_a_client_out(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--auth-timeout", "30", workers=1)
    held: list[socket.socket] = []
    try:
        held = flood(server, FLOOD)  # all open, none authenticating, within the auth timeout
        assert serves(server)
    finally:
        close(held)
        server.stop()


def test_a_server_out_of_descriptors_serves_a_client_without_spinning(tmp_path: Path) -> None:
    # 64 descriptors, connections that would wait two minutes to authenticate:
    # accept() fails with EMFILE until the server makes room.
    server = ServerProcess(tmp_path, "--auth-timeout", "120", workers=1, open_files=64)
    held: list[socket.socket] = []
    try:
        assert serves(server)  # started, its worker too
        before, start = cpu_seconds(server.process.pid), time.monotonic()
        held = flood(server, 150)  # more than it has descriptors for
        assert serves(server)  # the oldest unauthenticated connections made room
        busy = cpu_seconds(server.process.pid) - before
        elapsed = time.monotonic() - start
        # Spinning on EMFILE takes a core for as long as the flood lasts; the floor
        # covers the clock ticks of a window that is over in a moment.
        assert busy < max(0.5, 0.5 * elapsed), f"the server used {busy:.2f} s of CPU in {elapsed:.2f} s"
        assert sum(closed_by_server(sock) for sock in held) >= 100  # dropped for newer ones
    finally:
        close(held)
        server.stop()


SCRIPT = """
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
files = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
assert max(files) > 1024
from manymap.pools.rpc import ParallelPool
if len(sys.argv) > 1:  # over ssh: the tunnel and the ssh pipe wait on descriptors above 1,024 too
    pool = ParallelPool(0, servers=[sys.argv[1]], ssh_config=sys.argv[2], python=sys.executable)
else:
    pool = ParallelPool(2)
with pool:
    print(pool.map(abs, range(-5, 0)))
"""


def test_a_pool_works_in_a_process_holding_more_than_1024_files() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[5, 4, 3, 2, 1]"


def test_an_ssh_pool_works_in_a_process_holding_more_than_1024_files(sshd: SSHServer) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, sshd.alias, str(sshd.ssh_config)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[5, 4, 3, 2, 1]"

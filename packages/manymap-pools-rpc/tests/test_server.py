"""manymap-server: the CLI, and hostile input (wrong secret, garbage, port scans,
oversized frames, half-open connections) dropped while other clients are served."""

from __future__ import annotations

import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rpc_helpers import WAIT, ServerProcess, closed_by_peer

from manymap.launcher import AuthenticationError
from manymap.launcher.testing import cpu_seconds
from manymap.pools.rpc import ParallelPool, RPCServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, "--auth-timeout", "2")
    try:
        yield process
    finally:
        process.stop()


def serves(server: ServerProcess) -> bool:
    """A real client gets its work done on ``server``."""
    with ParallelPool(0, servers=[server.address], secret=server.secret) as pool:
        return pool.map(lambda x: x + 1, range(20)) == list(range(1, 21))


def test_first_line_is_the_port_and_the_pid_file_is_written(server: ServerProcess) -> None:
    assert 0 < server.port < 65536
    assert int(server.pid_file.read_text()) == server.process.pid
    assert serves(server)


def test_binds_the_loopback_only_by_default() -> None:
    server = RPCServer(workers=1)
    try:
        assert [listener.getsockname()[0] for listener in server._listeners] == ["127.0.0.1"]
    finally:
        server._shutdown()  # its listener, and the worker template it forked


def test_warns_when_bound_elsewhere(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text("x\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "manymap.pools.rpc",
            "--bind",
            "0.0.0.0",
            "--secret-file",
            str(secret),
            "--idle-timeout",
            "0.1",
            "--workers",
            "1",
        ],
        capture_output=True,
        timeout=WAIT,
        check=True,
    )
    assert b"manymap-server: warning: listening on 0.0.0.0, not only on the loopback" in result.stderr
    assert b"_cli.py" not in result.stderr  # the command's own words, not a line of its source
    assert result.stdout.strip().isdigit()


def test_secret_from_stdin_never_on_the_command_line_and_stops_at_end_of_stdin() -> None:
    secret = os.urandom(32).hex()
    process = subprocess.Popen(
        [sys.executable, "-m", "manymap.pools.rpc", "--secret-file", "-", "--workers", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(WAIT)
        port = int(process.stdout.readline())
        process.stdin.write(secret.encode() + b"\n")
        process.stdin.flush()
        assert secret.encode() not in Path(f"/proc/{process.pid}/cmdline").read_bytes()
        with ParallelPool(0, servers=[f"127.0.0.1:{port}"], secret=secret) as pool:
            assert pool.pipe(lambda: "remote") == "remote"
        process.stdin.close()  # what a dropped ssh connection does
        assert process.wait(WAIT) == 0
    finally:
        process.kill()
        process.wait(WAIT)
        process.stdout.close()


def test_generates_a_secret_when_none_is_given() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "manymap.pools.rpc", "--workers", "1", "--idle-timeout", "30"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        port = int(process.stdout.readline())
        line = process.stderr.readline().decode()
        assert line.startswith("manymap-server: secret ")
        secret = line.split()[-1]
        assert len(bytes.fromhex(secret)) == 32  # 256 bits
        with ParallelPool(0, servers=[f"127.0.0.1:{port}"], secret=secret) as pool:
            assert pool.pipe(abs, -3) == 3
    finally:
        process.terminate()
        process.wait(WAIT)
        process.stdout.close()
        process.stderr.close()


def test_idle_timeout_stops_the_server(tmp_path: Path) -> None:
    process = ServerProcess(tmp_path, "--idle-timeout", "0.5")
    try:
        assert process.process.wait(WAIT) == 0
        assert not process.pid_file.exists()
    finally:
        process.stop()


def test_wrong_secret_is_an_authentication_error_and_others_are_served(server: ServerProcess) -> None:
    pool = ParallelPool(0, servers=[server.address], secret="not the secret")
    with (
        pytest.warns(RuntimeWarning, match=rf"server {server.address} is not used"),
        pytest.raises(AuthenticationError, match=rf"{server.address}.*wrong secret"),
    ):
        pool.map(abs, range(3))
    pool.join()
    assert serves(server)


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(os.urandom(4096), id="garbage"),
        pytest.param(struct.pack("!Q", 1 << 40) + b"x" * 100, id="oversized-frame"),
        pytest.param(struct.pack("!Q", 64) + b"0" * 64, id="bad-answer"),
    ],
)
def test_hostile_bytes_drop_that_connection_only(server: ServerProcess, hostile: bytes) -> None:
    with server.connect() as intruder:
        intruder.sendall(hostile)
        assert closed_by_peer(intruder)
    assert serves(server)


def test_port_scan(server: ServerProcess) -> None:
    for _ in range(50):
        with server.connect():
            pass
    with socket.socket() as sock:  # a reset instead of a close
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.connect(("127.0.0.1", server.port))
    assert serves(server)


def test_half_open_connection_is_dropped_and_does_not_block_others(server: ServerProcess) -> None:
    with server.connect() as silent:
        assert serves(server)  # while the silent one is open
        assert closed_by_peer(silent, timeout=WAIT)  # the auth timeout (2 s) drops it


def test_a_closed_client_kills_its_running_task(server: ServerProcess) -> None:
    pool = ParallelPool(0, servers=[server.address], secret=server.secret, timeout=1)
    try:
        with pytest.raises(TimeoutError):
            pool.pipe(__import__("time").sleep, 60)
        assert pool.pipe(abs, -1) == 1
    finally:
        pool.terminate()
        pool.join()


def test_a_server_and_its_worker_sleep_once_calls_stop(server: ServerProcess) -> None:
    # Its connection thread and its worker look for the next message for a moment
    # after each one, without sleeping: only for a moment.
    with ParallelPool(0, servers=[server.address], secret=server.secret) as pool:
        worker = pool.pipe(os.getpid)
        for _ in range(200):
            pool.pipe(abs, -1)
        pids = [server.process.pid, worker]
        before = [cpu_seconds(pid) for pid in pids]
        time.sleep(1.0)  # idle: what is measured
        used = [cpu_seconds(pid) - seconds for pid, seconds in zip(pids, before, strict=True)]
    assert all(seconds < 0.1 for seconds in used), used  # a spin would take the whole second


def test_a_local_pool_reaches_its_forked_server_through_a_unix_socket() -> None:
    with ParallelPool(2) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]
        families = {slot.sock.family for slot in pool._slots}
    assert families == {socket.AF_UNIX}


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another user needs root (CI runs as root)")
def test_only_the_servers_own_user_may_connect_on_its_unix_socket() -> None:
    name = "\0manymap-test-" + os.urandom(8).hex()
    server = RPCServer("s3cret", workers=1, unix=name, fork_workers=False)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        pid = os.fork()
        if pid == 0:  # another user: dropped before the server's greeting
            code = 1
            try:
                os.setgid(65534)
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(WAIT)
                    sock.connect(name)
                    code = 0 if sock.recv(64) == b"" else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with socket.socket(socket.AF_UNIX) as sock:  # this user: greeted
            sock.settimeout(WAIT)
            sock.connect(name)
            assert sock.recv(64)[8:14] == b"MMRPC6"
            assert server.rejected == 1  # (this one, closed, would count next)
    finally:
        server.stop()
        thread.join(WAIT)

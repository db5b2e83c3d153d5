"""manymap.pools.rpc.bootstrap: start a real manymap-server, locally and over a real sshd,
read its port, hand it the secret, stop it; and what a server that does not start says."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from manymap_testhosts import SSHServer, process_gone, wait_until
from rpc_helpers import WAIT

from manymap.launcher import ResultTimeoutError
from manymap.pools.rpc import ParallelPool
from manymap.pools.rpc._fork_launcher import ForkLauncher
from manymap.pools.rpc._local_launcher import LocalLauncher
from manymap.pools.rpc.bootstrap import ServerStartError, server_command, start_server, stop_server

SECRET = "bootstrap-" + "cd" * 27


def serves(port: int, secret: str) -> bool:
    with ParallelPool(0, servers=[f"127.0.0.1:{port}"], secret=secret) as pool:
        return pool.map(lambda x: x * 2, range(8)) == [x * 2 for x in range(8)]


def test_the_command_line_holds_the_options_and_never_the_secret() -> None:
    argv = server_command("py", port=0, workers=3, max_connections=9, max_tasks_per_worker=5)
    assert argv == [
        "py", "-m", "manymap.pools.rpc", "--secret-file", "-",
        "--port", "0", "--workers", "3", "--max-connections", "9", "--max-tasks-per-worker", "5",
    ]  # fmt: skip
    assert server_command("py") == ["py", "-m", "manymap.pools.rpc", "--secret-file", "-"]


def test_a_local_server_gets_its_secret_on_stdin_serves_and_stops_at_the_end_of_it() -> None:
    launcher = LocalLauncher(server_command(sys.executable, workers=1))
    port = start_server(launcher, SECRET, where="localhost", timeout=WAIT)
    pid = launcher.pid()
    assert pid is not None
    try:
        assert SECRET not in Path(f"/proc/{pid}/cmdline").read_text()
        assert serves(port, SECRET)
    finally:
        stop_server(launcher, WAIT)
    assert launcher.response(WAIT).returncode == 0, "it stopped at the end of its stdin, not by a kill"
    assert process_gone(pid)


def test_a_forked_server_says_it_has_stopped_and_a_thread_reaps_it() -> None:
    """The pool's close goes on at the forked server's last word (its workers are
    gone then), not at its exit; the server is reaped all the same, no zombie left."""
    launcher = ForkLauncher(workers=2, max_connections=4)
    port = start_server(launcher, SECRET, where="localhost", timeout=WAIT)
    pid = launcher.pid()
    assert pid is not None
    with ParallelPool(0, servers=[f"127.0.0.1:{port}"], secret=SECRET) as pool:
        workers = {pool.pipe(os.getpid) for _ in range(20)}
    stop_server(launcher, WAIT)
    assert launcher.response(WAIT).returncode == 0, "it stopped at the end of its stdin, not by a kill"
    assert all(process_gone(worker) for worker in workers), "its workers are gone when it says it stopped"
    # a zombie keeps its /proc entry until it is reaped
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), WAIT, "the stopped server to be reaped")


def test_a_server_that_does_not_start_says_why_and_is_killed() -> None:
    launcher = LocalLauncher([sys.executable, "-c", "import sys; sys.exit('no manymap-server here')"])
    with pytest.raises(ServerStartError, match=r"manymap-server on here did not start: b''") as caught:
        start_server(launcher, SECRET, where="here", timeout=WAIT)
    assert isinstance(caught.value, RuntimeError)
    assert launcher.response(WAIT).returncode == 1


def test_a_silent_server_is_a_timeout_and_is_killed() -> None:
    launcher = LocalLauncher([sys.executable, "-c", "import time; time.sleep(600)"])
    with pytest.raises(ResultTimeoutError):
        start_server(launcher, SECRET, where="here", timeout=0.5)
    pid = launcher.pid()
    assert pid is not None
    wait_until(lambda: process_gone(pid), WAIT, "the silent command was killed")


@pytest.mark.parametrize("secret", ["", "  ", "two\nlines"])
def test_a_secret_is_one_line(secret: str) -> None:
    launcher = LocalLauncher(server_command(sys.executable))
    with pytest.raises(ValueError, match="one line"):
        start_server(launcher, secret, where="here")
    assert launcher.pid() is None, "nothing was started"


def test_a_server_over_ssh_gets_its_secret_and_says_its_stderr_when_it_fails(sshd: SSHServer) -> None:
    from manymap.secure import Pipe

    pipe = Pipe(
        sshd.alias, server_command(sys.executable, workers=1), stdin_open=True, ssh_config=sshd.ssh_config
    )
    port = start_server(pipe, SECRET, where=sshd.alias, timeout=WAIT)
    pid = pipe.pid()
    assert pid is not None
    try:
        assert serves(port, SECRET), "the sshd host shares this machine's loopback"
    finally:
        stop_server(pipe, WAIT)
    wait_until(lambda: process_gone(pid), WAIT, "the remote server stopped")
    bad = Pipe(
        sshd.alias, server_command("/nonexistent/python3"), stdin_open=True, ssh_config=sshd.ssh_config
    )
    with pytest.raises(ServerStartError, match=r"did not start: b'' .*nonexistent") as caught:
        start_server(bad, SECRET, where=sshd.alias, host="127.0.0.1", port=sshd.port)
    assert caught.value.port == sshd.port

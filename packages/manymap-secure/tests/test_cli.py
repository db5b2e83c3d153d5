"""The ``manymap-connect`` command (and ``python -m manymap.secure``), every flag, against real hosts."""

from __future__ import annotations

import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from manymap_testhosts import ECHO_SERVER, HostNetwork, SSHServer, process_gone, wait_until, write_ssh_config

from manymap.portpicker import is_port_free, pick_port, reserve
from manymap.secure import __version__, pick_remote_ports

TESTHOSTS = 2


def _script() -> str:
    beside = Path(sys.executable).parent / "manymap-connect"
    found = str(beside) if beside.exists() else shutil.which("manymap-connect")
    assert found, "the manymap-connect console script is not installed"
    return found


class Connect:
    """A running manymap-connect: its stdout lines come through a queue, so every read has a timeout."""

    def __init__(self, *args: str, module: bool = False) -> None:
        command = [sys.executable, "-m", "manymap.secure"] if module else [_script()]
        self.process = subprocess.Popen(
            [*command, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.stderr = b""
        self._out = threading.Thread(target=self._pump_out, daemon=True)
        self._err = threading.Thread(target=self._pump_err, daemon=True)
        self._out.start()
        self._err.start()

    def _pump_out(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def _pump_err(self) -> None:
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    def port(self, timeout: float = 30) -> int:
        line = self.lines.get(timeout=timeout)
        assert line, f"no port printed; exit {self.process.poll()}, stderr: {self.finish(10)[1]}"
        return int(line)

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for the exit (end of input first); the exit status and stderr."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        code = self.process.wait(timeout=timeout)
        self._err.join(timeout)
        self._out.join(timeout)
        return code, self.stderr.decode()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def connect_cli() -> Iterator[type[Connect]]:
    started: list[Connect] = []

    class Tracked(Connect):
        def __init__(self, *args: str, module: bool = False) -> None:
            super().__init__(*args, module=module)
            started.append(self)

    yield Tracked
    for cli in started:
        cli.close()


def _run(*args: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "manymap.secure"] if module else [_script()]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def _echo(port: int, payload: bytes = b"hello") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.fixture(scope="module")
def echo1(testhosts: HostNetwork) -> Iterator[int]:
    process = testhosts[0].popen(
        sys.executable, "-c", ECHO_SERVER, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert process.stdout is not None
    try:
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def echo2_public(testhosts: HostNetwork) -> Iterator[int]:
    """An echo server on host 2's bridge address (reachable from host 1)."""
    process = testhosts[1].popen(
        sys.executable,
        "-c",
        ECHO_SERVER,
        testhosts[1].address,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    try:
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.parametrize("module", [False, True], ids=["script", "module"])
def test_help_lists_every_flag(module: bool) -> None:
    done = _run("--help", module=module)
    assert done.returncode == 0, done.stderr
    for flag in (
        "HOST",
        "--remote-port",
        "--remote-host",
        "--local-port",
        "--through",
        "--server",
        "--ssh-config",
        "--accept-new-host-key",
        "--connect-timeout",
        "--reconnect",
        "--version",
    ):
        assert flag in done.stdout


def test_version() -> None:
    done = _run("--version")
    assert done.returncode == 0
    assert __version__ in done.stdout


def test_usage_errors() -> None:
    done = _run("somehost")
    assert done.returncode == 2
    assert "nothing to do" in done.stderr
    done = _run("somehost", "--server", "true", "--local-port", "5000")
    assert done.returncode == 2
    assert "--local-port needs --remote-port" in done.stderr
    done = _run("bad host spec", "--remote-port", "1", "--ssh-config", "/dev/null")
    assert done.returncode == 2


@pytest.mark.parametrize("module", [False, True], ids=["script", "module"])
def test_remote_port_until_end_of_input(
    connect_cli: type[Connect], testhosts: HostNetwork, echo1: int, module: bool
) -> None:
    cli = connect_cli(
        testhosts[0].alias, "--remote-port", str(echo1), "-F", str(testhosts.ssh_config), module=module
    )
    port = cli.port()
    assert _echo(port, b"through the cli") == b"through the cli"
    code, stderr = cli.finish()
    assert code == 0, stderr
    assert "end of input" in stderr
    assert is_port_free(port)


def test_local_port(connect_cli: type[Connect], testhosts: HostNetwork, echo1: int) -> None:
    wanted = pick_port()
    cli = connect_cli(
        testhosts[0].alias,
        "-r",
        str(echo1),
        "--local-port",
        str(wanted),
        "--ssh-config",
        str(testhosts.ssh_config),
    )
    assert cli.port() == wanted
    assert _echo(wanted) == b"hello"
    assert cli.finish()[0] == 0


def test_remote_host(connect_cli: type[Connect], testhosts: HostNetwork, echo2_public: int) -> None:
    """From host 1, reach a server on host 2's address."""
    cli = connect_cli(
        testhosts[0].alias,
        "--remote-port",
        str(echo2_public),
        "--remote-host",
        testhosts[1].address,
        "--ssh-config",
        str(testhosts.ssh_config),
    )
    assert _echo(cli.port(), b"to host 2") == b"to host 2"
    assert cli.finish()[0] == 0


def test_through(connect_cli: type[Connect], testhosts: HostNetwork, echo1: int) -> None:
    """host 1's loopback, reached by ssh to host 1 through host 2."""
    cli = connect_cli(
        testhosts[0].alias,
        "--remote-port",
        str(echo1),
        "--through",
        testhosts[1].alias,
        "--ssh-config",
        str(testhosts.ssh_config),
    )
    assert _echo(cli.port(), b"jumped") == b"jumped"
    code, stderr = cli.finish()
    assert code == 0
    assert f"via root@{testhosts[0].address}:22 via root@{testhosts[1].address}:22" in stderr


def test_server_and_tunnel_torn_down_on_ctrl_c(connect_cli: type[Connect], testhosts: HostNetwork) -> None:
    config = str(testhosts.ssh_config)
    (remote_port,) = pick_remote_ports(testhosts[0].alias, ssh_config=config, python=sys.executable)
    server = f"exec {sys.executable} -c '{ECHO_SERVER}' 127.0.0.1 {remote_port}"
    cli = connect_cli(testhosts[0].alias, "--server", server, "--remote-port", str(remote_port), "-F", config)
    port = cli.port()

    def answers() -> bool:
        try:
            return _echo(port, b"up?") == b"up?"
        except OSError:
            return False

    wait_until(answers, 30, "the remote server answering through the tunnel")
    cli.process.send_signal(signal.SIGINT)
    code = cli.process.wait(timeout=30)
    _, stderr = cli.finish()
    assert code == 0, stderr
    assert "stopping (SIGINT)" in stderr
    pid = int(re.search(r", pid (\d+)", stderr).group(1))  # type: ignore[union-attr]
    wait_until(lambda: process_gone(pid), 10, "the remote server ending")
    assert is_port_free(port)


def test_the_server_exiting_ends_the_command_with_its_status(
    connect_cli: type[Connect], sshd: SSHServer
) -> None:
    cli = connect_cli(sshd.alias, "--server", "echo to-stderr; exit 7", "--ssh-config", str(sshd.ssh_config))
    assert cli.process.wait(timeout=30) == 7  # stdin still open: the server's end ended it
    code, stderr = cli.finish()
    assert code == 7
    assert "to-stderr" in stderr
    assert "exited with status 7" in stderr


def test_sigterm_stops_it(connect_cli: type[Connect], sshd: SSHServer) -> None:
    cli = connect_cli(sshd.alias, "--server", "exec sleep 300", "--ssh-config", str(sshd.ssh_config))

    def remote_sleep() -> int | None:
        return next((p for p in sshd.session_pids() if _command_name(p) == "sleep"), None)

    wait_until(lambda: remote_sleep() is not None, 30, "the remote sleep starting")
    pid = remote_sleep()
    assert pid is not None
    cli.process.send_signal(signal.SIGTERM)
    assert cli.process.wait(timeout=30) == 0
    assert "stopping (SIGTERM)" in cli.finish()[1]
    wait_until(lambda: process_gone(pid), 10, "the remote sleep ending")


def _command_name(pid: int) -> str | None:
    """The command name of ``pid``, or None once it has gone (session processes come and go)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _local_echo() -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def test_accept_new_host_key(connect_cli: type[Connect], sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    options = sshd.client_options() | {"UserKnownHostsFile": str(known)}
    config = write_ssh_config(tmp_path / "config", [("fresh", options)])
    server, echo = _local_echo()
    try:
        refused = _run("fresh", "--remote-port", str(echo), "--ssh-config", str(config))
        assert refused.returncode == 1
        assert "unknown host key" in refused.stderr
        assert known.read_text() == ""
        cli = connect_cli(
            "fresh", "--remote-port", str(echo), "--ssh-config", str(config), "--accept-new-host-key"
        )
        assert _echo(cli.port()) == b"hello"
        assert cli.finish()[0] == 0
        assert sshd.host_public.split()[1] in known.read_text()
    finally:
        server.kill()
        server.wait(timeout=10)


def test_connect_timeout(tmp_path: Path, sshd: SSHServer) -> None:
    with reserve() as reservation:
        silent = reservation.take()
    with silent:
        silent.listen(4)
        started = time.monotonic()
        done = _run(
            f"127.0.0.1:{reservation.port}",
            "-r",
            "80",
            "--connect-timeout",
            "1",
            "--ssh-config",
            str(sshd.ssh_config),
        )
        assert time.monotonic() - started < 15
    assert done.returncode == 1
    assert f"127.0.0.1:{reservation.port}: no ssh answer within 1 s" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_lost_connection_ends_it(connect_cli: type[Connect], testhosts: HostNetwork, echo1: int) -> None:
    cli = connect_cli(testhosts[0].alias, "--remote-port", str(echo1), "-F", str(testhosts.ssh_config))
    port = cli.port()
    assert _echo(port) == b"hello"
    client_port = _client_port_of(cli.process.pid, testhosts[0].address)
    assert testhosts[0].kill_connection(client_port)
    assert cli.process.wait(timeout=30) == 1
    assert "ssh connection dropped" in cli.finish()[1]


def test_reconnect(connect_cli: type[Connect], testhosts: HostNetwork, echo1: int) -> None:
    cli = connect_cli(testhosts[0].alias, "-r", str(echo1), "--reconnect", "-F", str(testhosts.ssh_config))
    port = cli.port()
    assert _echo(port, b"one") == b"one"
    assert testhosts[0].kill_connection(_client_port_of(cli.process.pid, testhosts[0].address))

    def works() -> bool:
        try:
            return _echo(port, b"two") == b"two"
        except OSError:
            return False

    wait_until(works, 30, "the tunnel working again after reconnecting")
    assert cli.process.poll() is None
    assert cli.finish()[0] == 0


def _client_port_of(pid: int, server: str) -> int:
    """The local port of ``pid``'s TCP connection to ``server``:22 (read from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[8:-1])
    wanted = "".join(reversed([f"{int(part):02X}" for part in server.split(".")])) + ":0016"
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2] == wanted and fields[9] in inodes:
            return int(fields[1].split(":")[1], 16)
    raise AssertionError(f"process {pid} has no connection to {server}:22")

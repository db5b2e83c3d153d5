"""A tunnel's OpenSSH forward, against the session's real sshd: trust, privacy, life and fallback.

Every process here is real: the ``ssh`` client the tunnel starts is found in
``/proc`` as a child of this process, and is killed by real signals.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import paramiko
import pytest
from manymap_testhosts import ECHO_SERVER, exchange, process_gone, wait_until

from manymap.secure import HostProfile, Tunnel, TunnelError
from manymap.secure._openssh import OpenSSHForward

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="the OpenSSH forward is tied to its thread by setpriv (Linux)"
)


@pytest.fixture(scope="module")
def echo_port(local_server: Callable[[str], int]) -> int:
    """An echo server on 127.0.0.1, where the session's sshd runs."""
    return local_server(ECHO_SERVER)


def _ssh_clients(parent: int) -> list[int]:
    """The pids of the ``ssh`` processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("Name", "").strip() == "ssh" and int(fields.get("PPid", "0")) == parent:
            found.append(int(entry.name))
    return found


def _echo(tunnel: Tunnel, data: bytes) -> bytes:
    with tunnel.connect(timeout=10) as sock:
        sock.settimeout(10)
        return exchange(sock, data)


def test_connect_goes_through_a_private_socket_of_the_openssh_client(
    profile: HostProfile, echo_port: int
) -> None:
    with Tunnel(profile, echo_port, client="openssh") as tunnel:
        tunnel.launch()
        payload = os.urandom(3 * 1024 * 1024)
        assert _echo(tunnel, payload) == payload
        assert tunnel.transport == "openssh"
        assert tunnel.openssh_error is None
        assert tunnel.connections == 0  # no link of the tunnel's own: the bytes bypass Python
        (client,) = _ssh_clients(os.getpid())
        (forward,) = {
            Path(line.split()[-1])
            for line in Path("/proc/net/unix").read_text().splitlines()[1:]
            if line.endswith("/forward.sock") and "/manymap-tunnel-" in line
        }
        directory = forward.parent
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        for name in ("forward.sock", "control.sock"):  # the client's control socket lies there too
            assert stat.S_ISSOCK((directory / name).stat().st_mode)
            assert stat.S_IMODE((directory / name).stat().st_mode) & 0o077 == 0, name
    wait_until(lambda: process_gone(client), 10, "the ssh client ending with the tunnel")
    assert not directory.exists()


def test_the_forward_outlives_the_thread_that_launched_the_tunnel(
    profile: HostProfile, echo_port: int
) -> None:
    # The client dies with the thread that started it: that is the tunnel's watcher, not the caller's.
    tunnel = Tunnel(profile, echo_port, client="openssh")
    launcher = threading.Thread(target=tunnel.launch)
    launcher.start()
    launcher.join(30)
    try:
        assert _echo(tunnel, b"still here") == b"still here"
        assert tunnel.transport == "openssh"
    finally:
        tunnel.kill()


_OWNER = """
import os, signal, sys
from manymap.secure import Tunnel, resolve
tunnel = Tunnel(resolve(sys.argv[1], ssh_config=sys.argv[2]), int(sys.argv[3]), client="openssh")
tunnel.launch()
with tunnel.connect(timeout=10) as sock:
    sock.sendall(b"x")
    assert sock.recv(1) == b"x"
print("up", flush=True)
signal.pause()  # until the test kills it
"""


def test_the_client_dies_with_its_owner_killed_by_sigkill(
    sshd: object, profile: HostProfile, echo_port: int
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(profile.alias), str(sshd.ssh_config), str(echo_port)],  # type: ignore[attr-defined]
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline() == "up\n"
        (client,) = _ssh_clients(owner.pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        wait_until(lambda: process_gone(client), 10, "the ssh client dying with its owner")
    finally:
        owner.kill()
        owner.wait(10)


def test_auto_goes_on_through_paramiko_when_the_client_is_killed(
    profile: HostProfile, echo_port: int
) -> None:
    with Tunnel(profile, echo_port) as tunnel:
        tunnel.launch()
        assert _echo(tunnel, b"one") == b"one"
        assert tunnel.transport == "openssh"
        (client,) = _ssh_clients(os.getpid())
        os.kill(client, signal.SIGKILL)
        wait_until(lambda: tunnel.transport == "paramiko", 10, "the tunnel noticing the client's end")
        assert "the ssh client exited" in str(tunnel.openssh_error)
        assert _echo(tunnel, b"two") == b"two"
        assert tunnel.running()


def test_client_openssh_stops_the_tunnel_when_the_client_is_killed(
    profile: HostProfile, echo_port: int
) -> None:
    with Tunnel(profile, echo_port, client="openssh") as tunnel:
        tunnel.launch()
        assert _echo(tunnel, b"one") == b"one"
        (client,) = _ssh_clients(os.getpid())
        os.kill(client, signal.SIGKILL)
        with pytest.raises(TunnelError, match="the ssh client exited"):
            tunnel.response(10)
        with pytest.raises(TunnelError, match="the ssh client exited"):
            tunnel.connect(timeout=10)


def test_without_an_ssh_client_auto_uses_paramiko_and_openssh_is_refused(
    profile: HostProfile, echo_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no ssh, no setpriv
    with Tunnel(profile, echo_port) as tunnel:
        tunnel.launch()
        assert _echo(tunnel, b"abc") == b"abc"
        assert tunnel.transport == "paramiko"
        assert tunnel.openssh_error == "no ssh client on PATH"
    refused = pytest.raises(TunnelError, match="client='openssh' cannot be used: no ssh client on PATH")
    with Tunnel(profile, echo_port, client="openssh") as tunnel, refused:
        tunnel.launch()
    with pytest.raises(ValueError, match="client must be one of 'auto', 'openssh', 'paramiko', not 'putty'"):
        Tunnel(profile, echo_port, client="putty")  # type: ignore[arg-type]


def test_the_client_refuses_a_host_key_other_than_the_verified_one(profile: HostProfile) -> None:
    impostor = paramiko.RSAKey.generate(2048)
    forward = OpenSSHForward(profile, f"{impostor.get_name()} {impostor.get_base64()}")
    forward.start()
    try:
        while forward.read("err"):
            pass
        assert not forward.ready
        assert "Host key verification failed" in forward.why_ended()
    finally:
        forward.stop()
    assert forward.directory is None


@pytest.mark.parametrize("client", ["openssh", "paramiko"])
def test_a_tunnel_launched_before_its_port_is_known(
    profile: HostProfile, echo_port: int, client: Literal["openssh", "paramiko"], no_leaks: None
) -> None:
    # As a ParallelPool does: the ssh logins run while the far side starts its server.
    with Tunnel(profile, None, client=client) as tunnel:
        tunnel.launch()
        with pytest.raises(TunnelError, match=r"no remote_port yet: set tunnel\.remote_port"):
            tunnel.connect(timeout=10)
        with pytest.raises(ValueError, match="remote_port must be between 1 and 65535, not 0"):
            tunnel.remote_port = 0
        tunnel.remote_port = echo_port
        assert _echo(tunnel, b"late") == b"late"
        assert _echo(tunnel, b"again") == b"again"
        assert tunnel.transport == client
        with pytest.raises(RuntimeError, match=f"already leads to port {echo_port}"):
            tunnel.remote_port = echo_port + 1

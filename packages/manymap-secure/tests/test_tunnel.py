"""Tunnel, jump hosts and dropped connections, against network namespace hosts with their own sshd.

The echo servers listen only on a host's own loopback, inside its network
namespace: from here they are reachable only through ssh.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from manymap_testhosts import (
    ECHO_SERVER,
    HostNetwork,
    NamespaceHost,
    exchange,
    process_gone,
    wait_until,
    write_ssh_config,
)

from manymap.launcher import AbstractLauncher, ConnectionLostError, ResultTimeoutError
from manymap.portpicker import is_port_free, pick_port, reserve
from manymap.secure import (
    HostProfile,
    Pipe,
    RemoteCommandError,
    Tunnel,
    TunnelError,
    connect,
    pick_remote_ports,
    resolve,
)

TESTHOSTS = 2


def _start_echo(host: NamespaceHost, address: str = "127.0.0.1") -> Iterator[int]:
    process = host.popen(
        sys.executable, "-c", ECHO_SERVER, address, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints its port first; the namespace is ours
        yield int(line)
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def echo1(testhosts: HostNetwork) -> Iterator[int]:
    """An echo server on host 1's own loopback."""
    yield from _start_echo(testhosts[0])


@pytest.fixture(scope="module")
def echo2(testhosts: HostNetwork) -> Iterator[int]:
    """An echo server on host 2's own loopback."""
    yield from _start_echo(testhosts[1])


@pytest.fixture(scope="module")
def host1(testhosts: HostNetwork) -> HostProfile:
    return resolve(testhosts[0].alias, ssh_config=testhosts.ssh_config)


@pytest.fixture(scope="module")
def host2(testhosts: HostNetwork) -> HostProfile:
    return resolve(testhosts[1].alias, ssh_config=testhosts.ssh_config)


def _echo_through(address: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        return exchange(sock, payload)


def test_a_tunnel_reaches_a_server_on_the_far_loopback(
    host1: HostProfile, echo1: int, no_leaks: None
) -> None:
    tunnel = Tunnel(host1, echo1)
    assert isinstance(tunnel, AbstractLauncher)
    assert tunnel.pid() is None
    with tunnel:
        tunnel.launch()
        assert tunnel.running()
        assert tunnel.address == ("127.0.0.1", tunnel.local_port)
        assert not is_port_free(tunnel.local_port)
        payload = bytes(range(256)) * 4096
        assert _echo_through(tunnel.address, payload) == payload
    assert not tunnel.running()
    assert is_port_free(tunnel.local_port)


def test_the_far_loopback_is_not_reachable_directly(host1: HostProfile, echo1: int) -> None:
    """The echo server's port, held (bound, not listening) here: only the tunnel reaches the server."""
    with reserve(port=echo1):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", echo1), timeout=10).close()
        with Tunnel(host1, echo1) as tunnel:
            tunnel.launch()
            assert _echo_through(tunnel.address, b"only this way") == b"only this way"


def test_the_local_port_listens_on_loopback_only(
    host1: HostProfile, echo1: int, testhosts: HostNetwork
) -> None:
    with Tunnel(host1, echo1) as tunnel:
        tunnel.launch()
        listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        ours = [
            fields
            for fields in listening
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == tunnel.local_port
        ]
        assert [fields[1].split(":")[0] for fields in ours] == ["0100007F"]  # 127.0.0.1, and nothing else
        with pytest.raises(OSError):
            socket.create_connection((testhosts.gateway, tunnel.local_port), timeout=10).close()


def test_a_hundred_concurrent_connections(host1: HostProfile, echo1: int, no_leaks: None) -> None:
    with Tunnel(host1, echo1) as tunnel:
        tunnel.launch()
        sockets = [socket.create_connection(tunnel.address, timeout=30) for _ in range(100)]
        try:
            wait_until(lambda: tunnel.connections == 100, 30, "100 forwarded connections")
            errors: list[BaseException] = []

            def exchange(index: int, sock: socket.socket) -> None:
                try:
                    payload = index.to_bytes(2, "big") * 20000
                    sock.sendall(payload)
                    received = b""
                    while len(received) < len(payload):
                        chunk = sock.recv(65536)
                        assert chunk, "connection closed early"
                        received += chunk
                    assert received == payload
                except BaseException as error:
                    errors.append(error)

            workers = [threading.Thread(target=exchange, args=item) for item in enumerate(sockets)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(60)
            assert not [w for w in workers if w.is_alive()]
            assert errors == []
        finally:
            for sock in sockets:
                sock.close()
        wait_until(lambda: tunnel.connections == 0, 30, "the forwarded connections closing")


def test_connect_gives_a_socket_through_the_tunnel(host1: HostProfile, echo1: int, no_leaks: None) -> None:
    with Tunnel(host1, echo1) as tunnel:
        tunnel.launch()
        with tunnel.connect(timeout=10) as sock:
            sock.settimeout(10)
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"


@pytest.mark.parametrize("client", ["paramiko", "openssh"])
def test_a_closed_remote_port_is_a_clear_error(
    host1: HostProfile, testhosts: HostNetwork, client: Literal["paramiko", "openssh"], no_leaks: None
) -> None:
    (closed,) = pick_remote_ports(host1, python=sys.executable)
    refused = rf"10\.213\.\d+\.2:22: tunnel .* -> 127\.0\.0\.1:{closed}: .*could not connect"
    with Tunnel(host1, closed, client=client) as tunnel:
        tunnel.launch()
        if client == "paramiko":
            with pytest.raises(TunnelError, match=refused):
                tunnel.connect(timeout=10)
        else:
            # The OpenSSH client learns of the refusal after it took the connection:
            # the socket ends at once, and the reason is kept.
            with tunnel.connect(timeout=10) as sock:
                sock.settimeout(10)
                assert sock.recv(1) == b""
            assert tunnel.transport == "openssh"
            wait_until(lambda: tunnel.last_error is not None, 10, "the tunnel recording the refusal")
            assert re.search(refused, str(tunnel.last_error))
        # Through the port: the local connection is closed at once, and the reason kept.
        before = tunnel.last_error
        with socket.create_connection(tunnel.address, timeout=10) as sock:
            assert sock.recv(1) == b""
        wait_until(lambda: tunnel.last_error is not before, 10, "the tunnel recording the refusal")
        assert str(closed) in str(tunnel.last_error)
        assert tunnel.running()  # the tunnel itself is fine


def test_an_explicit_local_port_and_a_taken_one(host1: HostProfile, echo1: int) -> None:
    port = pick_port()
    with Tunnel(host1, echo1, local_port=port) as tunnel:
        tunnel.launch()
        assert tunnel.local_port == port
        assert _echo_through(tunnel.address, b"abc") == b"abc"
        with Tunnel(host1, echo1, local_port=port) as second:
            with pytest.raises(TunnelError, match="local port is not free"):
                second.launch()
            assert not second.running()


def test_a_jump_through_a_second_host(
    host1: HostProfile, host2: HostProfile, testhosts: HostNetwork, echo2: int
) -> None:
    via = resolve(testhosts[1].alias, ssh_config=testhosts.ssh_config, through=testhosts[0].alias)
    # The ssh server of host 2 sees the connection coming from host 1, not from here.
    seen = Pipe(via, "echo $SSH_CLIENT").run(timeout=30).stdout_text.split()[0]
    assert seen == testhosts[0].address
    direct = Pipe(host2, "echo $SSH_CLIENT").run(timeout=30).stdout_text.split()[0]
    assert direct == testhosts.gateway
    with Tunnel(host2, echo2, through=host1) as tunnel:
        tunnel.launch()
        assert _echo_through(tunnel.address, b"over two hops") == b"over two hops"


def test_proxy_jump_from_the_ssh_config(testhosts: HostNetwork, tmp_path: Path, echo2: int) -> None:
    options = testhosts[1].sshd.client_options()
    options["UserKnownHostsFile"] = str(testhosts.known_hosts)
    options["ProxyJump"] = testhosts[0].alias
    first = testhosts[0].sshd.client_options()
    first["UserKnownHostsFile"] = str(testhosts.known_hosts)
    config = write_ssh_config(tmp_path / "config", [("inner", options), (testhosts[0].alias, first)])
    assert Pipe("inner", "echo $SSH_CLIENT", ssh_config=config).run(timeout=30).stdout_text.split()[0] == (
        testhosts[0].address
    )
    with Tunnel("inner", echo2, ssh_config=config) as tunnel:
        tunnel.launch()
        assert _echo_through(tunnel.address, b"jumped") == b"jumped"


def test_remote_ports_are_free_on_the_far_side(host1: HostProfile, testhosts: HostNetwork) -> None:
    ports = pick_remote_ports(host1, 3, python=sys.executable)
    assert len(set(ports)) == 3
    code = "import socket, sys\nfor p in sys.argv[1:]:\n    socket.socket().bind(('127.0.0.1', int(p)))\n"
    done = testhosts[0].run(sys.executable, "-c", code, *map(str, ports))
    assert done.returncode == 0, done.stderr  # each port binds inside host 1's namespace


def test_remote_port_picking_errors(host1: HostProfile) -> None:
    with pytest.raises(RemoteCommandError, match=r"no free port on 192\.0\.2\.1"):
        pick_remote_ports(host1, bind="192.0.2.1", python=sys.executable)
    with pytest.raises(RemoteCommandError, match="status 127"):
        pick_remote_ports(host1, python="/no/such/python")


def test_the_connection_killed_mid_tunnel(testhosts: HostNetwork, echo1: int, no_leaks: None) -> None:
    """The sshd serving the tunnel dies: open links see EOF at once, every use raises TunnelError."""
    profile = resolve(testhosts[0].alias, ssh_config=testhosts.ssh_config)
    tunnel = Tunnel(profile, echo1)
    tunnel.launch()
    try:
        sock = socket.create_connection(tunnel.address, timeout=10)
        with sock:
            sock.sendall(b"before")
            assert sock.recv(6) == b"before"
            assert tunnel.connection is not None
            killed = testhosts[0].kill_connection(tunnel.connection.client_address[1])
            assert killed, "found no sshd process serving the tunnel"
            started = time.monotonic()
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1) == b""  # end of file, not a hang (the socket has a 10 s timeout)
            with pytest.raises(TunnelError, match=r"ssh connection dropped"):
                tunnel.response(timeout=10)
            assert time.monotonic() - started < 10
        assert not tunnel.running()
        with pytest.raises(TunnelError, match="ssh connection dropped"):
            tunnel.connect(timeout=5)
        with pytest.raises(TunnelError):
            tunnel.check()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(tunnel.address, timeout=10).close()
    finally:
        tunnel.kill()


def test_a_link_on_a_dead_connection_still_closes_its_local_end(
    testhosts: HostNetwork, echo1: int, no_leaks: None
) -> None:
    """Closing a channel sends a message, which fails on a dead connection: the local end closes anyway."""
    profile = resolve(testhosts[0].alias, ssh_config=testhosts.ssh_config)
    tunnel = Tunnel(profile, echo1, client="paramiko")  # the link under test
    tunnel.launch()
    try:
        with tunnel.connect(timeout=10) as sock:
            sock.settimeout(10)
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
            assert tunnel.connection is not None
            tunnel.connection.transport.sock.shutdown(socket.SHUT_WR)  # nothing more goes out over ssh
            # The link fails to forward it, then closes; or, seeing the connection end first,
            # it has closed already (each direction has its own thread): a broken pipe here.
            with contextlib.suppress(BrokenPipeError):
                sock.sendall(b"lost")
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1) == b"", "end of file, not a hang"
    finally:
        tunnel.kill()


def test_reconnect_after_the_connection_is_killed(testhosts: HostNetwork, echo1: int, no_leaks: None) -> None:
    profile = resolve(testhosts[0].alias, ssh_config=testhosts.ssh_config)
    with Tunnel(profile, echo1, reconnect=True) as tunnel:
        tunnel.launch()
        assert _echo_through(tunnel.address, b"one") == b"one"
        assert tunnel.connection is not None
        first = tunnel.connection.client_address[1]
        assert testhosts[0].kill_connection(first)
        wait_until(
            lambda: tunnel.connection is not None and not tunnel.connection.alive, 10, "the drop being seen"
        )
        assert tunnel.running()
        assert _echo_through(tunnel.address, b"two") == b"two"
        assert tunnel.reconnects == 1
        assert tunnel.connection is not None
        assert tunnel.connection.client_address[1] != first


def test_a_partition_is_detected_by_keepalives(testhosts: HostNetwork, echo2: int, no_leaks: None) -> None:
    """Host 2 unplugged: no packet gets through, nothing is closed; keepalive probes notice."""
    profile = resolve(testhosts[1].alias, ssh_config=testhosts.ssh_config, keepalive_interval=0.5)
    connection = connect(profile, shared=False)
    tunnel = Tunnel(connection, echo2)
    tunnel.launch()
    try:
        assert _echo_through(tunnel.address, b"up") == b"up"
        started = time.monotonic()
        with testhosts[1].unplugged():
            with pytest.raises(TunnelError, match="keepalive"):
                tunnel.response(timeout=20)
            assert time.monotonic() - started < 10
            assert not connection.alive
            with pytest.raises(ConnectionLostError, match="keepalive"):
                connection.check()
    finally:
        tunnel.kill()
        connection.close()


def test_response_times_out_while_the_tunnel_is_up(host1: HostProfile, echo1: int) -> None:
    with Tunnel(host1, echo1) as tunnel:
        tunnel.launch()
        with pytest.raises(ResultTimeoutError, match="still open"):
            tunnel.response(timeout=0.1)


def test_bad_ports_are_refused(host1: HostProfile) -> None:
    with pytest.raises(ValueError, match="remote_port"):
        Tunnel(host1, 0)
    with pytest.raises(ValueError, match="local_port"):
        Tunnel(host1, 80, local_port=70000)


def test_a_remote_command_on_a_namespace_host_is_killed_there(host1: HostProfile) -> None:
    pipe = Pipe(host1, ["sleep", "300"])
    pipe.launch()
    pid = pipe.pid()
    assert pid is not None
    pipe.kill()
    wait_until(lambda: process_gone(pid), 10, "the remote sleep ending")

"""manymap.portpicker against the real kernel: ports bound, held, taken over and checked."""

from __future__ import annotations

import ast
import socket
import subprocess
import sys

import pytest

from manymap.launcher import ManymapError
from manymap.portpicker import (
    NoFreePortError,
    Reservation,
    is_port_free,
    parse_ports,
    pick_port,
    pick_ports,
    remote_source,
    reserve,
)

# An address of no interface here (TEST-NET-1): binding it fails, nothing is ever sent to it.
FOREIGN = "192.0.2.123"


def _bind(port: int, *, reuse: bool, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_pick_port_is_bindable_now() -> None:
    port = pick_port()
    assert 0 < port < 65536
    assert is_port_free(port)
    _bind(port, reuse=False).close()


def test_pick_port_on_ipv6_loopback() -> None:
    if not _ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    port = pick_port("::1")
    assert is_port_free(port, "::1")


@pytest.mark.parametrize(
    "call", [lambda: pick_port(FOREIGN), lambda: reserve(FOREIGN), lambda: pick_ports(2, FOREIGN)]
)
def test_a_foreign_address_is_a_clear_error(call: object) -> None:
    with pytest.raises(NoFreePortError, match=FOREIGN) as info:
        call()  # type: ignore[operator]
    assert isinstance(info.value, ManymapError)
    assert isinstance(info.value, OSError)
    assert info.value.host == FOREIGN


def test_a_reservation_holds_the_port_against_every_bind() -> None:
    with reserve() as reservation:
        assert reservation.held
        assert reservation.host == "127.0.0.1"
        assert not is_port_free(reservation.port)
        for reuse in (False, True):
            with pytest.raises(OSError):
                _bind(reservation.port, reuse=reuse)
        with pytest.raises(NoFreePortError, match=str(reservation.port)):
            reserve(port=reservation.port)
        port = reservation.port
    assert not reservation.held
    assert is_port_free(port)
    _bind(port, reuse=False).close()


def test_take_hands_over_a_socket_a_server_listens_on() -> None:
    with reserve() as reservation:
        server = reservation.take()
        assert not reservation.held
        with pytest.raises(ValueError, match="no longer held"):
            reservation.take()
    try:
        # Leaving the block did not close the taken socket: it still owns the port.
        assert server.fileno() != -1
        server.listen()
        server.settimeout(10)
        with socket.create_connection(("127.0.0.1", reservation.port), timeout=10) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"ping")
                assert peer.recv(4) == b"ping"
    finally:
        server.close()


def test_release_is_idempotent_and_repr_says_the_state() -> None:
    reservation = Reservation()
    assert "held" in repr(reservation)
    reservation.release()
    reservation.release()
    assert "released" in repr(reservation)


def test_reserve_a_given_port() -> None:
    port = pick_port()
    with reserve(port=port) as reservation:
        assert reservation.port == port
        assert not is_port_free(port)


def test_pick_ports_are_distinct_and_released() -> None:
    ports = pick_ports(50)
    assert len(set(ports)) == 50
    assert all(is_port_free(port) for port in ports)


def test_pick_ports_needs_a_positive_count() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        pick_ports(0)


def test_a_listening_port_is_not_free() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not is_port_free(port)
    assert is_port_free(port)


def test_a_port_left_in_time_wait_is_free_for_a_server() -> None:
    """After the server side closed a connection first, its port lingers, yet a server can bind it."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(10)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            peer, _ = server.accept()
            peer.close()  # the server side closes first: its end goes to FIN_WAIT / TIME_WAIT
            assert client.recv(1) == b""
    with pytest.raises(OSError):
        _bind(port, reuse=False)  # the lingering connection still holds it ...
    assert is_port_free(port)  # ... but not against SO_REUSEADDR, which servers use


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_is_port_free_rejects_impossible_ports(port: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 65535"):
        is_port_free(port)


def test_is_port_free_on_a_foreign_or_unknown_host() -> None:
    assert not is_port_free(pick_port(), FOREIGN)
    assert not is_port_free(pick_port(), "no-such-host.invalid")


def test_remote_source_is_stdlib_only() -> None:
    source = remote_source()
    tree = ast.parse(source)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import cannot run remotely"
            assert node.module is not None
            imported.add(node.module.split(".")[0])
    assert imported, "the picker imports nothing?"
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)


def test_remote_source_runs_streamed_to_a_bare_python() -> None:
    """Streamed on stdin to ``python -I -S -`` (no site-packages at all), as over an ssh channel."""
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-", "--count", "3"],
        input=remote_source(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    ports = parse_ports(done.stdout, 3)
    assert len(set(ports)) == 3


def test_remote_source_reports_a_foreign_host() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-", "--host", FOREIGN],
        input=remote_source(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert FOREIGN in done.stderr
    assert done.stdout == ""


def test_parse_ports() -> None:
    assert parse_ports("123\n456\n") == [123, 456]
    assert parse_ports(b"80\r\n") == [80]
    assert parse_ports("1\n2\n", count=2) == [1, 2]
    for bad in ("", "abc\n", "0\n", "70000\n"):
        with pytest.raises(ValueError):
            parse_ports(bad)
    with pytest.raises(ValueError, match="expected 3"):
        parse_ports("1\n2\n", count=3)

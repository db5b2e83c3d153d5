"""Bulk data through a tunnel, both ways at once, against the session's real sshd.

A forwarded connection carries two independent streams: a peer that writes
while the far end writes too (a server streaming results while tasks still
arrive, or here a greeting larger than the ssh windows, then an echo) must
see both flow. When one thread pumped both directions, it blocked sending
into the ssh channel (the server's window full, because the far end was busy
writing and not reading), so it stopped reading the channel, so the far
end's writes stopped, so it never read again and the window never opened:
the tunnel hung for good.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from collections.abc import Callable
from typing import Literal

import pytest

from manymap.secure import HostProfile, Tunnel

_GREETING = 16 * 1024 * 1024  # what the far end writes before it reads anything
_TOTAL = 48 * 1024 * 1024  # then echoed: both well past the ssh windows (2 MB each way)
_BLOCK = 1024 * 1024
_WAIT = 60.0  # seconds any one read or write may take before the test fails

#: A server that writes ``_GREETING`` bytes before it reads, then echoes. Small socket
#: buffers, so that little data can hide in the kernel's.
_SERVER = f"""
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
server.bind(("127.0.0.1", 0))
server.listen(8)
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    with conn:
        conn.sendall(bytes(range(256)) * ({_GREETING} // 256))
        while data := conn.recv(65536):
            conn.sendall(data)
"""


@pytest.fixture(scope="module")
def server_port(local_server: Callable[[str], int]) -> int:
    """The greeting-then-echo server on 127.0.0.1 (where the session's sshd runs)."""
    return local_server(_SERVER)


@pytest.mark.parametrize("client", ["paramiko", "openssh"])
def test_both_directions_flow_at_once_and_arrive_whole(
    profile: HostProfile, server_port: int, client: Literal["paramiko", "openssh"], no_leaks: None
) -> None:
    blocks = [os.urandom(_BLOCK) for _ in range(4)]
    expected = hashlib.sha256(bytes(range(256)) * (_GREETING // 256))
    for index in range(_TOTAL // _BLOCK):
        expected.update(blocks[index % len(blocks)])
    errors: list[BaseException] = []
    with Tunnel(profile, server_port, client=client) as tunnel:
        tunnel.launch()
        with tunnel.connect(timeout=_WAIT) as sock:
            sock.settimeout(_WAIT)

            def write_all() -> None:
                try:
                    for index in range(_TOTAL // _BLOCK):
                        sock.sendall(blocks[index % len(blocks)])
                    sock.shutdown(socket.SHUT_WR)
                except BaseException as error:  # reported by the reading side below
                    errors.append(error)

            writer = threading.Thread(target=write_all, daemon=True)
            writer.start()
            received = hashlib.sha256()
            count = 0
            buffer = bytearray(_BLOCK)
            try:
                while count < _GREETING + _TOTAL:
                    size = sock.recv_into(buffer)
                    if not size:
                        break
                    received.update(memoryview(buffer)[:size])
                    count += size
            except TimeoutError:
                pytest.fail(f"the tunnel stalled after {count} of {_GREETING + _TOTAL} bytes came back")
            finally:
                writer.join(_WAIT)
    assert not errors, errors
    assert count == _GREETING + _TOTAL
    assert received.hexdigest() == expected.hexdigest()

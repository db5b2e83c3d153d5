"""Helpers for tests on the test hosts: a bounded poll, process and socket checks, an echo server."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["ECHO_SERVER", "exchange", "process_gone", "socket_fds", "wait_until"]

#: Python source of a TCP echo server: ``python -c ECHO_SERVER [ADDRESS [PORT]]`` binds
#: ADDRESS (default 127.0.0.1) on PORT (default 0: a free one), prints the port, then echoes
#: every connection on its own thread until the peer closes.
ECHO_SERVER = """
import socket, sys, threading
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0))
server.listen(512)
print(server.getsockname()[1], flush=True)
def echo(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)
while True:
    conn, _ = server.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
"""


def exchange(sock: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` on ``sock``, end this side, and return all the peer sent until its end
    (an echo server's answer). The socket's timeout bounds each read."""
    sock.sendall(payload)
    sock.shutdown(socket.SHUT_WR)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it is true, failing after ``timeout`` seconds.

    Only for state that changes outside the calling process (a remote process
    exiting, a port closing), where there is nothing to wait on.

    Raises:
        AssertionError: ``what`` did not happen in time.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def process_gone(pid: int) -> bool:
    """Whether ``pid`` has ended (absent, or a zombie). Namespace hosts share this machine's pids."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def socket_fds() -> set[str]:
    """The sockets (``socket:[inode]``) this process holds open."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found

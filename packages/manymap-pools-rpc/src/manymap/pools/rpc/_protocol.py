"""The wire protocol between a ParallelPool and a ``manymap-server``.

Frames are ppft's (``ppft.transport``): an 8-byte big-endian length, then the
body. Every connection starts with a challenge: the server sends
``HELLO + nonce``, the client answers with ``HMAC-SHA256(secret, nonce)`` in
hex, the server replies ``OK + json`` (its host, its worker count, the pid of
the ppft worker now serving this connection) or ``NO + reason`` and closes.
Until then a frame may be at most :data:`HANDSHAKE_LIMIT` bytes; afterwards
at most the server's frame limit.

After the handshake one connection is one ppft worker:

client -> server
    ``RUN + token(8) + payload``: run a batch; the payload is opaque to the
    server and goes to the worker as it is (see ``_remote.py``).
server -> client
    ``DONE + token(8) + duration(8) + len(stdout)(4) + stdout + result``;
    ``LOST + token(8) + exitcode(4) + reason``: the worker died running the
    batch; the connection goes on with a fresh worker.

A client closes the connection to stop a batch (a timeout, Ctrl-C): the
server kills the worker.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import struct
import time

__all__ = [
    "DONE",
    "HANDSHAKE_LIMIT",
    "HELLO",
    "LOST",
    "NO",
    "OK",
    "RUN",
    "FrameError",
    "answer",
    "receive",
    "send",
]

HELLO, OK, NO, RUN, DONE, LOST = b"MMRPC1", b"OK", b"NO", b"R", b"D", b"L"
HANDSHAKE_LIMIT = 4096  # bytes a frame may have before the client is authenticated
_LENGTH = struct.Struct("!Q")
TOKEN = struct.Struct("!Q")
DONE_HEAD = struct.Struct("!QdI")
LOST_HEAD = struct.Struct("!Qi")


class FrameError(ConnectionError):
    """The peer sent something that is not a frame of this protocol, or closed mid-frame."""


def answer(secret: str, nonce: bytes) -> bytes:
    """The client's proof that it knows ``secret``."""
    return hmac.new(secret.encode(), nonce, hashlib.sha256).hexdigest().encode()


def send(sock: socket.socket, *parts: bytes) -> None:
    """Write one frame made of ``parts``."""
    size = sum(len(part) for part in parts)
    sock.sendall(b"".join((_LENGTH.pack(size), *parts)))


def _read(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrameError("timed out reading a frame")
            sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(left, 1 << 20))
        except TimeoutError as error:
            raise FrameError("timed out reading a frame") from error
        if not chunk:
            if left == size and not chunks and size == _LENGTH.size:
                raise EOFError("the connection was closed")
            raise FrameError("the connection was closed in the middle of a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket, limit: int, timeout: float | None = None) -> bytes:
    """Read one frame of at most ``limit`` bytes.

    Raises:
        EOFError: the peer closed the connection between frames.
        FrameError: a frame over the limit, cut short, or not complete within ``timeout``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        (size,) = _LENGTH.unpack(_read(sock, _LENGTH.size, deadline))
        if size > limit:
            raise FrameError(f"a frame of {size} bytes is over the limit of {limit}")
        return _read(sock, size, deadline)
    finally:
        if timeout is not None:
            sock.settimeout(None)

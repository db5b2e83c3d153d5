"""The wire protocol between a ParallelPool and a ``manymap-server``.

Frames are ppft's (``ppft.transport``): an 8-byte big-endian length, then the
body.

The handshake is mutual and bound to the connection; neither side sends or
loads anything of the work before the other has proved it knows the secret:

1. server -> client: ``HELLO + server nonce(32)``;
2. client -> server: ``PROVE + client nonce(32) + proof("client")``;
3. server -> client, once the client's proof holds: ``OK + proof("server") +
   json`` (its host, its worker count, the pid of the ppft worker now serving
   this connection), or ``NO + reason`` and it closes. The client checks the
   server's proof before it reads anything else.

``proof(role) = HMAC-SHA256(secret, "manymap-rpc " + role + server nonce +
client nonce)``: a proof is good for one role on one connection only, so an
answer reflected to its sender or relayed to another connection proves
nothing. Until the handshake is over a frame may be at most
:data:`HANDSHAKE_LIMIT` bytes.

After it, every frame carries a tag: ``body + HMAC-SHA256(key, seq(8) +
body)``, with one key per direction derived from the secret and both nonces
and ``seq`` counting that direction's frames. A man in the middle that
relays the handshake gets a connection on which it can neither inject,
change, replay nor reorder a frame: the first one it touches ends the
connection (:class:`FrameError`).

client -> server
    ``RUN + token(8) + payload``: run a batch; the payload is opaque to the
    server and goes to the worker as it is (see ``_remote.py``);
    ``PING``: answered with ``PONG`` at once, even while the worker is busy.
server -> client
    ``DONE + token(8) + duration(8) + len(stdout)(4) + stdout + result``;
    ``LOST + token(8) + exitcode(4) + reason``: the worker died running the
    batch; the connection goes on with a fresh worker;
    ``PONG``.

A client closes the connection to stop a batch (a timeout, Ctrl-C): the
server kills the worker and its process group.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import socket
import struct
from collections.abc import Callable

__all__ = [
    "DONE",
    "HANDSHAKE_LIMIT",
    "HELLO",
    "LOST",
    "NO",
    "NONCE",
    "OK",
    "PING",
    "PONG",
    "PROOF",
    "PROVE",
    "RUN",
    "FrameError",
    "FrameReader",
    "Session",
    "TagError",
    "proof",
    "send_plain",
]

HELLO, PROVE, OK, NO = b"MMRPC2", b"P", b"OK", b"NO"
RUN, DONE, LOST, PING, PONG = b"R", b"D", b"L", b"?", b"!"
HANDSHAKE_LIMIT = 4096  # bytes a frame may have before the peer is authenticated
NONCE = 32  # bytes of each side's nonce
PROOF = 32  # bytes of a proof, and of a frame's tag
_LENGTH = struct.Struct("!Q")
_SEQ = struct.Struct("!Q")
TOKEN = struct.Struct("!Q")
DONE_HEAD = struct.Struct("!QdI")
LOST_HEAD = struct.Struct("!Qi")
_CHUNK = 1 << 18  # bytes read at once into the reader's scratch buffer
_LABEL = b"manymap-rpc "


class FrameError(ConnectionError):
    """The peer sent something that is not a frame of this protocol, a frame whose tag
    does not hold, or closed mid-frame."""


class TagError(FrameError):
    """A frame whose tag does not hold: someone other than the authenticated peer wrote it."""


def proof(secret: str, role: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """What ``role`` (``b"client"`` or ``b"server"``) sends to prove it knows ``secret``
    on the connection of these two nonces."""
    return hmac.digest(secret.encode(), _LABEL + role + server_nonce + client_nonce, "sha256")


def new_nonce() -> bytes:
    """A fresh random nonce."""
    return secrets.token_bytes(NONCE)


def send_plain(sock: socket.socket, *parts: bytes) -> None:
    """Write one frame of the handshake (no tag)."""
    size = sum(len(part) for part in parts)
    sock.sendall(b"".join((_LENGTH.pack(size), *parts)))


class Session:
    """The tags of one authenticated connection, seen from one end.

    Args:
        secret: the shared secret.
        server_nonce: the nonce of the server's ``HELLO``.
        client_nonce: the nonce of the client's ``PROVE``.
        client: whether this end is the client.
    """

    def __init__(self, secret: str, server_nonce: bytes, client_nonce: bytes, *, client: bool) -> None:
        master = hmac.digest(secret.encode(), _LABEL + b"session" + server_nonce + client_nonce, "sha256")
        upstream = hmac.digest(master, b"client to server", "sha256")
        downstream = hmac.digest(master, b"server to client", "sha256")
        send_key, receive_key = (upstream, downstream) if client else (downstream, upstream)
        self._send_mac = hmac.new(send_key, digestmod=hashlib.sha256)
        self._receive_mac = hmac.new(receive_key, digestmod=hashlib.sha256)
        self._sent = 0
        self._received = 0

    def seal(self, *parts: bytes | memoryview) -> bytes:
        """One frame on the wire: length, ``parts``, their tag."""
        mac = self._send_mac.copy()
        mac.update(_SEQ.pack(self._sent))
        self._sent += 1
        size = PROOF
        for part in parts:
            mac.update(part)
            size += len(part)
        return b"".join((_LENGTH.pack(size), *parts, mac.digest()))

    def send(self, sock: socket.socket, *parts: bytes | memoryview) -> None:
        """Write one tagged frame made of ``parts``."""
        sock.sendall(self.seal(*parts))

    def open(self, frame: bytes | bytearray) -> memoryview:
        """The body of a received frame whose tag holds.

        Raises:
            FrameError: the frame is too short for a tag, or its tag does not hold.
        """
        if len(frame) < PROOF:
            raise FrameError("a frame too short to carry its tag")
        view = memoryview(frame)
        body = view[: len(frame) - PROOF]
        mac = self._receive_mac.copy()
        mac.update(_SEQ.pack(self._received))
        mac.update(body)
        if not hmac.compare_digest(mac.digest(), view[len(frame) - PROOF :]):
            raise TagError("a frame whose tag does not hold: not from the authenticated peer")
        self._received += 1
        return body


class FrameReader:
    """Frames cut from a byte stream as it arrives, without ever waiting for the rest.

    :meth:`pump` reads once (what is there: call it when the stream is
    readable) and returns the frames now complete; a partial frame waits in
    the reader's buffer for the next call.

    Args:
        read_into: reads into a buffer, returning the count (0 at end of stream).
        limit: the largest frame accepted.
    """

    def __init__(self, read_into: Callable[[memoryview], int], limit: int) -> None:
        self._read_into = read_into
        self.limit = limit
        self._scratch = bytearray(_CHUNK)
        self._pending = bytearray()
        self._body: bytearray | None = None
        self._got = 0
        self.received = 0  # bytes read so far

    @classmethod
    def for_socket(cls, sock: socket.socket, limit: int) -> FrameReader:
        """A reader of ``sock``."""
        return cls(sock.recv_into, limit)

    @classmethod
    def for_fd(cls, fd: int, limit: int) -> FrameReader:
        """A reader of the file descriptor ``fd`` (a pipe)."""
        return cls(lambda buffer: os.readv(fd, [buffer]), limit)

    @property
    def partial(self) -> bool:
        """Whether part of a frame has arrived."""
        return bool(self._pending) or self._body is not None

    def pump(self) -> list[bytearray]:
        """Read what has arrived; the frames it completes.

        Raises:
            EOFError: the stream ended between frames.
            FrameError: the stream ended mid-frame, or a frame is over the limit.
        """
        body = self._body
        try:
            if body is not None and len(body) - self._got >= _CHUNK:
                count = self._read_into(memoryview(body)[self._got :])  # large: straight into place
                if count:
                    self._got += count
                    self.received += count
                    return self._parse()
            else:
                count = self._read_into(memoryview(self._scratch))
                if count:
                    self.received += count
                    self._pending += memoryview(self._scratch)[:count]
                    return self._parse()
        except (BlockingIOError, InterruptedError):
            return []
        if self.partial:
            raise FrameError("the connection was closed in the middle of a frame")
        raise EOFError("the connection was closed")

    def _parse(self) -> list[bytearray]:
        frames: list[bytearray] = []
        pending = self._pending
        while True:
            body = self._body
            if body is not None:
                take = min(len(body) - self._got, len(pending))
                if take:
                    body[self._got : self._got + take] = pending[:take]
                    del pending[:take]
                    self._got += take
                if self._got < len(body):
                    return frames
                frames.append(body)
                self._body = None
            if len(pending) < _LENGTH.size:
                return frames
            (size,) = _LENGTH.unpack_from(pending)
            if size > self.limit:
                raise FrameError(f"a frame of {size} bytes is over the limit of {self.limit}")
            del pending[: _LENGTH.size]
            self._body, self._got = bytearray(size), 0

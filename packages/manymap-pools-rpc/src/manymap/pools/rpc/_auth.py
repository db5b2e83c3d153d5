"""Authentication between a ParallelPool and a ``manymap-server``: proofs, tags, the client's handshake.

The handshake (its frames are ``_wire.py``'s) is mutual and bound to the
connection; neither side sends or loads anything of the work before the
other has proved it knows the secret:

1. the server greets with a fresh nonce;
2. the client answers with its own nonce and ``proof("client")``;
3. the server, once that proof holds, answers ``OK`` with ``proof("server")``
   and then its info in the first tagged frame (or ``NO`` with a reason, and
   closes). The client checks the server's proof before it reads anything else.

``proof(role) = BLAKE2b-256(key, "manymap-rpc " + role + server nonce +
client nonce)``, the key a BLAKE2b hash of the secret: a proof is good for
one role on one connection only, so an answer reflected to its sender or
relayed to another connection proves nothing.

After it, every frame carries a tag (:class:`Session`): ``body +
BLAKE2b-256(key, seq(8) + body)``, with one key per direction derived from
the secret and both nonces and ``seq`` counting that direction's frames.

A body of :data:`BULK` bytes or more (a batch or a result of large arrays)
is tagged with Poly1305 instead, about ten times cheaper per byte: its
one-time key is ``BLAKE2b-256(bulk key, seq(8))``, the bulk key another of
the direction's keys, so no two frames share one, and the 16-byte Poly1305
tag is padded with zeros to the one tag size. A man in the middle that
relays the handshake gets a connection on which it can neither inject,
change, replay nor reorder a frame: the first one it touches ends the
connection (:class:`TagError`).

BLAKE2b in its keyed mode (a MAC) everywhere, not HMAC-SHA256: a small
frame's tag costs about 1 µs instead of 3.5 to 4.7 (OpenSSL's HMAC pays for
every call it takes), a round trip has four, and CPython's own BLAKE2b
module loads in half a millisecond where ``hashlib`` first loads OpenSSL
(5 to 8 ms of a fresh process here, on the way to a local pool's first task).
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import time
from collections.abc import Callable

from manymap.launcher import AuthenticationError, ConnectionLostError, ManymapError
from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._wire import TagError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from hashlib import blake2b
    from typing import Any

    from cryptography.hazmat.primitives.poly1305 import Poly1305

__all__ = [
    "BULK",
    "Connection",
    "ServerBusy",
    "Session",
    "TagError",
    "check_client",
    "handshake",
    "new_nonce",
    "proof",
]

_SEQ = struct.Struct("!Q")
_FRAME_HEAD = wire.LENGTH.pack  # a frame's length
_LABEL = b"manymap-rpc "
_KEY = 32  # bytes of each key of a session
BULK = 1 << 16  # bytes of a body from which on its tag is Poly1305's (the module's docstring)
_PAD = bytes(wire.PROOF - 16)  # after a Poly1305 tag: every tag has one size
_poly1305: list[Callable[[bytes], Poly1305]] = []  # imported on the first bulk frame: it costs 20 ms


_NO_POLY1305 = "a frame of 64 KiB or more needs Poly1305 of the cryptography package, which fails here"


def _one_time_mac(key: bytes) -> Poly1305:
    """Poly1305 under the one-time ``key``.

    Raises:
        RuntimeError: this cryptography cannot (an OpenSSL without Poly1305,
            such as one in FIPS mode): the connection ends, saying why.
    """
    if not _poly1305:
        try:
            from cryptography.hazmat.primitives.poly1305 import Poly1305
        except ImportError as error:
            raise RuntimeError(f"{_NO_POLY1305}: {error}") from error
        _poly1305.append(Poly1305)
    try:
        return _poly1305[0](key)
    except Exception as error:  # cryptography's UnsupportedAlgorithm
        raise RuntimeError(f"{_NO_POLY1305}: {error}") from error


class ServerBusy(ManymapError):
    """The server serves as many clients as it takes."""


def proof(secret: str, role: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    """What ``role`` (``b"client"`` or ``b"server"``) sends to prove it knows ``secret``
    on the connection of these two nonces."""
    return _mac(_secret_key(secret), _LABEL + role + server_nonce + client_nonce)


def _blake2b() -> type[blake2b]:
    """BLAKE2b: CPython's own module, which ``hashlib`` imports after OpenSSL's (5 to
    8 ms of a fresh process here, which a local pool's start would wait for)."""
    if not _BLAKE2B:
        try:
            from _blake2 import blake2b
        except ImportError:  # another Python: hashlib's, whatever it costs
            from hashlib import blake2b
        _BLAKE2B.append(blake2b)
    return _BLAKE2B[0]


_BLAKE2B: list[type[blake2b]] = []


def load_modules() -> None:
    """Import what a handshake and a session need (BLAKE2b, half a millisecond). The
    local node loads it before it forks its server, whose template and workers then
    have it too, instead of each process loading it in turn on the way to the first task."""
    _blake2b()


def _mac(key: bytes, data: bytes) -> bytes:
    """BLAKE2b-256 of ``data`` keyed with ``key`` (BLAKE2b's keyed mode is a MAC)."""
    return _blake2b()(data, key=key, digest_size=wire.PROOF).digest()


def _secret_key(secret: str) -> bytes:
    """The key a secret of any length stands for (a BLAKE2b key is 64 bytes at most)."""
    return _blake2b()(secret.encode(), digest_size=_KEY, person=b"manymap-secret").digest()


def _frame_mac(key: bytes) -> blake2b:
    """BLAKE2b-256 keyed with ``key``, to copy for each frame's tag."""
    return _blake2b()(key=key, digest_size=wire.PROOF)


def _same(a: bytes | memoryview, b: bytes | memoryview) -> bool:
    """Whether ``a`` and ``b`` are equal, in a time that does not tell where they differ."""
    return bool(_compare(a, b))


try:  # hmac.compare_digest without loading OpenSSL first: what it falls back to
    from _operator import _compare_digest as _compare
except ImportError:  # another Python: hmac's own
    from hmac import compare_digest as _compare  # type: ignore[no-redef]


def new_nonce() -> bytes:
    """A fresh random nonce."""
    return os.urandom(wire.NONCE)  # secrets.token_bytes, without the secrets module's imports


def new_secret() -> str:
    """A fresh random secret for a server: 64 hex digits (what ``secrets.token_hex(32)``
    makes, without the secrets module's imports)."""
    return os.urandom(32).hex()


class Session:
    """The tags of one authenticated connection, seen from one end.

    Args:
        secret: the shared secret.
        server_nonce: the nonce of the server's greeting.
        client_nonce: the nonce of the client's proof.
        client: whether this end is the client.
    """

    def __init__(self, secret: str, server_nonce: bytes, client_nonce: bytes, *, client: bool) -> None:
        master = _mac(_secret_key(secret), _LABEL + b"session" + server_nonce + client_nonce)
        upstream = _mac(master, b"client to server")
        downstream = _mac(master, b"server to client")
        bulk_up = _mac(master, b"client to server bulk")
        bulk_down = _mac(master, b"server to client bulk")
        if client:
            self._keys = upstream + downstream + bulk_up + bulk_down
        else:
            self._keys = downstream + upstream + bulk_down + bulk_up
        self._start(0, 0)

    def _start(self, sent: int, received: int) -> None:
        send_key, receive_key, self._send_bulk, self._receive_bulk = (
            self._keys[i : i + _KEY] for i in range(0, 4 * _KEY, _KEY)
        )
        self._send_mac = _frame_mac(send_key)
        self._receive_mac = _frame_mac(receive_key)
        self.sent = sent  # frames sent so far: the next one's number
        self.received = received  # frames received so far

    def keys(self) -> bytes:
        """This end's keys (send, receive, bulk send, bulk receive), to hand the
        connection to another process of the same end (:meth:`resumed`)."""
        return self._keys

    @classmethod
    def resumed(cls, keys: bytes, sent: int, received: int) -> Session:
        """This end of a session from its :meth:`keys`, ``sent`` and ``received``
        frames into it (another process of the same end goes on with it)."""
        if len(keys) != 4 * _KEY:
            raise ValueError(f"a session's keys are {4 * _KEY} bytes, got {len(keys)}")
        session = cls.__new__(cls)
        session._keys = bytes(keys)
        session._start(sent, received)
        return session

    @staticmethod
    def _small_tag(template: blake2b, seq: int, body: wire.Buffer) -> bytes:
        """The tag of a body of fewer than :data:`BULK` bytes, frame number ``seq``."""
        mac = template.copy()
        mac.update(_SEQ.pack(seq))
        mac.update(body)
        return mac.digest()

    @staticmethod
    def _bulk_tag(bulk_key: bytes, seq: int, parts: wire.Parts) -> bytes:
        """The tag of a body of :data:`BULK` bytes or more (``parts``), frame number ``seq``."""
        poly = _one_time_mac(_mac(bulk_key, _SEQ.pack(seq)))
        for part in parts:
            poly.update(part)
        return poly.finalize() + _PAD

    def wrap(self, parts: wire.Parts) -> list[wire.Buffer]:
        """One frame on the wire, in pieces to write in turn: its length, ``parts`` (a
        ``_wire.pack_*`` body), their tag; nothing copied when the body is of
        :data:`BULK` bytes or more, one piece when it is smaller (one write)."""
        size = sum(map(len, parts))
        seq = self.sent
        self.sent = seq + 1
        if size < BULK:
            body = b"".join(parts)
            return [_FRAME_HEAD(size + wire.PROOF) + body + self._small_tag(self._send_mac, seq, body)]
        return [_FRAME_HEAD(size + wire.PROOF), *parts, self._bulk_tag(self._send_bulk, seq, parts)]

    def seal(self, parts: wire.Parts) -> bytes:
        """One frame on the wire: ``parts`` (a ``_wire.pack_*`` body) and their tag."""
        return b"".join(self.wrap(parts))

    def send(self, sock: socket.socket, parts: wire.Parts) -> None:
        """Write one tagged frame of ``parts`` (a blocking socket; its timeout holds)."""
        wire.send_buffers(sock, self.wrap(parts))

    def open(self, frame: bytes | bytearray) -> memoryview:
        """The body of a received frame whose tag holds.

        Raises:
            FrameError: the frame is too short for a tag, or its tag does not hold.
        """
        end = len(frame) - wire.PROOF
        if end < 0:
            raise wire.FrameError("a frame too short to carry its tag")
        view = memoryview(frame)
        body = view[:end]
        seq = self.received
        if end < BULK:
            tag = self._small_tag(self._receive_mac, seq, body)
        else:
            tag = self._bulk_tag(self._receive_bulk, seq, (body,))
        if not _same(tag, view[end:]):
            raise TagError("a frame whose tag does not hold: not from the authenticated peer")
        self.received = seq + 1
        return body


def check_client(secret: str, server_nonce: bytes, body: bytes) -> tuple[Session, bytes] | None:
    """The server's side: the session and the server's proof if the client's proof
    (``body``, its frame) holds, ``None`` if it does not.

    Raises:
        FrameError: ``body`` is not a client's proof.
    """
    client_nonce, theirs = wire.unpack_prove(body)
    if not _same(theirs, proof(secret, b"client", server_nonce, client_nonce)):
        return None
    session = Session(secret, server_nonce, client_nonce, client=False)
    return session, proof(secret, b"server", server_nonce, client_nonce)


class Connection:
    """An authenticated connection to a server (``leftover``: frames that arrived
    with the handshake's last one)."""

    __slots__ = ("info", "leftover", "reader", "session", "sock")

    def __init__(
        self,
        sock: socket.socket,
        info: dict[str, Any],
        session: Session,
        reader: wire.FrameReader,
        leftover: list[bytearray],
    ) -> None:
        self.sock, self.info, self.session, self.reader, self.leftover = sock, info, session, reader, leftover


def _next_frame(
    sock: socket.socket, reader: wire.FrameReader, queue: list[bytearray], deadline: float
) -> bytes:
    """The next frame of the handshake, waiting at most until ``deadline``."""
    timeout = deadline - time.monotonic()
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while not queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"no answer within {timeout:.3g} s")
            queue.extend(reader.pump())
    return bytes(queue.pop(0))


def handshake(sock: socket.socket, secret: str, host: str, port: int | None, timeout: float) -> Connection:
    """Run the client's side of the handshake on a fresh (non-blocking) connection,
    within ``timeout`` seconds (on a connecting thread, never the manager).

    Nothing of the work is sent, and nothing the peer sends is loaded, before
    the server has proved it knows ``secret``; what the client sends before
    that (a nonce and a proof bound to this connection) is useless anywhere else.

    Raises:
        AuthenticationError: the server refused the secret, or did not prove it knows it.
        ServerBusy: the server serves as many clients as it takes.
        ConnectionLostError: the peer is not a manymap-server, or went away.
    """
    deadline = time.monotonic() + timeout
    reader = wire.FrameReader.for_socket(sock, wire.HANDSHAKE_LIMIT)
    queue: list[bytearray] = []
    try:
        try:
            server_nonce = wire.unpack_hello(_next_frame(sock, reader, queue, deadline))
            client_nonce = new_nonce()
            mine = proof(secret, b"client", server_nonce, client_nonce)
            wire.send_plain(sock, wire.pack_prove(client_nonce, mine))
            verdict = wire.unpack_verdict(_next_frame(sock, reader, queue, deadline))
        except wire.FrameError as error:
            raise ConnectionLostError(str(error), host=host, port=port) from None
        if isinstance(verdict, wire.Accepted):
            theirs = proof(secret, b"server", server_nonce, client_nonce)
            if not _same(verdict.proof, theirs):
                raise AuthenticationError(
                    "the server did not prove that it knows the secret: it is not the "
                    "manymap-server it claims to be, or holds another secret; nothing was sent to it",
                    host=host,
                    port=port,
                )
            session = Session(secret, server_nonce, client_nonce, client=True)
            reader.limit = wire.HANDSHAKE_LIMIT + wire.PROOF
            info = wire.unpack_info(session.open(_next_frame(sock, reader, queue, deadline)))
            return Connection(sock, info, session, reader, queue)
    except (OSError, EOFError) as error:
        if isinstance(error, ManymapError):
            raise
        raise ConnectionLostError(
            f"the handshake with the server failed: {error}", host=host, port=port
        ) from error
    if verdict.reason.startswith("busy"):
        raise ServerBusy(verdict.reason)
    raise AuthenticationError(f"manymap-server refused the client: {verdict.reason}", host=host, port=port)

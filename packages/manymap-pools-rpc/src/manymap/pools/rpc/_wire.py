"""Every frame of manymap-pools-rpc, packed and unpacked in one place.

Two links carry frames, both in ppft's framing: an 8-byte big-endian length,
then the body (``_stream.py``: :func:`frame`, and :class:`FrameReader`,
which cuts frames from a stream as it arrives).

**Client <-> server** (a socket). The handshake's frames are plain; what
proves the secret in them (nonces, proofs) is ``_auth.py``'s:

1. server -> client: ``HELLO + server nonce(32)`` (:func:`pack_hello`);
2. client -> server: ``PROVE + client nonce(32) + proof(32)`` (:func:`pack_prove`);
3. server -> client: ``OK + proof(32)`` (:func:`pack_accept`) then, tagged,
   the server's info, marshalled (:func:`pack_info`); or ``NO + reason``
   (:func:`pack_refuse`) and it closes.

After it every frame's body is followed by its tag (``_auth.Session``); the
bodies are, client -> server (:func:`unpack_request`):

- ``RUN + token(8) + batch``: run a batch (:func:`pack_run`); the batch is
  ``KEY(key, star, length of function) + function + zeros + data``
  (:func:`pack_batch`), ``function`` empty when the worker holds ``key``
  already, ``data`` the serialized ``(kwargs, items)``;
- ``PING``: answered with ``PONG`` (by the worker between batches; while it
  runs one, the server sends ``PONG`` unasked, four times a second);

and server -> client (:func:`unpack_answer`):

- ``DONE + token(8) + duration(8) + len(stdout)(4) + stdout + zeros + result`` (:func:`pack_done`);
- ``LOST + token(8) + exitcode(4) + reason``: the worker died running the
  batch, or idle, or retired (token 0: the client forgets what it cached);
  the connection goes on with a fresh worker (:func:`pack_lost`);
- ``PONG``.

**Server -> its ppft worker** (the worker's stdin, a unix socket), the
start of ppft's own worker protocol: the worker greets with its pid on its
stdout (:func:`unpack_greeting`), the server answers the pickle protocol
(:func:`pack_pickle_protocol`), and then hands it a client's connection
(``_handoff.py``), on which the worker reads ``RUN`` and ``PING`` and writes
``DONE``, ``PONG`` and, when it retires, ``LOST`` with token 0 itself.

``data`` and ``result`` are payloads of ``manymap.serialize.dumps_parts``,
whose large buffers (numpy arrays) are pieces of the frame written in turn,
uncopied. The zeros before them (up to 63) put them at a multiple of
``manymap.serialize.BUFFER_ALIGNMENT`` bytes from the body's start, which
is where the reader's frame memory starts: arrays loaded as views of the
frame are aligned. The zeros follow from the lengths before them; both ends
count them alike (:func:`_zeros`).

Every ``unpack_*`` raises :class:`FrameError` for a frame that is not what it
must be: too short, too long, of another kind.
"""

from __future__ import annotations

import marshal
import pickle
import socket
import struct

from manymap.pools.rpc._stream import LENGTH, Buffer, FrameError, FrameReader, frame, send_buffers
from manymap.serialize import (
    BUFFER_ALIGNMENT,
    FUNCTION_CACHE,  # client, server and worker clear their caches at this many
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "FUNCTION_CACHE",
    "HANDSHAKE_LIMIT",
    "INWORKER",
    "LENGTH",
    "NONCE",
    "PROOF",
    "Accepted",
    "Batch",
    "Buffer",
    "Done",
    "FrameError",
    "FrameReader",
    "Lost",
    "Ping",
    "Pong",
    "Refused",
    "Run",
    "TagError",
    "frame",
    "pack_accept",
    "pack_batch",
    "pack_done",
    "pack_hello",
    "pack_info",
    "pack_lost",
    "pack_pickle_protocol",
    "pack_ping",
    "pack_pong",
    "pack_prove",
    "pack_refuse",
    "pack_run",
    "send_buffers",
    "send_plain",
    "unpack_answer",
    "unpack_batch",
    "unpack_greeting",
    "unpack_hello",
    "unpack_info",
    "unpack_prove",
    "unpack_request",
    "unpack_verdict",
]

Parts = tuple[Buffer, ...]

PROTOCOL = 6  # the version of this protocol, in the server's greeting
HELLO, PROVE, OK, NO = b"MMRPC%d" % PROTOCOL, b"P", b"OK", b"NO"
RUN, DONE, LOST, PING, PONG = b"R", b"D", b"L", b"?", b"!"
HANDSHAKE_LIMIT = 4096  # bytes a frame may have before the peer is authenticated
NONCE = 32  # bytes of each side's nonce
PROOF = 32  # bytes of a proof, and of a frame's tag
MARSHAL = 4  # the marshal format of the server's info (Python 3.4 and later read it)
INWORKER = "manymap.pools.rpc._inworker"  # the module that runs inside the ppft worker
STUB_NAME = "manymap_rpc_batch"
STUB = f"from {INWORKER} import run_counted as {STUB_NAME}\n"

_TOKEN = struct.Struct("!Q")
_DONE = struct.Struct("!QdI")
_LOST = struct.Struct("!Qi")
KEY = struct.Struct("!Q?Q")
_RUN_HEAD = len(RUN) + _TOKEN.size  # where a batch starts in a RUN body


class TagError(FrameError):
    """A frame whose tag does not hold: someone other than the authenticated peer wrote it."""


def send_plain(sock: socket.socket, parts: Parts) -> None:
    """Write one frame of the handshake (no tag)."""
    sock.sendall(frame(*parts))


def _kind(body: Buffer, kind: bytes, size: int, what: str, *, exact: bool = True) -> None:
    if bytes(body[: len(kind)]) != kind or (len(body) != size if exact else len(body) < size):
        raise FrameError(f"not a {what} frame of manymap-rpc protocol {PROTOCOL} ({len(body)} bytes)")


# ---------------------------------------------------------------- handshake


def pack_hello(nonce: bytes) -> Parts:
    """The server's greeting."""
    return (HELLO, _sized(nonce, NONCE, "nonce"))


def unpack_hello(body: Buffer) -> bytes:
    """The server's nonce.

    Raises:
        FrameError: not a greeting of this protocol (the text says when it is
            one of another version).
    """
    if bytes(body[: len(HELLO)]) != HELLO or len(body) != len(HELLO) + NONCE:
        other = " (another version of its protocol)" if bytes(body[:5]) == HELLO[:5] else ""
        raise FrameError(f"the peer is not a manymap-server{other}")
    return bytes(body[len(HELLO) :])


def pack_prove(client_nonce: bytes, proof: bytes) -> Parts:
    """The client's nonce and proof."""
    return (PROVE, _sized(client_nonce, NONCE, "nonce"), _sized(proof, PROOF, "proof"))


def unpack_prove(body: Buffer) -> tuple[bytes, bytes]:
    """The client's nonce and proof."""
    _kind(body, PROVE, len(PROVE) + NONCE + PROOF, "client proof")
    start = len(PROVE)
    return bytes(body[start : start + NONCE]), bytes(body[start + NONCE :])


# The messages are classes with slots: a NamedTuple's class costs the import a code
# object compiled at run time (about half a million instructions each, a tenth of the
# package's import for these eight).
class Accepted:
    """The server let the client in: its proof."""

    __slots__ = ("proof",)

    def __init__(self, proof: bytes) -> None:
        self.proof = proof


class Refused:
    """The server refused the client: why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def pack_accept(proof: bytes) -> Parts:
    """The server's ``OK`` and its proof."""
    return (OK, _sized(proof, PROOF, "proof"))


def pack_refuse(reason: str) -> Parts:
    """The server's ``NO`` and why."""
    return (NO, reason.encode())


def unpack_verdict(body: Buffer) -> Accepted | Refused:
    """The server's answer to the client's proof (an ``OK`` of the wrong size
    carries a proof that cannot hold: the caller refuses it as such)."""
    if bytes(body[: len(OK)]) == OK:
        return Accepted(bytes(body[len(OK) :]))
    if bytes(body[: len(NO)]) == NO:
        return Refused(bytes(body[len(NO) :]).decode("utf-8", "replace"))
    raise FrameError("the peer is not a manymap-server")


def pack_info(info: dict[str, Any]) -> Parts:
    """The server's info (host, workers, pid, worker pid): the first tagged body,
    a dict of strings and numbers in ``marshal``'s format :data:`MARSHAL` (built
    in, where ``json`` cost each process 1 ms to import; any Python 3 reads it)."""
    return (marshal.dumps(info, MARSHAL),)


def unpack_info(body: Buffer) -> dict[str, Any]:
    """The server's info (read only once the server proved the secret, as the tag checked)."""
    try:
        info = marshal.loads(bytes(body))
    except (ValueError, EOFError, TypeError) as error:
        raise FrameError(f"the server's info is not readable: {error}") from error
    if not isinstance(info, dict) or not all(isinstance(key, str) for key in info):
        raise FrameError("the server's info is not a table of names")
    return info


# ------------------------------------------------------------ tagged bodies


class Run:
    """Run a batch (``payload``: :func:`pack_batch`'s) and answer with ``token``."""

    __slots__ = ("payload", "token")

    def __init__(self, token: int, payload: memoryview) -> None:
        self.token, self.payload = token, payload


class Ping:
    """Is the server there?"""

    __slots__ = ()


class Pong:
    """The server is there."""

    __slots__ = ()


class Done:
    """A batch's outcome (``result``: serialized ``(values, failures)``, a view of the
    frame) and output."""

    __slots__ = ("duration", "output", "result", "token")

    def __init__(self, token: int, duration: float, output: str, result: memoryview) -> None:
        self.token, self.duration, self.output, self.result = token, duration, output, result


class Lost:
    """The worker died running batch ``token`` (0: idle)."""

    __slots__ = ("exitcode", "reason", "token")

    def __init__(self, token: int, exitcode: int, reason: str) -> None:
        self.token, self.exitcode, self.reason = token, exitcode, reason


def pack_run(token: int, batch: Parts) -> Parts:
    """Run ``batch`` (:func:`pack_batch`)."""
    return (RUN, _TOKEN.pack(token), *batch)


def pack_ping() -> Parts:
    """A ping."""
    return (PING,)


def pack_pong() -> Parts:
    """The answer to a ping."""
    return (PONG,)


def pack_done(token: int, duration: float, output: str, result: Parts) -> Parts:
    """Batch ``token`` ran in ``duration`` seconds, printed ``output``, gave ``result``
    (the pieces of a ``dumps_parts`` payload)."""
    data = output.encode("utf-8", "replace")
    head = _DONE.pack(token, duration, len(data))
    return (DONE, head, data, _zeros(len(DONE) + len(head) + len(data)), *result)


def pack_lost(token: int, exitcode: int, reason: str) -> Parts:
    """The worker died (``exitcode``: its code, negative a signal; 0: unknown)."""
    return (LOST, _LOST.pack(token, exitcode), reason.encode())


def unpack_request(body: Buffer) -> Run | Ping:
    """A client's frame."""
    view = memoryview(body)
    kind = bytes(view[:1])
    if kind == RUN:
        _kind(view, RUN, 1 + _TOKEN.size, "run", exact=False)
        (token,) = _TOKEN.unpack_from(view, 1)
        return Run(token, view[1 + _TOKEN.size :])
    if kind == PING:
        _kind(view, PING, 1, "ping")
        return Ping()
    raise FrameError(f"not a client frame of manymap-rpc protocol {PROTOCOL} (kind {kind!r})")


def unpack_answer(body: Buffer) -> Done | Lost | Pong:
    """A server's frame."""
    view = memoryview(body)
    kind = bytes(view[:1])
    if kind == DONE:
        _kind(view, DONE, 1 + _DONE.size, "done", exact=False)
        token, duration, size = _DONE.unpack_from(view, 1)
        start = 1 + _DONE.size
        if len(view) < start + size:
            raise FrameError("a done frame shorter than its output")
        output = bytes(view[start : start + size]).decode("utf-8", "replace")
        start += size
        return Done(token, duration, output, view[start + len(_zeros(start)) :])
    if kind == LOST:
        _kind(view, LOST, 1 + _LOST.size, "lost", exact=False)
        token, code = _LOST.unpack_from(view, 1)
        return Lost(token, code, bytes(view[1 + _LOST.size :]).decode("utf-8", "replace"))
    if kind == PONG:
        _kind(view, PONG, 1, "pong")
        return Pong()
    raise FrameError(f"not a server frame of manymap-rpc protocol {PROTOCOL} (kind {kind!r})")


class Batch:
    """A batch as the worker gets it: the function under ``key`` (empty: cached there)
    and ``data``, the serialized ``(kwargs, items)``."""

    __slots__ = ("data", "function", "key", "star")

    def __init__(self, key: int, star: bool, function: memoryview, data: memoryview) -> None:
        self.key, self.star, self.function, self.data = key, star, function, data


def pack_batch(key: int, star: bool, function: Buffer, data: Parts) -> Parts:
    """A batch of tasks of the function cached under ``key`` (``function``: empty if
    the worker holds it) over ``data`` (the pieces of a ``dumps_parts`` payload);
    it follows a ``RUN`` frame's head (:func:`pack_run`)."""
    return (KEY.pack(key, star, len(function)), function, _zeros(_RUN_HEAD + KEY.size + len(function)), *data)


def unpack_batch(payload: Buffer) -> Batch:
    """A batch."""
    view = memoryview(payload)
    if len(view) < KEY.size:
        raise FrameError(f"a batch of {len(view)} bytes, shorter than its head")
    key, star, size = KEY.unpack_from(view)
    end = KEY.size + size
    start = end + len(_zeros(_RUN_HEAD + end))
    if len(view) < start:
        raise FrameError("a batch shorter than its function")
    return Batch(key, star, view[KEY.size : end], view[start:])


# ------------------------------------------------- the ppft worker's pipes


def unpack_greeting(body: Buffer) -> int:
    """The pid a ppft worker greets with."""
    text = bytes(body)
    if not text.isdigit():
        raise FrameError(f"not a ppft worker's greeting: {text[:40]!r}")
    return int(text)


def pack_pickle_protocol(protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    """The answer to the greeting: the pickle protocol of the replies."""
    return frame(str(protocol).encode())


def _zeros(offset: int) -> bytes:
    """The zeros that take a payload at ``offset`` bytes into a body to the next
    multiple of ``BUFFER_ALIGNMENT``."""
    return _ZEROS[: -offset % BUFFER_ALIGNMENT]


_ZEROS = bytes(BUFFER_ALIGNMENT)


def _sized(data: bytes, size: int, what: str) -> bytes:
    if len(data) != size:
        raise ValueError(f"a {what} is {size} bytes, got {len(data)}")
    return data

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
  ``KEY(key, star, length of function) + function + data``
  (:func:`pack_batch`), ``function`` empty when the worker holds ``key``
  already, ``data`` the serialized ``(kwargs, items)``;
- ``PING``: answered with ``PONG`` at once, even while the worker is busy;

and server -> client (:func:`unpack_answer`):

- ``DONE + token(8) + duration(8) + len(stdout)(4) + stdout + result`` (:func:`pack_done`);
- ``LOST + token(8) + exitcode(4) + reason``: the worker died running the
  batch, or idle (token 0); the connection goes on with a fresh worker (:func:`pack_lost`);
- ``PONG``.

**Server <-> its ppft worker** (the worker's pipes), in ppft's own worker
protocol, which ppft's worker loop reads and writes: the worker greets with
its pid (:func:`unpack_greeting`), the server answers the pickle protocol
(:func:`pack_pickle_protocol`); a job is the stub (``(name, [source], ())``
pickled, sent as ppft's ``csend`` does: whole the first time, by hash after,
:class:`StubCache`) and its argument tuple ``(batch,)`` (:func:`pack_job`);
the reply is ``(outcome, stdout)`` pickled (:func:`unpack_reply`), the
outcome the stub's ``(result, tasks run)`` or ``None`` when the stub failed.
The argument tuple and a reply with an outcome are pickles written around
the batch or the result, never copying them (:func:`pack_job`,
:func:`pack_reply`), and read as views of what arrived
(:func:`unpack_args`, :func:`unpack_reply`); any unpickler reads them too.

Every ``unpack_*`` raises :class:`FrameError` for a frame that is not what it
must be: too short, too long, of another kind.
"""

from __future__ import annotations

import marshal
import pickle
import socket
import struct
from typing import Any

from manymap.pools.rpc._stream import LENGTH, Buffer, FrameError, FrameReader, frame, send_buffers
from manymap.serialize import FUNCTION_CACHE  # client, server and worker clear their caches at this many

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
    "StubCache",
    "TagError",
    "frame",
    "pack_accept",
    "pack_batch",
    "pack_done",
    "pack_hello",
    "pack_info",
    "pack_job",
    "pack_lost",
    "pack_pickle_protocol",
    "pack_ping",
    "pack_pong",
    "pack_prove",
    "pack_refuse",
    "pack_reply",
    "pack_run",
    "send_buffers",
    "send_plain",
    "unpack_answer",
    "unpack_args",
    "unpack_batch",
    "unpack_greeting",
    "unpack_hello",
    "unpack_info",
    "unpack_job",
    "unpack_prove",
    "unpack_reply",
    "unpack_request",
    "unpack_verdict",
]

Parts = tuple[Buffer, ...]

HELLO, PROVE, OK, NO = b"MMRPC4", b"P", b"OK", b"NO"
RUN, DONE, LOST, PING, PONG = b"R", b"D", b"L", b"?", b"!"
HANDSHAKE_LIMIT = 4096  # bytes a frame may have before the peer is authenticated
NONCE = 32  # bytes of each side's nonce
PROOF = 32  # bytes of a proof, and of a frame's tag
MARSHAL = 4  # the marshal format of the server's info (Python 3.4 and later read it)
INWORKER = "manymap.pools.rpc._inworker"  # the module that runs inside the ppft worker
STUB_NAME = "manymap_rpc_batch"
STUB = f"def {STUB_NAME}(payload):\n    from {INWORKER} import run_counted\n    return run_counted(payload)\n"

# The pickles of the ppft pipe's large messages, written and read without copying the
# payload (``pack_job``, ``pack_reply``): protocol 5, the payload as one BYTEARRAY8 or
# BINBYTES8 opcode and its little-endian length, then the rest.
_ARGS_HEAD, _ARGS_TAIL = b"\x80\x05\x96", b"\x85."  # PROTO 5, BYTEARRAY8 ...; TUPLE1, STOP
_REPLY_HEAD = b"\x80\x05\x8e"  # PROTO 5, BINBYTES8 (the outcome's bytes) ...
_STAND_IN = b"\x80\x05C\x00"  # PROTO 5, SHORT_BINBYTES of 0: the outcome's place when the rest is read
_SIZE = struct.Struct("<Q")
_TASKS = struct.Struct("<i")
_TOKEN = struct.Struct("!Q")
_DONE = struct.Struct("!QdI")
_LOST = struct.Struct("!Qi")
KEY = struct.Struct("!Q?Q")


class TagError(FrameError):
    """A frame whose tag does not hold: someone other than the authenticated peer wrote it."""


def send_plain(sock: socket.socket, parts: Parts) -> None:
    """Write one frame of the handshake (no tag)."""
    sock.sendall(frame(*parts))


def _kind(body: Buffer, kind: bytes, size: int, what: str, *, exact: bool = True) -> None:
    if bytes(body[: len(kind)]) != kind or (len(body) != size if exact else len(body) < size):
        raise FrameError(f"not a {what} frame of manymap-rpc protocol 4 ({len(body)} bytes)")


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
    """A batch's outcome (``result``: serialized ``(values, failures)``) and output."""

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


def pack_done(token: int, duration: float, output: str, result: Buffer) -> Parts:
    """Batch ``token`` ran in ``duration`` seconds, printed ``output``, gave ``result``."""
    data = output.encode("utf-8", "replace")
    return (DONE, _DONE.pack(token, duration, len(data)), data, result)


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
    raise FrameError(f"not a client frame of manymap-rpc protocol 4 (kind {kind!r})")


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
        return Done(token, duration, output, view[start + size :])
    if kind == LOST:
        _kind(view, LOST, 1 + _LOST.size, "lost", exact=False)
        token, code = _LOST.unpack_from(view, 1)
        return Lost(token, code, bytes(view[1 + _LOST.size :]).decode("utf-8", "replace"))
    if kind == PONG:
        _kind(view, PONG, 1, "pong")
        return Pong()
    raise FrameError(f"not a server frame of manymap-rpc protocol 4 (kind {kind!r})")


class Batch:
    """A batch as the worker gets it: the function under ``key`` (empty: cached there)
    and ``data``, the serialized ``(kwargs, items)``."""

    __slots__ = ("data", "function", "key", "star")

    def __init__(self, key: int, star: bool, function: memoryview, data: memoryview) -> None:
        self.key, self.star, self.function, self.data = key, star, function, data


def pack_batch(key: int, star: bool, function: Buffer, data: Buffer) -> Parts:
    """A batch of tasks of the function cached under ``key`` (``function``: empty if
    the worker holds it)."""
    return (KEY.pack(key, star, len(function)), function, data)


def unpack_batch(payload: Buffer) -> Batch:
    """A batch."""
    view = memoryview(payload)
    if len(view) < KEY.size:
        raise FrameError(f"a batch of {len(view)} bytes, shorter than its head")
    key, star, size = KEY.unpack_from(view)
    if len(view) < KEY.size + size:
        raise FrameError("a batch shorter than its function")
    return Batch(key, star, view[KEY.size : KEY.size + size], view[KEY.size + size :])


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


class StubCache:
    """The stub as ppft's ``csend`` sends it: ``N`` + itself the first time, ``H`` +
    its md5 (ppft's cache key) after. One per worker."""

    def __init__(self, stub: bytes | None = None) -> None:
        import hashlib

        self.stub = pickle.dumps((STUB_NAME, [STUB], ())) if stub is None else stub
        self._digest = hashlib.md5(self.stub).hexdigest().encode()
        self._sent = False

    def next(self) -> bytes:
        """What goes on the pipe for the next job."""
        if self._sent:
            return b"H" + self._digest
        self._sent = True
        return b"N" + self.stub


def pack_job(stub: bytes, payload: Buffer) -> list[Buffer]:
    """A job, as pieces to write in turn: the stub (:meth:`StubCache.next`) and its
    argument ``(payload,)``, pickled around ``payload`` without copying it (a tuple of
    a ``bytearray`` to any unpickler; :func:`unpack_args` gives a view of it)."""
    size = len(payload)
    head = _ARGS_HEAD + _SIZE.pack(size)
    return [frame(stub), LENGTH.pack(len(head) + size + len(_ARGS_TAIL)), head, payload, _ARGS_TAIL]


def unpack_args(data: Buffer) -> Any:
    """The argument tuple of a job, as the worker loop unpickles it: ``(payload,)``, a
    view of ``data`` for one :func:`pack_job` wrote, else whatever ``data`` pickles."""
    view = memoryview(data)
    start = len(_ARGS_HEAD) + _SIZE.size
    if bytes(view[: len(_ARGS_HEAD)]) == _ARGS_HEAD and len(view) >= start + len(_ARGS_TAIL):
        (size,) = _SIZE.unpack_from(view, len(_ARGS_HEAD))
        if start + size + len(_ARGS_TAIL) == len(view) and bytes(view[start + size :]) == _ARGS_TAIL:
            return (view[start : start + size],)
    return pickle.loads(view)


def pack_reply(reply: Any, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes | list[Buffer]:
    """What the worker loop sends back, pickled: a ``((outcome bytes, tasks run),
    output)`` reply as pieces around the outcome (uncopied), anything else whole."""
    try:
        (outcome, tasks), out = reply
        if not isinstance(outcome, bytes | bytearray | memoryview) or not isinstance(out, str):
            raise TypeError
        count = _TASKS.pack(tasks)
    except (TypeError, ValueError, struct.error):
        return pickle.dumps(reply, protocol)
    text = out.encode("utf-8", "surrogatepass")
    # BININT tasks, TUPLE2, BINUNICODE8 output, TUPLE2, STOP
    tail = b"J" + count + b"\x86\x8d" + _SIZE.pack(len(text)) + text + b"\x86."
    return [_REPLY_HEAD + _SIZE.pack(len(outcome)), outcome, tail]


def unpack_job(stub: Buffer, args: Buffer, known: dict[bytes, bytes]) -> tuple[str, bytes]:
    """The stub's name and the payload of a job's two frames (what ppft's worker loop
    reads; ``known``: the stubs seen so far, by hash)."""
    kind, rest = bytes(stub[:1]), bytes(stub[1:])
    if kind == b"N":
        import hashlib

        known[hashlib.md5(rest).hexdigest().encode()] = rest
    elif kind == b"H" and rest in known:
        rest = known[rest]
    else:
        raise FrameError("a job's stub is neither sent whole nor known by its hash")
    try:
        name, _, _ = pickle.loads(rest)
        (payload,) = pickle.loads(args)
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as error:
        raise FrameError(f"not a job: {error}") from error
    if not isinstance(name, str) or not isinstance(payload, bytes | bytearray):
        raise FrameError("not a job: a stub name and a bytes payload expected")
    return name, bytes(payload)


def unpack_reply(body: Buffer) -> tuple[Buffer, int, str]:
    """The result, tasks run and output of a ppft worker's reply (the worker is ours:
    its reply is trusted as far as unpickling goes).

    Raises:
        FrameError: not a reply, or the stub failed outside the task (ppft's
            traceback is in the text).
    """
    view = memoryview(body)
    try:
        outcome, out = pickle.loads(view) if (found := _outcome(view)) is None else found
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as error:
        raise FrameError(f"not a ppft reply: {error}") from error
    if not isinstance(out, str):
        raise FrameError("not a ppft reply: its output is not text")
    if not (
        isinstance(outcome, tuple)
        and len(outcome) == 2
        and isinstance(outcome[0], bytes | memoryview)
        and isinstance(outcome[1], int)
    ):
        raise FrameError(f"the ppft worker failed outside the task: {out.strip()}")
    return outcome[0], outcome[1], out


def _outcome(view: memoryview) -> tuple[Any, Any] | None:
    """A reply :func:`pack_reply` wrote in pieces, its outcome a view of ``view`` (None: another one).

    Raises:
        UnpicklingError: what follows the outcome is not the rest of such a reply.
    """
    start = len(_REPLY_HEAD) + _SIZE.size
    if bytes(view[: len(_REPLY_HEAD)]) != _REPLY_HEAD or len(view) < start:
        return None
    (size,) = _SIZE.unpack_from(view, len(_REPLY_HEAD))
    if start + size > len(view):
        return None
    outcome, out = pickle.loads(_STAND_IN + bytes(view[start + size :]))  # the rest: a few bytes
    if not (isinstance(outcome, tuple) and len(outcome) == 2 and outcome[0] == b""):
        raise pickle.UnpicklingError("not a reply of the worker's")
    return (view[start : start + size], outcome[1]), out


def _sized(data: bytes, size: int, what: str) -> bytes:
    if len(data) != size:
        raise ValueError(f"a {what} is {size} bytes, got {len(data)}")
    return data

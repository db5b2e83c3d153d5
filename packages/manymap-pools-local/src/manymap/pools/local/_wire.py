"""The messages between a ProcessPool and its worker processes.

Every message is a small header (a tuple pickled by the stdlib) and its data
(a manymap.serialize payload, or empty), written as one frame on the worker's
pipe, so that a message costs one write; data over :data:`SPLIT` bytes
follows in a frame of its own instead of being copied. Large buffers inside
the data travel through shared memory (``_shm.py``) and the header carries
their names.

parent -> worker
    ``(FUNCTION, key)`` + the function: cache it under ``key``;
    ``(RUN, token, key, star, names, prefix)`` + ``(kwargs, items)``: run a
    batch, naming the shared-memory files of its results ``prefix<n>``;
    ``(STOP,)``: exit.
worker -> parent
    ``(DONE, token, names, duration, retiring, failed)`` + ``(values, failures)``;
    ``(INIT_FAILED,)`` + the initializer's :class:`TaskFailure`.

The worker caches functions in a ``manymap.serialize.FunctionCache``, in
step with what the parent knows it sent (``manymap.serialize.must_send``).
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Sequence

from manymap.pools.local import _shm
from manymap.serialize import dumps_oob, loads

__all__ = [
    "DONE",
    "FUNCTION",
    "INIT_FAILED",
    "READY",
    "RUN",
    "STOP",
    "decode",
    "encode",
    "receive",
    "send",
]

FUNCTION, RUN, STOP, DONE, INIT_FAILED, READY = range(6)
SPLIT = 64 * 1024  # bytes of data above which it gets a frame of its own
_LENGTH = struct.Struct("!I")

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    Connection = Any  # a worker's _channel.Channel: send_bytes / recv_bytes / poll / close
    Encoded = tuple[bytes, list[pickle.PickleBuffer]]  # a payload and its large buffers (not yet exported)


def send(conn: Connection, header: tuple[Any, ...], data: bytes = b"") -> None:
    """Write one message: ``[length of header][header][data]``, data apart if large."""
    head = pickle.dumps((len(data) > SPLIT, header), pickle.HIGHEST_PROTOCOL)
    if len(data) > SPLIT:
        conn.send_bytes(_LENGTH.pack(len(head)) + head)
        conn.send_bytes(data)
    else:
        conn.send_bytes(b"".join((_LENGTH.pack(len(head)), head, data)))


def receive(conn: Connection) -> tuple[tuple[Any, ...], bytes | memoryview]:
    """Read one message; ``EOFError`` when the other side is gone."""
    frame = memoryview(conn.recv_bytes())
    size = _LENGTH.unpack_from(frame)[0]
    split, header = pickle.loads(frame[_LENGTH.size : _LENGTH.size + size])
    data = conn.recv_bytes() if split else frame[_LENGTH.size + size :]
    return header, data


def encode(obj: Any, name: str) -> Encoded:
    """``obj`` as a payload plus its large buffers (not yet exported)."""
    return dumps_oob(obj, min_size=_shm.MIN_SHARED, name=name)


def decode(data: bytes | memoryview, names: Sequence[str]) -> Any:
    """The object of a payload whose large buffers are in shared memory."""
    return loads(data, buffers=_shm.attach(names) if names else None)

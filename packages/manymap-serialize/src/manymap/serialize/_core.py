"""dumps / dumps_parts / loads / copy: the stdlib pickle fast path with by-value parts spliced in.

Data flow of `dumps()`: a ``io.BytesIO`` gets the header first, then the
pickler of `manymap.serialize._pickler` (the C pickler, protocol 5, with the
by-value hook) writes into the same buffer, so adding the header copies
nothing. Each thread keeps its pickler and buffer from one dump to the next
(memo cleared after each), unless a dump runs inside another. Plain data
stays on the C fast path and never imports dill. When
pickling fails, `manymap.serialize._check` (imported then) searches for the
part to blame and its explanation becomes the ``SerializationError``.

`loads()` checks the header and hands ``pickle.loads`` a memoryview of the
rest: stripping the header copies nothing either.

Out-of-band buffers are pickle 5's: a ``buffer_callback`` on the way out, the
same buffers, in order, as ``buffers`` on the way in; `dumps_oob()`
collects the large ones for you. `dumps_parts()` puts them back inside one
payload as pieces of their own, for a transport that writes pieces in turn
(``sendmsg``): nothing is copied to make the payload, and `loads()` of the
received payload builds the arrays on views of it.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections.abc import Iterable

from manymap.serialize._deferred import serialization_error
from manymap.serialize._format import HEADER, HEADER_SIZE, PICKLE_PROTOCOL, buffers_head, split_buffers
from manymap.serialize._pickler import _Pickler

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.serialize._pickler import BufferCallback

__all__ = ["DEFAULT_OOB_MIN_SIZE", "copy", "dumps", "dumps_oob", "dumps_parts", "loads"]

DEFAULT_OOB_MIN_SIZE = 64 * 1024
"""Buffers smaller than this stay in-band in `dumps_oob()` (bytes)."""


def dumps(obj: Any, *, buffer_callback: BufferCallback | None = None, name: str = "obj") -> bytes:
    """Serialize ``obj`` into a manymap payload.

    Everything pickle can ship by reference goes through the stdlib C pickler
    (protocol 5); lambdas, closures, nested functions and functions or classes
    defined in ``__main__`` (or otherwise not importable by name) go by value
    through dill.

    Args:
        obj: what to serialize.
        buffer_callback: pickle 5's out-of-band hook: called with each
            ``pickle.PickleBuffer`` (large numpy arrays, ...); when it returns
            a false value the buffer is left out of the payload and must be
            handed to `loads()` in ``buffers``, in the same order. ``None``
            keeps every buffer in-band.
        name: how the error message names ``obj``.

    Returns:
        The payload: header, then the pickle stream.

    Raises:
        SerializationError: some part of ``obj`` cannot be serialized; the
            text is `check()`'s explanation (the attribute path to the
            part and why), the original exception is the ``__cause__``.
    """
    dumper = _kept.dumper
    if dumper.busy:  # a dump inside a dump (some object's __reduce__ calls dumps)
        dumper = _Dumper()
    return dumper.dump(obj, buffer_callback, name)


class _Dumper:
    """A pickler and the buffer it writes into, for one dump at a time, kept for
    the next: making a pickler costs about a microsecond, a third of a small
    payload's whole dump."""

    __slots__ = ("busy", "callback", "file", "pickler")

    def __init__(self) -> None:
        self.file = io.BytesIO()
        self.callback: BufferCallback | None = None  # the buffer_callback of the dump under way
        self.busy = False
        self.pickler = self._new_pickler()

    def _new_pickler(self) -> _Pickler:
        # Its buffer_callback hands each buffer to the dump's own; with none, a true
        # answer keeps it in-band, as a pickler without a callback does.
        return _Pickler(self.file, PICKLE_PROTOCOL, buffer_callback=self._buffer)

    def _buffer(self, buffer: pickle.PickleBuffer) -> Any:
        callback = self.callback
        return True if callback is None else callback(buffer)

    def dump(self, obj: Any, buffer_callback: BufferCallback | None, name: str) -> bytes:
        """`dumps()` of ``obj`` with this pickler."""
        self.busy = True
        self.callback = buffer_callback
        file, pickler = self.file, self.pickler
        file.write(HEADER)
        try:
            pickler.dump(obj)
            return file.getvalue()
        except Exception as exc:
            self.pickler = self._new_pickler()  # a fresh one, whatever state the failure left
            raise serialization_error(obj, name, exc) from exc
        finally:
            # Nothing of this dump is kept: the memo holds every object it pickled.
            pickler.clear_memo()
            file.seek(0)
            file.truncate()
            self.callback = None
            self.busy = False


class _Kept(threading.local):
    """Each thread's `_Dumper`."""

    def __init__(self) -> None:
        self.dumper = _Dumper()


_kept = _Kept()


def dumps_oob(
    obj: Any, *, min_size: int = DEFAULT_OOB_MIN_SIZE, name: str = "obj"
) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Serialize ``obj`` with its large buffers out of band.

    For pools that move big numpy arrays: the payload holds everything but the
    buffers of ``min_size`` bytes or more, which come back as
    ``pickle.PickleBuffer`` objects pointing into ``obj``'s own memory (no copy
    made). Send each one's ``raw()`` memoryview as a separate frame, then call
    ``loads(payload, buffers=received_frames)``. Keep ``obj`` alive and
    unchanged until the buffers are sent.

    Args:
        obj: what to serialize.
        min_size: buffers smaller than this (in bytes) stay in-band; ``0``
            sends every buffer out of band.
        name: how the error message names ``obj``.

    Returns:
        ``(payload, buffers)``.

    Raises:
        SerializationError: as `dumps()`.
    """
    buffers: list[pickle.PickleBuffer] = []

    def collect(buffer: pickle.PickleBuffer) -> bool:
        if min_size and memoryview(buffer).nbytes < min_size:
            return True  # in-band
        buffers.append(buffer)
        return False

    return dumps(obj, buffer_callback=collect, name=name), buffers


def dumps_parts(
    obj: Any, *, min_size: int = DEFAULT_OOB_MIN_SIZE, name: str = "obj"
) -> list[bytes | memoryview]:
    """Serialize ``obj`` into one payload in pieces, its large buffers uncopied.

    For transports that write a list of pieces in turn (``socket.sendmsg``):
    the pieces joined are one payload that `loads()` reads, with the
    contiguous buffers of ``min_size`` bytes or more (large numpy arrays)
    inside it as pieces of their own, each a view of ``obj``'s own memory,
    placed at a multiple of `BUFFER_ALIGNMENT` bytes from the payload's
    start. Loaded from memory the reader may write to (a ``bytearray``), the
    arrays are views of that memory, writable, without a copy. Keep ``obj``
    alive and unchanged until the pieces are written. With no such buffer
    the only piece is what `dumps()` returns.

    Args:
        obj: what to serialize.
        min_size: buffers smaller than this (in bytes) stay in the pickle
            stream; ``0`` puts every contiguous buffer beside it.
        name: how the error message names ``obj``.

    Raises:
        SerializationError: as `dumps()`.
    """
    payload, buffers = dumps_oob(obj, min_size=min_size, name=name)
    if not buffers:
        return [payload]
    try:
        raws = [buffer.raw() for buffer in buffers]
    except BufferError:  # one not contiguous: in band, as dumps() writes it (or refuses it)
        return [dumps(obj, name=name)]
    stream = memoryview(payload)[HEADER_SIZE:]
    head, pads = buffers_head(len(stream), [raw.nbytes for raw in raws])
    parts: list[bytes | memoryview] = [head, stream]
    for pad, raw in zip(pads, raws, strict=True):
        if pad:
            parts.append(bytes(pad))
        parts.append(raw)
    return parts


def loads(data: bytes | bytearray | memoryview, *, buffers: Iterable[Any] | None = None) -> Any:
    """Rebuild the object a manymap payload holds.

    Only load payloads from peers you trust: like pickle, loading runs code the
    payload names.

    Args:
        data: a payload made by `dumps()`, `dumps_oob()` or (joined)
            `dumps_parts()` (any bytes-like object; it is not copied, and
            the arrays of a `dumps_parts()` payload are views of it: read-only
            ones where ``data`` is).
        buffers: the out-of-band buffers, in the order the dumping side's
            ``buffer_callback`` saw them (any buffer-protocol objects, e.g.
            ``bytearray`` or ``memoryview``). numpy arrays are rebuilt on top of
            these buffers without a copy. Not for a `dumps_parts()` payload,
            which holds its own.

    Returns:
        The object.

    Raises:
        FormatVersionError: ``data`` is not a payload of this format version
            (the text names both versions), or not a manymap payload at all.
        ValueError: ``buffers`` given for a payload that holds its own.
    """
    stream, inside = split_buffers(data)
    if inside is not None:
        if buffers is not None:
            raise ValueError("loads() got buffers for a payload that holds its own (made by dumps_parts())")
        buffers = inside
    return pickle.loads(stream, buffers=buffers)


def copy(obj: Any) -> Any:
    """A deep copy of ``obj`` made by serializing and loading it.

    Buffers (numpy arrays) are copied once, not twice: they go out of band and
    are loaded from fresh ``bytearray`` copies. Functions that go by value come
    back as new function objects; classes keep their identity.

    Raises:
        SerializationError: as `dumps()`.
    """
    data, buffers = dumps_oob(obj, min_size=0)
    return loads(data, buffers=[bytearray(buffer.raw()) for buffer in buffers])

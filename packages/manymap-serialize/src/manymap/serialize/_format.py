"""The wire format: a fixed header in front of a pickle protocol 5 stream.

A plain payload is ``MAGIC + bytes([FORMAT_VERSION]) + <pickle stream>``.
The header is written into the same buffer the pickler then writes into, and
stripped on the way in with a memoryview slice, so neither side copies the
payload to add or remove it.

A payload with its buffers inside (what ``dumps_parts`` writes) carries the
large out-of-band buffers of its pickle stream after the stream:
``BUFFERS_MAGIC + bytes([FORMAT_VERSION])``, the number of buffers (4 bytes)
and the stream's length (8 bytes), each buffer's length (8 bytes each), the
stream, then each buffer at the next multiple of `BUFFER_ALIGNMENT` bytes
from the payload's start (zero bytes between). Where each buffer lies follows
from the lengths, so a reader takes them as views of the payload
(:func:`split_buffers`) and the arrays loaded over them are not copied.
Multi-byte numbers are big-endian.

What the format version covers: the header itself, the pickle protocol, and
the names and arguments of the reconstructors that by-value parts refer to
(``manymap.serialize._functions._make_function`` and ``_fill_function``;
``manymap.serialize._byvalue._load_value``, ``_load_class`` and
``_load_module_globals``). Changing any of them means bumping
`FORMAT_VERSION`. Version 2 added the functions by value without dill;
version 3 the payloads with their buffers inside.
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Iterator

from manymap.launcher import SerializationError
from manymap.serialize.__about__ import __version__

__all__ = [
    "BUFFERS_HEADER",
    "BUFFER_ALIGNMENT",
    "FORMAT_VERSION",
    "HEADER",
    "HEADER_SIZE",
    "MAGIC",
    "FormatVersionError",
    "buffers_head",
    "split_buffers",
]

MAGIC = b"\x93MMS"
"""The first bytes of every plain manymap-serialize payload."""

BUFFERS_MAGIC = b"\x93MMB"
"""The first bytes of a payload with its buffers inside."""

FORMAT_VERSION = 3
"""The payload format this version of manymap-serialize writes and reads."""

BUFFER_ALIGNMENT = 64
"""A buffer inside a payload starts this many bytes (a multiple) from the payload's start."""

PICKLE_PROTOCOL = 5

HEADER = MAGIC + bytes([FORMAT_VERSION])
HEADER_SIZE = len(HEADER)
BUFFERS_HEADER = BUFFERS_MAGIC + bytes([FORMAT_VERSION])
_TABLE = struct.Struct("!IQ")  # buffers, length of the pickle stream
_SIZE = struct.Struct("!Q")  # one buffer's length


class FormatVersionError(SerializationError, pickle.UnpicklingError):
    """The data is not a payload of the format version this side reads.

    Raised by `manymap.serialize.loads()` when the payload was written by a
    manymap-serialize with another format version, or is not a manymap payload
    at all (then ``found`` is ``None``). The text names both versions.

    Attributes:
        found: the format version in the payload's header, ``None`` when the
            data has no manymap header.
        expected: the format version this side reads.
    """

    def __init__(self, message: str, *, found: int | None = None, expected: int = FORMAT_VERSION) -> None:
        super().__init__(message)
        self.found = found
        self.expected = expected

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_format_error, (type(self), str(self), self.found, self.expected))


def _rebuild_format_error(
    cls: type[FormatVersionError], message: str, found: int | None, expected: int
) -> FormatVersionError:
    return cls(message, found=found, expected=expected)


def buffers_head(stream_size: int, sizes: list[int]) -> tuple[bytes, list[int]]:
    """The head of a payload with buffers inside (a pickle stream of ``stream_size``
    bytes, buffers of ``sizes`` bytes), and the zero bytes to put before each buffer."""
    head = b"".join((BUFFERS_HEADER, _TABLE.pack(len(sizes), stream_size), *map(_SIZE.pack, sizes)))
    end = len(head) + stream_size
    pads = []
    for start, size in zip(_starts(end, sizes), sizes, strict=True):
        pads.append(start - end)
        end = start + size
    return head, pads


def _starts(end: int, sizes: list[int]) -> Iterator[int]:
    """Where each buffer of ``sizes`` starts when the first may start at ``end``: at the
    next multiple of `BUFFER_ALIGNMENT`, one after the other (the layout, for both sides)."""
    for size in sizes:
        end += -end % BUFFER_ALIGNMENT
        yield end
        end += size


def split_buffers(data: bytes | bytearray | memoryview) -> tuple[memoryview, list[memoryview] | None]:
    """The pickle stream of a payload and, for a payload with buffers inside, the
    buffers (``None`` for a plain one): views of ``data``, uncopied.

    Raises:
        FormatVersionError: ``data`` is not a payload of `FORMAT_VERSION`.
        pickle.UnpicklingError: the lengths of a payload with buffers inside
            do not fit it (it was cut or changed on the way).
    """
    if type(data) is bytes and data.startswith(HEADER):  # the common case, kept short
        return memoryview(data)[HEADER_SIZE:], None
    if type(data) is memoryview and data.itemsize == 1 and data.ndim == 1 and data[:HEADER_SIZE] == HEADER:
        return data[HEADER_SIZE:], None  # a plain payload inside a received frame
    view = _bytes_view(data)
    head = bytes(view[:HEADER_SIZE])
    if head == HEADER:
        return view[HEADER_SIZE:], None
    if head != BUFFERS_HEADER:
        raise _not_readable(head)
    try:
        count, stream_size = _TABLE.unpack_from(view, HEADER_SIZE)
        start = HEADER_SIZE + _TABLE.size + count * _SIZE.size
        sizes = [size for (size,) in _SIZE.iter_unpack(view[HEADER_SIZE + _TABLE.size : start])]
    except struct.error:  # shorter than its table
        sizes, count, start, stream_size = [], -1, 0, 0
    if len(sizes) != count or start + stream_size > len(view):
        raise pickle.UnpicklingError(
            f"a manymap-serialize payload of {len(view)} bytes shorter than its table says: "
            "it was cut or changed on the way"
        )
    stream = view[start : start + stream_size]
    buffers = []
    for begin, size in zip(_starts(start + stream_size, sizes), sizes, strict=True):
        end = begin + size
        if end > len(view):
            raise pickle.UnpicklingError(
                f"a manymap-serialize payload of {len(view)} bytes shorter than its buffers "
                f"(at least {end}): it was cut or changed on the way"
            )
        buffers.append(view[begin:end])
    return stream, buffers


def _bytes_view(data: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(data)
    return view if view.ndim == 1 and view.itemsize == 1 else view.cast("B")


def _not_readable(head: bytes) -> FormatVersionError:
    """Why a payload starting with ``head`` is not one of `FORMAT_VERSION`."""
    reads = f"this manymap-serialize {__version__} reads format version {FORMAT_VERSION}"
    if len(head) == HEADER_SIZE and head[:-1] in (MAGIC, BUFFERS_MAGIC):
        found = head[-1]
        return FormatVersionError(
            f"payload has manymap-serialize format version {found}, but {reads}: "
            "install the same manymap-serialize release on both sides",
            found=found,
        )
    if not head:
        what = "empty data"
    elif head[:1] == b"\x80":
        what = f"a plain pickle stream without the manymap header (starts with {head!r})"
    else:
        what = f"data starting with {head!r}"
    return FormatVersionError(
        f"not a manymap-serialize payload: got {what}; expected the header {HEADER!r} "
        f"(magic {MAGIC!r}, format version {FORMAT_VERSION}); {reads}",
        found=None,
    )

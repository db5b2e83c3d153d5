"""The wire format: a fixed header in front of a pickle protocol 5 stream.

Every payload is ``MAGIC + bytes([FORMAT_VERSION]) + <pickle stream>``. The
header is written into the same buffer the pickler then writes into, and
stripped on the way in with a memoryview slice, so neither side copies the
payload to add or remove it.

What the format version covers: the header itself, the pickle protocol, and
the names and arguments of the reconstructors that by-value parts refer to
(``manymap.serialize._functions._make_function`` and ``_fill_function``;
``manymap.serialize._byvalue._load_value``, ``_load_class`` and
``_load_module_globals``). Changing any of them means bumping
`FORMAT_VERSION`. Version 2 added the functions by value without dill.
"""

from __future__ import annotations

import pickle

from manymap.launcher import SerializationError
from manymap.serialize.__about__ import __version__

__all__ = ["FORMAT_VERSION", "HEADER", "HEADER_SIZE", "MAGIC", "FormatVersionError", "strip_header"]

MAGIC = b"\x93MMS"
"""The first bytes of every manymap-serialize payload."""

FORMAT_VERSION = 2
"""The payload format this version of manymap-serialize writes and reads."""

PICKLE_PROTOCOL = 5

HEADER = MAGIC + bytes([FORMAT_VERSION])
HEADER_SIZE = len(HEADER)


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


def strip_header(data: bytes | bytearray | memoryview) -> memoryview:
    """Check the header of ``data`` and return the pickle stream behind it, uncopied.

    Raises:
        FormatVersionError: ``data`` is not a payload of `FORMAT_VERSION`.
    """
    if type(data) is bytes and data.startswith(HEADER):  # the common case, kept short
        return memoryview(data)[HEADER_SIZE:]
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    head = bytes(view[:HEADER_SIZE])
    if head == HEADER:
        return view[HEADER_SIZE:]
    reads = f"this manymap-serialize {__version__} reads format version {FORMAT_VERSION}"
    if len(head) == HEADER_SIZE and head.startswith(MAGIC):
        found = head[-1]
        raise FormatVersionError(
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
    raise FormatVersionError(
        f"not a manymap-serialize payload: got {what}; expected the header {HEADER!r} "
        f"(magic {MAGIC!r}, format version {FORMAT_VERSION}); {reads}",
        found=None,
    )

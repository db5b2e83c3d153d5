"""Frames cut from a byte stream as it arrives, in ppft's framing: an 8-byte
big-endian length, then the body. What a body holds is ``_wire.py``'s.

A frame goes out as a list of pieces (its length, the parts of its body, its
tag), written in turn by ``sendmsg`` (:func:`send_buffers`, :func:`advance`):
an 8 MB array in a batch is never copied to make a frame.
"""

from __future__ import annotations

import os
import select
import socket
import struct
from collections.abc import Callable

__all__ = [
    "IOV",
    "LENGTH",
    "Buffer",
    "FrameError",
    "FrameReader",
    "advance",
    "frame",
    "send_buffers",
    "views",
]

Buffer = bytes | bytearray | memoryview
LENGTH = struct.Struct("!Q")
IOV = 64  # pieces handed to one sendmsg
_CHUNK = 1 << 18  # bytes read at once into the reader's scratch buffer


class FrameError(ConnectionError):
    """The peer sent something that is not a frame of this protocol, a frame whose tag
    does not hold, or closed mid-frame."""


def frame(*parts: bytes | bytearray | memoryview) -> bytes:
    """One frame on the wire: the length of ``parts``, then ``parts``."""
    return b"".join((LENGTH.pack(sum(len(part) for part in parts)), *parts))


def views(pieces: list[Buffer]) -> list[memoryview]:
    """``pieces`` as byte views, the empty ones left out."""
    found = []
    for piece in pieces:
        view = memoryview(piece)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        if view.nbytes:
            found.append(view)
    return found


def advance(pieces: list[memoryview], count: int) -> list[memoryview]:
    """What is left of ``pieces`` once their first ``count`` bytes are written."""
    index = 0
    while index < len(pieces) and count >= len(pieces[index]):
        count -= len(pieces[index])
        index += 1
    rest = pieces[index:]
    if count and rest:
        rest[0] = rest[0][count:]
    return rest


def send_buffers(sock: socket.socket, pieces: list[Buffer], timeout: float | None = None) -> None:
    """Write ``pieces`` in turn, uncopied.

    On a blocking socket its own timeout holds for each write. On a
    non-blocking one, give ``timeout``: a write that finds no room waits for
    it at most that many seconds (``TimeoutError``). (A socket with a timeout
    polls before every write and every read: two system calls more per round
    trip on a worker's connection, about 3 µs here.)
    """
    left = views(pieces)
    while left:
        try:
            left = advance(left, sock.sendmsg(left[:IOV]))
        except (BlockingIOError, InterruptedError):
            if timeout is None:
                raise
            waiter = select.poll()
            waiter.register(sock.fileno(), select.POLLOUT)
            if not waiter.poll(timeout * 1000):  # (milliseconds)
                raise TimeoutError(f"no room to write on the connection for {timeout} seconds") from None


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
                scratch = self._scratch
                count = self._read_into(memoryview(scratch))
                if count:
                    self.received += count
                    if body is None and not self._pending and count > LENGTH.size:
                        # Most reads: one whole frame, nothing before it (a reply, a batch).
                        (size,) = LENGTH.unpack_from(scratch)
                        if size == count - LENGTH.size and size <= self.limit:
                            return [scratch[LENGTH.size : count]]
                    self._pending += memoryview(scratch)[:count]
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
            if len(pending) < LENGTH.size:
                return frames
            (size,) = LENGTH.unpack_from(pending)
            if size > self.limit:
                raise FrameError(f"a frame of {size} bytes is over the limit of {self.limit}")
            del pending[: LENGTH.size]
            self._body, self._got = bytearray(size), 0

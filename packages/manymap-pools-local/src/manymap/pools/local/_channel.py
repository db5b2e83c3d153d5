"""``Channel``: the duplex pipe between a ProcessPool and one worker (a socket pair).

``multiprocessing.connection`` would do, but importing it loads ``tempfile``
and with it ``shutil``, ``random``, ``bz2`` and ``lzma``: 4 to 8 ms of a
ProcessPool's start-up on a 2-core machine, for the three things the pool asks
of a pipe. A channel is a file descriptor of a ``socket.socketpair()`` end and
those three things:

- :meth:`Channel.send_bytes` writes an 8-byte big-endian length and the
  message with one ``writev`` (no copy to join them), looping only if the
  kernel takes part of it;
- :meth:`Channel.recv_bytes` reads one message: the length, then the message,
  which usually comes in one ``read``; a larger one is read into a single
  ``bytearray`` of its size. It reads nothing past the message, so the
  manager's selector still sees the next one;
- :meth:`Channel.poll` waits until a message can be read (``selectors``).

A worker started by ``spawn`` or ``forkserver`` gets its end through the
start method's pickler, as ``multiprocessing.connection.Connection`` does: the
descriptor goes as ``multiprocessing.reduction.DupFd`` (imported only then).
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
from typing import Any

__all__ = ["Channel", "channel_pair"]

_LENGTH = struct.Struct("!Q")
_SMALL = 64 * 1024  # bytes a message may have to be read with one os.read
_Poller = getattr(selectors, "PollSelector", selectors.DefaultSelector)  # poll: no descriptor of its own


def channel_pair() -> tuple[Channel, Channel]:
    """Two connected ends: one for the pool, one for its worker."""
    left, right = socket.socketpair()
    return Channel(left.detach()), Channel(right.detach())


class Channel:
    """One end of a worker's pipe: whole messages in, whole messages out."""

    __slots__ = ("_fd", "_poller")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._poller: selectors.BaseSelector | None = None

    def fileno(self) -> int:
        """The descriptor (``OSError`` once closed)."""
        if self._fd < 0:
            raise OSError("the channel is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Close this end (the other end then reads the end of the channel)."""
        fd, self._fd = self._fd, -1
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        if fd >= 0:
            os.close(fd)

    def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Write one message (``OSError`` when the other end is gone)."""
        with memoryview(data) as view:
            parts = [memoryview(_LENGTH.pack(view.nbytes)), view.cast("B")]
            fd = self.fileno()
            while parts:
                written = os.writev(fd, parts)
                while parts and written >= parts[0].nbytes:
                    written -= parts.pop(0).nbytes
                if parts and written:
                    parts[0] = parts[0][written:]

    def recv_bytes(self) -> bytes | bytearray:
        """Read one message; ``EOFError`` when the other end is closed."""
        (size,) = _LENGTH.unpack(self._read(_LENGTH.size))
        return self._read(size) if size else b""

    def poll(self, timeout: float | None = 0.0) -> bool:
        """Whether a message (or the end of the channel) can be read within ``timeout`` seconds."""
        poller = self._poller
        if poller is None:
            poller = self._poller = _Poller()
            poller.register(self.fileno(), selectors.EVENT_READ)
        return bool(poller.select(timeout))

    def _read(self, size: int) -> bytes | bytearray:
        fd = self.fileno()
        done = 0
        if size <= _SMALL:  # one read, no copy, in the common case
            chunk = os.read(fd, size)
            if len(chunk) == size:
                return chunk
            if not chunk:
                raise EOFError("the channel was closed")
            done = len(chunk)
        buffer = bytearray(size)  # a large message is read in place (os.read allocates what it is asked)
        if done:
            buffer[:done] = chunk
        with memoryview(buffer) as view:
            while done < size:
                count = os.readv(fd, [view[done:]])
                if not count:
                    raise EOFError("the channel was closed" + (" in the middle of a message" if done else ""))
                done += count
        return buffer

    def __reduce__(self) -> tuple[Any, ...]:
        # Only a spawn or forkserver start pickles a channel (a forked worker inherits it).
        from multiprocessing import reduction

        return _rebuild, (reduction.DupFd(self.fileno()),)


def _rebuild(duplicate: Any) -> Channel:
    return Channel(duplicate.detach())

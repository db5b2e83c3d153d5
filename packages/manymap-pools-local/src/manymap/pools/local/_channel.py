"""``Channel``: the duplex pipe between a ProcessPool and one worker (two OS pipes).

``multiprocessing.connection`` would do, but importing it loads ``tempfile``
and with it ``shutil``, ``random``, ``bz2`` and ``lzma``: 4 to 8 ms of a
ProcessPool's start-up on a 2-core machine, for the three things the pool asks
of a pipe. A channel is the read end of one ``os.pipe()`` and the write end of
another (a pipe costs about half what a socket pair does per message: 3 µs
less per ``pipe`` round trip), and those three things:

- :meth:`Channel.send_bytes` writes an 8-byte big-endian length and the
  message with one ``write`` (a small message, joined to its length) or
  ``writev`` (a large one, not copied), looping only if the kernel takes
  part of it;
- :meth:`Channel.recv_bytes` reads one message: the length, then the message,
  which usually comes in one ``read``; a larger one is read into a single
  ``bytearray`` of its size. It reads nothing past the message, so the
  manager's selector still sees the next one;
- :meth:`Channel.poll` waits until a message can be read (``selectors``);
  :meth:`Channel.spin` looks for one for a short while without sleeping.

A pipe holds up to :data:`PIPE_SIZE` bytes (Linux; elsewhere the system's
default), as a socket pair's buffer would, so that a batch's results rarely
wait for the pool to read their first part: its writer enlarges it the
first time it writes a message larger than the default 64 KB. (Not when
the pipe is made: ``fcntl`` is loaded then, 0.3 ms, which a pool whose
messages are all small, a script's one short map, never needs.) The end of
a channel reads as the end once every copy of the other side's write end
is closed.

A worker started by ``spawn`` or ``forkserver`` gets its end through the
start method's pickler, as ``multiprocessing.connection.Connection`` does:
the descriptors go as ``multiprocessing.reduction.DupFd`` (imported only then).
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import struct

from manymap.launcher.lowlevel import WORKER_SPIN, spin

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["PIPE_SIZE", "Channel", "channel_pair"]

PIPE_SIZE = 256 * 1024  # bytes each pipe of a channel holds, where the system lets us say
_LENGTH = struct.Struct("!Q")
_SMALL = 64 * 1024  # bytes a message may have to be read with one os.read
_Poller = getattr(selectors, "PollSelector", selectors.DefaultSelector)  # poll: no descriptor of its own


def channel_pair() -> tuple[Channel, Channel]:
    """Two connected ends: one for the pool, one for its worker."""
    down_read, down_write = os.pipe()  # pool -> worker
    up_read, up_write = os.pipe()  # worker -> pool
    return Channel(up_read, down_write), Channel(down_read, up_write)


class Channel:
    """One end of a worker's pipe: whole messages in, whole messages out."""

    __slots__ = ("_enlarged", "_fd", "_poller", "_spinner", "_wfd")

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._fd = read_fd
        self._wfd = write_fd
        self._enlarged = False  # the pipe written to holds PIPE_SIZE bytes (once a large message went)
        self._poller: selectors.BaseSelector | None = None
        self._spinner: select.poll | None = None

    def fileno(self) -> int:
        """The descriptor messages are read from, what a selector waits on (``OSError`` once closed)."""
        if self._fd < 0:
            raise OSError("the channel is closed")
        return self._fd

    def fds(self) -> tuple[int, int]:
        """Both descriptors of this end: what a forked process that is not this end's must close."""
        return self._fd, self._wfd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Close this end (the other end then reads the end of the channel)."""
        fds, self._fd, self._wfd = (self._fd, self._wfd), -1, -1
        self._spinner = None
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Write one message (``OSError`` when the other end is gone)."""
        fd = self._wfd
        if fd < 0:
            raise OSError("the channel is closed")
        if type(data) is bytes and len(data) <= _SMALL:  # most messages: one short write
            message = _LENGTH.pack(len(data)) + data
            written = os.write(fd, message)
            if written < len(message):  # a signal cut it short
                with memoryview(message) as view:
                    while written < len(message):
                        written += os.write(fd, view[written:])
            return
        if not self._enlarged:
            self._enlarged = True
            _enlarge(fd)
        with memoryview(data) as view:
            parts = [memoryview(_LENGTH.pack(view.nbytes)), view.cast("B")]
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

    def spin(self) -> bool:
        """Whether a message (or the end of the channel) can be read within
        ``manymap.launcher.lowlevel.WORKER_SPIN`` seconds (a worker after its
        reply), looked for without sleeping (:func:`~manymap.launcher.lowlevel.spin`)."""
        spinner = self._spinner
        if spinner is None:
            spinner = self._spinner = select.poll()
            spinner.register(self.fileno(), select.POLLIN)
        return bool(spin(lambda: spinner.poll(0), WORKER_SPIN))

    def _read(self, size: int) -> bytes | bytearray:
        fd = self._fd
        if fd < 0:
            raise OSError("the channel is closed")
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

        return _rebuild, (reduction.DupFd(self.fileno()), reduction.DupFd(self._wfd))


def _enlarge(fd: int) -> None:
    """Let the pipe written to through ``fd`` hold :data:`PIPE_SIZE` bytes (best effort)."""
    with contextlib.suppress(AttributeError, ImportError, OSError):  # not Linux, or a lower system limit
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


def _rebuild(read: Any, write: Any) -> Channel:
    return Channel(read.detach(), write.detach())

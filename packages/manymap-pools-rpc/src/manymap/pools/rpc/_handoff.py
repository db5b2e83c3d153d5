"""A client's connection, handed by a ``manymap-server`` to the ppft worker that serves it.

Once a client has proved the secret, the server gives its connection to the
worker: the socket and the session's keys go to the worker over its control
socket (its stdin, a unix socket pair; the socket by ``SCM_RIGHTS``), and the
worker reads the client's batches and writes its replies itself. A round trip
then passes no relay: not the server's thread, not a pipe, not a copy.

The server stays responsible for what a worker cannot do for itself: it
watches the worker's death and the client's hang-up, answers for a worker
busy with a long task, and reports a worker that died. For that both keep
one small :class:`SharedState` (a memory-backed file both map): the numbers
of the frames sent and received on the connection (the session's counters,
so that whoever writes next tags the right number), what the worker is doing,
and the batch it runs. Whoever writes a frame holds the state's lock (a POSIX
record lock: the kernel drops it when its holder dies):

- the worker, for each frame it sends (``DONE``, ``PONG``, and ``LOST`` when
  it retires after ``max_tasks_per_worker`` tasks);
- the server, for ``PONG`` while the worker runs a task (a heartbeat, once a
  second, so that the client tells a busy worker from a frozen server), and
  ``LOST`` once the worker died between frames. A worker killed in the middle
  of a frame leaves the stream cut, and one that read a frame not the
  client's (its tag) leaves it untrusted: the server then closes the
  connection instead, and the client opens another.

After a death or a retirement the server hands the same connection, with the
counters as the state has them, to a fresh worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import marshal
import mmap
import os
import socket
import struct
from collections.abc import Iterator

from manymap.pools.rpc._auth import Session

__all__ = ["CUT", "IDLE", "RETIRED", "RUNNING", "WRITING", "SharedState", "Terms", "receive", "send"]

# What the worker is doing (SharedState.state).
IDLE = 0  # between frames: waits for the client's next one
CUT = 1  # part of a client's frame read, or a frame not the client's: the connection ends with it
RUNNING = 2  # runs the batch SharedState.token
WRITING = 3  # part of a frame written: the stream is cut if it dies now
RETIRED = 4  # ran its share of tasks, said so, and exits


class Terms:
    """What the server's options say about serving a connection.

    A class with slots, not a ``NamedTuple``: that one compiles code as it is
    defined, about 0.15 ms of the import in the server and in its template,
    both on the way to a local pool's first task.
    """

    __slots__ = ("frame_limit", "max_tasks")

    def __init__(self, frame_limit: int, max_tasks: int | None) -> None:
        self.frame_limit = frame_limit  # bytes of the largest frame taken from the client (its tag included)
        self.max_tasks = max_tasks  # tasks a worker runs before it retires (None: no limit)


_LAYOUT = struct.Struct("=QQBQd")  # sent, received, state, token, since (time.monotonic)
_SENT = struct.Struct("=Q")  # its first field
_MESSAGE = 1024  # bytes of a handoff message, at most
_VERSION = 1


class SharedState:
    """The state a server and its worker share for one connection (see the module)."""

    def __init__(self, fd: int | None = None) -> None:
        """A new state (``fd`` None: the server's side), or the one in ``fd`` (the worker's)."""
        if fd is None:
            fd = _anonymous_file(_LAYOUT.size)
        self.fd = fd
        self._map = mmap.mmap(fd, _LAYOUT.size)

    def read(self) -> tuple[int, int, int, int, float]:
        """``(sent, received, state, token, since)``."""
        sent, received, state, token, since = _LAYOUT.unpack_from(self._map)
        return sent, received, state, token, since

    def write(self, sent: int, received: int, state: int, token: int, since: float) -> None:
        _LAYOUT.pack_into(self._map, 0, sent, received, state, token, since)

    @property
    def sent(self) -> int:
        """Frames sent on the connection so far (by either side; the pen held to change it)."""
        (sent,) = _SENT.unpack_from(self._map)
        return int(sent)

    @sent.setter
    def sent(self, count: int) -> None:
        _SENT.pack_into(self._map, 0, count)

    def acquire(self, *, wait: bool = True) -> None:
        """Take the connection's pen: nobody else writes on it until :meth:`release`.

        Raises:
            BlockingIOError, PermissionError: (``wait=False``) the other side holds it now
                (EAGAIN or EACCES, as the system says it).
        """
        fcntl.lockf(self.fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        fcntl.lockf(self.fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def lock(self, *, wait: bool = True) -> Iterator[None]:
        """The pen held for a ``with`` block (:meth:`acquire`)."""
        self.acquire(wait=wait)
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        self._map.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _anonymous_file(size: int) -> int:
    """A file of ``size`` bytes with no name: a memfd (an unlinked temporary file where there is none)."""
    create = getattr(os, "memfd_create", None)
    if create is not None:
        fd: int = create("manymap-connection", os.MFD_CLOEXEC)
    else:  # pragma: no cover - not Linux
        import tempfile

        with tempfile.TemporaryFile() as file:
            fd = os.dup(file.fileno())
    os.ftruncate(fd, size)
    return fd


def send(
    control: socket.socket, sock: socket.socket, session: Session, state: SharedState, terms: Terms
) -> None:
    """Hand ``sock`` (its session at the counters in ``state``) to the worker at ``control``'s other end."""
    message = marshal.dumps((_VERSION, session.keys(), terms.frame_limit, terms.max_tasks or 0), 4)
    socket.send_fds(control, [message], [sock.fileno(), state.fd])


def receive(control: socket.socket) -> tuple[socket.socket, Session, SharedState, Terms]:
    """The worker's side of :func:`send`: the client's socket, the session, the state, the terms.

    Raises:
        EOFError: the server closed the control socket (it stops).
        ValueError: not a handoff.
    """
    message, fds, _, _ = socket.recv_fds(control, _MESSAGE, 2)
    if not message and not fds:
        raise EOFError("the server is gone")
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        raise ValueError("not a connection's handoff")
    version, keys, frame_limit, max_tasks = marshal.loads(message)
    if version != _VERSION:
        raise ValueError(f"a handoff of version {version}, this worker speaks {_VERSION}")
    for fd in fds:
        os.set_inheritable(fd, False)
    state = SharedState(fds[1])
    sent, received, _, _, _ = state.read()
    sock = socket.socket(fileno=fds[0])
    return sock, Session.resumed(keys, sent, received), state, Terms(frame_limit, max_tasks or None)

"""One authenticated client of a ``manymap-server``: its thread, its ppft worker.

The thread proves the server's side of the handshake (``OK + proof``, then
the server's info in the first tagged frame) and hands the connection to a
ppft worker of its own (``_handoff.py``), which from then on reads the
client's batches and writes its replies itself. The thread then waits, on
one poll, for three things:

- the client's hang-up: the client is gone, or stops a task: the worker is
  killed (with its process group) and the connection ends;
- the worker's death (its pidfd; the end of its stdout without one): its
  process group is killed and it is reaped; a worker that died between
  frames is reported with ``LOST`` (the batch it ran, token 0 when idle, so
  that the client forgets what the old one had cached), one that retired
  after ``max_tasks_per_worker`` tasks has said so itself; either way a
  fresh worker takes the connection on. One killed in the middle of a frame
  left the stream cut: the connection ends, and the client opens another;
- the clock: while the worker runs a task, the client hears a ``PONG`` from
  here four times a second (the worker answers the client's pings between
  tasks), which is how it tells a busy worker from a frozen or unreachable
  server.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time

from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._auth import Session
from manymap.pools.rpc._handoff import IDLE, RETIRED, RUNNING, SharedState, Terms
from manymap.pools.rpc._ppprocess import PPWorker, describe

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from manymap.pools.rpc._server import RPCServer

__all__ = ["serve_connection"]

_TICK = 0.25  # seconds; the thread re-checks the server, the client and the worker at least this often
_HEARTBEAT = 0.25  # seconds between two PONGs of the server while the worker runs a task
_SEND_TIMEOUT = 300.0  # seconds a client may take to take a frame off the connection
_HANG_UP = getattr(select, "POLLRDHUP", 0)  # Linux: the peer's end of the stream, without reading it
_ENDED = select.POLLHUP | select.POLLERR | select.POLLNVAL | _HANG_UP


class _Client:
    def __init__(self, server: RPCServer, sock: socket.socket, session: Session) -> None:
        self.server = server
        self.sock = sock
        self.session = session
        self.state = SharedState()
        self.poll = select.poll()
        self.poll.register(sock.fileno(), _HANG_UP)
        self.worker: PPWorker | None = None
        self.beat = 0.0  # when the last heartbeat went out

    def serve(self, worker: PPWorker) -> None:
        after: PPWorker | None = worker
        while after is not None and self.take_on(after):
            after = self.wait()

    def take_on(self, worker: PPWorker) -> bool:
        """Hand the connection to ``worker``; False (it is killed) if the server stops or it died first."""
        self.worker = worker
        self.poll.register(worker.death, select.POLLIN)
        terms = Terms(self.server.frame_limit + wire.PROOF, self.server.max_tasks_per_worker)
        return not self.server.stopped and worker.hand_off(self.sock, self.session, self.state, terms)

    def wait(self) -> PPWorker | None:
        """Wait for the worker's death or the client's end: the next worker (None: the connection ends)."""
        worker = self.worker
        assert worker is not None
        death = worker.death
        while not self.server.stopped:
            events = dict(self.poll.poll(_TICK * 1000))
            if events.get(self.sock.fileno(), 0) & _ENDED or self.hung_up():
                return None
            if events.get(death, 0):
                self.poll.unregister(death)
                self.worker = None
                return self.replace(worker)
            self.heartbeat()
        return None

    def hung_up(self) -> bool:
        """Whether the client has closed its end (where poll cannot say it: a peek)."""
        if _HANG_UP:
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True

    def replace(self, worker: PPWorker) -> PPWorker | None:
        """After ``worker``'s death: report it, and the worker to go on with (None: the connection ends)."""
        code = worker.exitcode()  # its group killed, reaped
        with self.state.lock():
            _, received, state, token, _ = self.state.read()
            if state not in (IDLE, RUNNING, RETIRED):
                return None  # it died mid-frame: the stream is cut
            if state != RETIRED:
                try:
                    self.send(wire.pack_lost(token if state == RUNNING else 0, code or 0, describe(code)))
                except OSError:
                    return None
            self.state.write(self.state.sent, received, IDLE, 0, time.monotonic())
        if self.server.stopped:
            return None
        return self.server.replace_worker() if state == RETIRED else self.server.take_worker()

    def heartbeat(self) -> None:
        """A ``PONG`` to the client if the worker has been running a task for a while."""
        now = time.monotonic()
        _, _, state, _, since = self.state.read()
        if state != RUNNING or now - since < _HEARTBEAT or now - self.beat < _HEARTBEAT:
            return
        self.beat = now
        # Not waiting for the pen: whoever holds it writes, which the client hears too.
        with contextlib.suppress(BlockingIOError, PermissionError), self.state.lock(wait=False):
            if self.state.read()[2] == RUNNING:
                with contextlib.suppress(OSError):  # gone: its end shows next
                    self.send(wire.pack_pong())

    def send(self, parts: wire.Parts) -> None:
        """Send one frame, numbered as the state says, and count it there (the pen held)."""
        self.session.sent = self.state.sent
        self.session.send(self.sock, parts)
        self.state.sent = self.session.sent

    def close(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.kill()
        self.state.close()


def serve_connection(server: RPCServer, sock: socket.socket, session: Session, server_proof: bytes) -> None:
    """Serve one authenticated client with a worker of its own until it goes or the server stops."""
    sock.settimeout(_SEND_TIMEOUT)  # sends wait at most this
    worker = server.take_worker()
    info = {"host": server.host, "workers": server.workers, "pid": os.getpid(), "worker": worker.pid}
    client = _Client(server, sock, session)
    client.worker = worker  # killed with the connection from now on
    try:
        wire.send_plain(sock, wire.pack_accept(server_proof))
        session.send(sock, wire.pack_info(info))
        client.state.write(session.sent, session.received, IDLE, 0, time.monotonic())
        client.serve(worker)
    finally:
        client.close()

"""One authenticated client of a ``manymap-server``: its thread, its ppft worker.

The thread proves the server's side of the handshake (``OK + proof``, then
the server's info in the first tagged frame) and then waits, on one selector,
for three things:

- the client's frames: ``RUN`` goes to the worker as a ppft job, ``PING`` is
  answered with ``PONG`` at once (even while the worker is busy: that is how
  the client tells a busy server from a frozen or unreachable one), end of
  file means the client is gone or stops a task: the worker is killed;
- the worker's reply (``_ppprocess.py``), cut from its stdout as it arrives,
  sent back as ``DONE``;
- the worker's pidfd: the worker died (its task crashed it, or was killed):
  its process group is killed, the batch it ran is reported ``LOST`` and a
  fresh worker takes its place (a ``LOST`` with token 0 when it died idle, so
  that the client forgets what the old one had cached).

With ``max_tasks_per_worker`` (``manymap-server --max-tasks-per-worker``) a
worker that has run that many tasks is replaced once its reply is sent,
before the client's next batch goes to a worker: never in the middle of a
batch, and no batch is lost or run twice. The client is not told: the
thread keeps the functions the client sent (as the client keeps what it
sent, clearing at the same points) and gives the fresh worker a function it
lacks along with the batch that needs it.
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from typing import TYPE_CHECKING

from manymap.launcher.lowlevel import spin
from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._auth import Session
from manymap.pools.rpc._ppprocess import PPWorker, describe

if TYPE_CHECKING:
    from manymap.pools.rpc._server import RPCServer

__all__ = ["serve_connection"]

_TICK = 0.5  # seconds; the thread re-checks whether the server stops at least this often
_SEND_TIMEOUT = 300.0  # seconds a client may take to take a reply off the connection
_JOB_TIMEOUT = 60.0  # seconds a live worker may take to take a job off its pipe


class _Client:
    def __init__(self, server: RPCServer, sock: socket.socket, session: Session) -> None:
        self.server = server
        self.sock = sock
        self.session = session
        self.reader = wire.FrameReader.for_socket(sock, server.frame_limit + wire.PROOF)
        self.selector = selectors.DefaultSelector()
        self.worker: PPWorker | None = None
        self.token: int | None = None  # the batch the worker runs
        self.started = 0.0
        self.recycling = server.max_tasks_per_worker is not None
        self.functions: dict[int, bytes] = {}  # what the client holds as sent (when recycling)
        self.worker_has: set[int] = set()  # the keys the worker caches (when recycling)

    def watch(self, worker: PPWorker) -> None:
        self.worker = worker
        self.worker_has = set()
        self.selector.register(worker.stdout, selectors.EVENT_READ, "reply")
        if worker.pidfd is not None:
            self.selector.register(worker.pidfd, selectors.EVENT_READ, "dead")

    def unwatch(self) -> PPWorker | None:
        worker, self.worker = self.worker, None
        if worker is not None:
            self.selector.unregister(worker.stdout)
            if worker.pidfd is not None:
                self.selector.unregister(worker.pidfd)
        return worker

    def serve(self) -> None:
        while not self.server.stopped:
            # A job's reply or the client's next request is near: looked for without
            # sleeping first, it is relayed a wake-up sooner (manymap.launcher.lowlevel.spin).
            ready = spin(lambda: self.selector.select(0)) or self.selector.select(_TICK)
            for key, _ in ready:
                if key.data == "client":
                    if not self.from_client():
                        return
                elif key.data == "reply":
                    self.from_worker()
                elif key.data == "dead":
                    self.lost()
                if self.worker is None:
                    break  # replaced: the other events were the old worker's

    def from_client(self) -> bool:
        """Handle what the client sent; False when the connection must end."""
        try:
            frames = self.reader.pump()
        except (EOFError, OSError):
            return False  # gone, or stopping its task: the worker dies with the connection
        for raw in frames:
            try:
                request = wire.unpack_request(self.session.open(raw))
            except wire.FrameError:
                return False  # not the client's (its tag), or not this protocol
            if isinstance(request, wire.Ping):
                self.session.send(self.sock, wire.pack_pong())
            elif self.token is None and self.worker is not None:
                self.token = request.token
                self.started = time.perf_counter()
                job = self.worker.job(self.payload(request.payload))
                if not self.worker.write(job, _JOB_TIMEOUT):
                    self.lost()
            else:
                return False  # out of turn
        return True

    def payload(self, payload: memoryview) -> bytes | memoryview:
        """What goes to the worker for a batch's ``payload`` (``_wire.pack_batch``): as
        it is, or (when recycling) with the function a fresh worker lacks put back in.

        Raises:
            FrameError: (when recycling) the payload is not a batch.
        """
        if not self.recycling:
            return payload
        batch = wire.unpack_batch(payload)
        key = batch.key
        if batch.function:
            if len(self.functions) >= wire.FUNCTION_CACHE:
                self.functions.clear()  # as the client clears what it knows it sent
            self.functions[key] = bytes(batch.function)
        elif key not in self.worker_has and key in self.functions:
            payload = memoryview(b"".join(wire.pack_batch(key, batch.star, self.functions[key], batch.data)))
        else:
            return payload
        if len(self.worker_has) >= wire.FUNCTION_CACHE:
            self.worker_has.clear()  # as run_counted clears its cache
        self.worker_has.add(key)
        return payload

    def from_worker(self) -> None:
        assert self.worker is not None
        try:
            frames = self.worker.reader.pump()
        except (EOFError, OSError):
            self.lost()  # without a pidfd, the end of its stdout is how its death shows
            return
        for frame in frames:
            token, self.token = self.token, None
            try:
                result, out = self.worker.reply(frame)
            except wire.FrameError:
                self.token = token
                self.lost()
                return
            if token is None:
                continue  # a reply nobody asked for
            duration = time.perf_counter() - self.started
            self.session.send(self.sock, wire.pack_done(token, duration, out, result))
            limit = self.server.max_tasks_per_worker
            if limit is not None and self.worker.tasks >= limit:
                self.recycle()
                return

    def recycle(self) -> None:
        """Replace the worker, idle now (its reply sent, nothing sent to it since)."""
        worker = self.unwatch()
        assert worker is not None
        worker.kill()
        self.watch(self.server.replace_worker())

    def lost(self) -> None:
        """The worker died: kill its group, report its batch, start a fresh one."""
        worker = self.unwatch()
        assert worker is not None
        code = worker.exitcode()
        token, self.token = self.token, None
        self.functions.clear()  # the client forgets what it sent when it reads LOST
        self.session.send(self.sock, wire.pack_lost(token or 0, code or 0, describe(code)))
        self.watch(self.server.take_worker())


def serve_connection(server: RPCServer, sock: socket.socket, session: Session, server_proof: bytes) -> None:
    """Serve one authenticated client on a worker of its own until it goes or the server stops."""
    sock.settimeout(_SEND_TIMEOUT)  # sends wait at most this; reads only follow readiness
    client = _Client(server, sock, session)
    try:
        worker = server.take_worker()
        client.watch(worker)
        info = {"host": server.host, "workers": server.workers, "pid": os.getpid(), "worker": worker.pid}
        wire.send_plain(sock, wire.pack_accept(server_proof))
        session.send(sock, wire.pack_info(info))
        client.selector.register(sock, selectors.EVENT_READ, "client")
        client.serve()
    finally:
        worker_left = client.unwatch()
        if worker_left is not None:
            worker_left.kill()
        client.selector.close()

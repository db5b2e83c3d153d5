"""``Slot``: one connection of a ParallelPool to a server (one ppft worker there).

Everything the manager thread does on a connection is non-blocking: a frame
to send goes out as far as the socket takes it and the rest waits in the
slot's outbox (the manager then also waits for the socket to be writable); a
frame arriving is cut from the stream as its bytes come (``FrameReader``), so a
server that stops mid-frame never holds the manager. Every frame is tagged
with the connection's session keys (``_auth.py``); what is in a frame is
packed and unpacked by ``_wire.py``.

A slot also keeps the heartbeat: while it has work out (or a ``PING``
unanswered), a server silent for a second is pinged, and one silent for the
pool's ``server_timeout`` (no byte from it, and nothing of ours taken off a
full connection) is lost.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import socket
import sys
import time

from manymap.launcher.lowlevel import ManagedWorker
from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._auth import Session
from manymap.pools.rpc._stream import IOV, views
from manymap.serialize import loads

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.pools.rpc._nodes import Connection, Node

__all__ = ["Slot"]

RESULT_LIMIT = (1 << 31) + wire.PROOF  # bytes of one frame from a server


class Slot(ManagedWorker):
    """One connection: one ppft worker on one node (the pool's record of that worker)."""

    __slots__ = (
        "forged",
        "heard",
        "info",
        "leftover",
        "node",
        "outbox",
        "pinged",
        "reader",
        "session",
        "sock",
        "stalled",
    )

    def __init__(self, node: Node, connection: Connection) -> None:
        super().__init__(f"{node.label}/ppft-{connection.info.get('worker', '?')}", node.host)
        self.node = node
        self.sock: socket.socket = connection.sock
        self.info: dict[str, Any] = connection.info
        self.session: Session = connection.session
        self.reader: wire.FrameReader = connection.reader
        self.reader.limit = RESULT_LIMIT
        self.leftover: list[bytearray] = connection.leftover
        self.sock.setblocking(False)
        self.outbox: collections.deque[memoryview] = collections.deque()
        self.heard = time.monotonic()  # when the server last sent a byte or took one of ours
        self.pinged = 0.0  # when an unanswered PING went out (0: none)
        self.forged = False  # a frame's tag did not hold
        self.stalled = False  # the socket would take no more of the outbox

    def send(self, parts: wire.Parts) -> bool:
        """Queue one tagged frame of ``parts`` (a ``_wire.pack_*`` body) and send what
        the socket takes now; True if some waits.

        Raises:
            OSError: the connection is gone.
        """
        pieces = self.session.wrap(parts)
        if len(pieces) == 1 and not self.outbox:  # a small frame with nothing before it: one send
            try:
                sent = self.sock.send(pieces[0])
            except (BlockingIOError, InterruptedError):
                sent = 0
            if sent == len(pieces[0]):
                return False
            pieces = [memoryview(pieces[0])[sent:]]
        self.outbox.extend(views(pieces))
        return self.flush()

    def flush(self) -> bool:
        """Send what the socket takes of the outbox (in pieces, uncopied); True if some still waits.

        Raises:
            OSError: the connection is gone.
        """
        outbox = self.outbox
        while outbox:
            try:
                sent = self.sock.sendmsg(list(itertools.islice(outbox, IOV)))
            except (BlockingIOError, InterruptedError):
                self.stalled = True
                return True
            if sent and self.stalled:
                # The socket was full and takes bytes again: the server reads (bytes
                # merely buffered by the kernel prove nothing, a frozen server's too).
                self.heard = time.monotonic()
                self.stalled = False
            while sent:
                head = outbox[0]
                if sent < len(head):
                    outbox[0] = head[sent:]
                    break
                sent -= len(head)
                outbox.popleft()
        return False

    def receive(self) -> list[memoryview]:
        """The bodies of the frames complete now (their tags checked).

        Raises:
            EOFError: the connection was closed between frames.
            OSError: it broke, or a frame is cut short, over the limit, or not the server's.
        """
        before = self.reader.received
        raws = self.leftover + self.reader.pump()
        self.leftover = []
        if raws or self.reader.received != before:
            self.heard = time.monotonic()
        return [self.session.open(raw) for raw in raws]

    def silence(self, now: float) -> float:
        """Seconds the server has been silent while it owes us something (0 if it owes nothing)."""
        if self.batch is None and not self.pinged and not self.outbox:
            return 0.0
        return now - self.heard

    def ping_due(self, now: float, after: float) -> bool:
        """Whether to ping the server now (silent ``after`` seconds while it owes an
        answer, and not pinged within them); if so, the ping counts as sent."""
        if self.silence(now) <= after or now - self.pinged <= after:
            return False
        self.pinged = now
        return True

    def handle(self, bodies: list[memoryview]) -> bool:
        """Handle frames from the server (and what came with the handshake). False: drop it."""
        if self.leftover:
            try:
                bodies = [self.session.open(raw) for raw in self.leftover] + bodies
            except OSError:
                return False
            self.leftover = []
        for body in bodies:
            try:
                answer = wire.unpack_answer(body)
            except wire.FrameError:
                return False  # not this protocol
            if isinstance(answer, wire.Done):
                self._done(answer)
            elif isinstance(answer, wire.Lost):
                self.known.clear()  # a fresh worker holds no function
                batch = self.batch
                if answer.token == self.token and batch is not None:
                    self.batch = None
                    batch.lose(f"{answer.reason} on {self.node.label}", exitcode=answer.exitcode or None)
            else:
                self.pinged = 0.0
        return True

    def _done(self, done: wire.Done) -> None:
        def outcome() -> Any:
            if done.output:  # the batch's prints come before its results
                _forward(done.output, self.name)
            return loads(done.result)

        self.settle(done.token, outcome, done.duration)

    def hang_up(self) -> socket.socket:
        """Stop sending on the connection (the server sees its end and closes it);
        its socket, for whoever waits for that close (``_connector.py``)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        return self.sock

    def shut(self) -> None:
        """End the connection both ways, the socket still open: whoever waits on it wakes."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.shut()
        with contextlib.suppress(OSError):
            self.sock.close()


def _forward(out: str, worker: str) -> None:
    """A task's captured output, each line prefixed with its host and worker."""
    lines = out.splitlines()
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write("".join(f"[{worker}] {line}\n" for line in lines))
        sys.stdout.flush()

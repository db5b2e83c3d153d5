"""``Connector``: opening connections for a ParallelPool off its manager thread.

Starting a server, connecting and the handshake can each take seconds (a
frozen server accepts a connection and then says nothing). The manager
asks for a connection (:meth:`Connector.request`) and goes on; a thread of
its own does the slow part and hands the outcome back, ringing the manager's
doorbell; the manager adopts it on its next round (:meth:`Connector.ready`).

A replacement waits for an event, never polls: the manager hangs up the
connection it replaces (it stops sending, so the server sees its end) and
hands it over with the request; the connector's thread waits on it until
the server has closed it, which the server does only once it has killed
that connection's worker and given its place back. Only then does it
connect, so a server that takes no more clients than it has workers has
the place free (a ``ServerBusy`` then means another client took it).
"""

from __future__ import annotations

import collections
import contextlib
import selectors
import socket
import threading
import time
import weakref
from collections.abc import Callable

from manymap.launcher import ConnectionLostError
from manymap.pools.rpc._nodes import CONNECT_TIMEOUT, Connection, Node, ServerBusy

__all__ = ["Connector", "connect_patiently", "wait_closed", "weak_call"]

_BUSY_WAIT = 10.0  # seconds to wait for a place on a server whose clients are all connected


class Connector:
    """Connections opened on threads of their own, handed over when ready.

    Args:
        wake: rings the manager when an outcome is ready.
        timeout: seconds a server may take to connect and prove itself (a
            replacement goes to a server that was there a moment ago: one
            slower than that is as good as lost).
    """

    def __init__(self, wake: Callable[[], None], timeout: float | None = None) -> None:
        self._wake = wake
        self._timeout = timeout
        self._lock = threading.Lock()
        self._outcomes: list[tuple[Node, Connection | BaseException]] = []
        self._pending: collections.Counter[Node] = collections.Counter()
        self._closed = False

    def request(self, node: Node, replaces: socket.socket | None = None) -> None:
        """Open one more connection to ``node`` (starting it first if it is not); with
        ``replaces``, a connection to it that was hung up, once the server has closed
        that one (the connector closes it)."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._pending[node] += 1
        if closed:
            if replaces is not None:
                replaces.close()
            return
        thread = threading.Thread(
            target=self._open, args=(node, replaces), name=f"manymap-connect-{node.label}", daemon=True
        )
        thread.start()

    def pending(self, node: Node | None = None) -> int:
        """Connections being opened (to ``node``, or to any)."""
        with self._lock:
            return self._pending[node] if node is not None else sum(self._pending.values())

    def ready(self) -> list[tuple[Node, Connection | BaseException]]:
        """The outcomes ready since the last call: a connection, or why there is none."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            for node, _ in outcomes:
                self._pending[node] -= 1
                if self._pending[node] <= 0:
                    del self._pending[node]
        return outcomes

    def close(self) -> None:
        """Close what is ready and what is still to come; take no more requests."""
        with self._lock:
            self._closed = True
            outcomes, self._outcomes = self._outcomes, []
            self._pending.clear()
        for _, outcome in outcomes:
            if isinstance(outcome, Connection):
                with contextlib.suppress(OSError):
                    outcome.sock.close()

    def _open(self, node: Node, replaces: socket.socket | None) -> None:
        outcome: Connection | BaseException
        try:
            timeout = self._timeout
            if replaces is not None:
                timeout = wait_closed(replaces, node, self._timeout)
            node.ensure_started()
            outcome = node.connect(timeout)
        except Exception as error:
            outcome = error
        with self._lock:
            if not self._closed:
                self._outcomes.append((node, outcome))
                outcome = None  # type: ignore[assignment]
        if isinstance(outcome, Connection):  # the pool is gone
            with contextlib.suppress(OSError):
                outcome.sock.close()
        self._wake()


def wait_closed(sock: socket.socket, node: Node, timeout: float | None) -> float | None:
    """Wait until the server has closed ``sock`` (hung up by the pool), then close it;
    the time left of ``timeout``.

    Raises:
        ConnectionLostError: the server did not close it within ``timeout``
            seconds (:data:`CONNECT_TIMEOUT` if ``None``): frozen or unreachable.
    """
    limit = CONNECT_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + limit
    with sock, selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise ConnectionLostError(
                    f"{node.label} did not close the connection it replaces within {limit:g} s"
                )
            try:
                if not sock.recv(1 << 16):  # what it still sent is of no use now
                    break
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:  # reset: gone as well
                break
    return None if timeout is None else max(0.1, deadline - time.monotonic())


def connect_patiently(node: Node, timeout: float | None = None) -> Connection:
    """A first connection to ``node`` as a pool starts, waiting a moment for a place on
    a server that is full (the caller's thread; replacements wait for the end of the
    connection they replace instead: :func:`wait_closed`).

    A full server has often not yet seen the end of the connections of a pool
    that just stopped: it frees those places within moments.

    Raises:
        ServerBusy: still full after a while.
    """
    deadline = time.monotonic() + _BUSY_WAIT
    while True:
        try:
            return node.connect(timeout)
        except ServerBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # the caller's own thread: never the manager


def weak_call(method: Callable[[], None]) -> Callable[[], None]:
    """``method`` (a bound method) callable without keeping its object alive:
    the connector's threads ring the pool's manager, but never hold the pool."""
    ref = weakref.WeakMethod(method)

    def call() -> None:
        bound = ref()
        if bound is not None:
            bound()

    return call

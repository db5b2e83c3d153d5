"""``Connector``: opening connections for a ParallelPool off its manager thread.

Starting a server, connecting and the handshake can each take seconds (a
frozen server accepts a connection and then says nothing). The manager
asks for a connection (:meth:`Connector.request`) and goes on; a thread of
its own does the slow part and hands the outcome back, ringing the manager's
doorbell; the manager adopts it on its next round (:meth:`Connector.ready`).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
import weakref
from collections.abc import Callable

from manymap.pools.rpc._nodes import Connection, Node, ServerBusy

__all__ = ["Connector", "connect_patiently", "weak_call"]

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

    def request(self, node: Node) -> None:
        """Open one more connection to ``node`` (starting it first if it is not)."""
        with self._lock:
            if self._closed:
                return
            self._pending[node] += 1
        thread = threading.Thread(
            target=self._open, args=(node,), name=f"manymap-connect-{node.label}", daemon=True
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

    def _open(self, node: Node) -> None:
        outcome: Connection | BaseException
        try:
            node.ensure_started()
            outcome = connect_patiently(node, self._timeout)
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


def connect_patiently(node: Node, timeout: float | None = None) -> Connection:
    """A connection to ``node``, waiting a moment for a place on a server that is full.

    A full server has often not yet seen the end of the connection this one
    replaces: it frees that place within moments.

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

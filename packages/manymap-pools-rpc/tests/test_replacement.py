"""A connection closed to stop a task is replaced once the server has given its place
back, by waiting for the server's end of it: never by trying again and again while
the server is still full.

A real ``RPCServer`` in this process (one worker, so one client place), whose
connection threads hold the place of a closed connection until something is
refused or a bound passes: a pool that retried while the place was held would
be refused ``busy`` at least once.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from manymap.launcher import TaskTimeoutError
from manymap.pools.rpc import ParallelPool, RPCServer, _server
from manymap.pools.rpc._auth import Session

WAIT = 60.0
HOLD = 5.0  # seconds a closed connection's place stays taken unless someone is refused meanwhile


class HoldingServer(RPCServer):
    """Refusals are seen (:attr:`refused`); a connection that ended keeps its place
    until one is, or :data:`HOLD` seconds pass (:attr:`held`: it is holding)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.refused = threading.Event()
        self.held = threading.Event()

    def _drop(self, selector: Any, sock: socket.socket, reason: str = "") -> None:
        super()._drop(selector, sock, reason)
        if reason.startswith("busy"):
            self.refused.set()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[HoldingServer]:
    serve = _server.serve_connection
    server = HoldingServer(secret="s3cret-" + "cd" * 28, workers=1)

    def holding(owner: RPCServer, sock: socket.socket, session: Session, proof: bytes) -> None:
        try:
            serve(owner, sock, session, proof)
        finally:
            server.held.set()
            server.refused.wait(HOLD)  # a bound, not a synchronisation: nothing waits for it

    monkeypatch.setattr(_server, "serve_connection", holding)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stop()
        thread.join(WAIT)


def test_a_replacement_waits_for_the_place_of_the_connection_it_replaces(server: HoldingServer) -> None:
    address = f"127.0.0.1:{server.port}"
    pool = ParallelPool(0, servers=[address], secret=server.secret, server_timeout=30)
    try:
        assert pool.pipe(abs, -1) == 1
        with pytest.raises(TaskTimeoutError):
            pool.amap(time.sleep, [30], timeout=1).get(timeout=WAIT)  # its connection is closed to stop it
        assert server.held.wait(WAIT)
        assert pool.amap(abs, [-2, -3]).get(timeout=WAIT) == [2, 3]  # on the replacement
        assert not server.refused.is_set(), "the replacement tried while the server was full"
        assert server.rejected == 0
    finally:
        pool.terminate()
        pool.join()

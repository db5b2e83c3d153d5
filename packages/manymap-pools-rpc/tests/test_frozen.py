"""A frozen or cut-off server (fault table, issue 12 row 3).

A real ``manymap-server`` stopped with SIGSTOP (resumed and stopped in
teardown), and a relay that cuts a connection in the middle of a frame. The
map completes on the other nodes; the manager thread never waits for the
frozen server (reconnects run on threads of their own).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from rpc_helpers import WAIT, Listener, ServerProcess, frame, read_frame

from manymap.launcher import EventKind, TaskEvent, TaskTimeoutError, WorkerLostError
from manymap.launcher.testing import _tasks as tasks
from manymap.pools.rpc import ParallelPool, _nodes


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, workers=2)
    try:
        yield process
    finally:
        if process.process.poll() is None:
            os.kill(process.process.pid, signal.SIGCONT)
        process.stop()


def freeze(server: ServerProcess) -> None:
    os.kill(server.process.pid, signal.SIGSTOP)


def test_a_frozen_server_mid_map_its_tasks_finish_elsewhere(server: ServerProcess) -> None:
    frozen = threading.Event()

    def consume(event: TaskEvent) -> None:
        on_server = (event.worker or "").startswith(server.address)
        if event.kind is EventKind.STARTED and on_server and not frozen.is_set():
            frozen.set()
            freeze(server)

    pool = ParallelPool(1, servers=[server.address], secret=server.secret, server_timeout=3)
    try:
        result = pool.amap(tasks.sleep_then, range(12), [0.05] * 12, chunksize=1, progress=consume)
        assert result.get(timeout=WAIT) == list(range(12))  # without a heartbeat: a hang
        assert frozen.is_set()
        stats = pool.stats()
        assert stats.tasks == 12  # the frozen server's task ran again, uncharged
        assert pool.map(tasks.square, range(6)) == [x * x for x in range(6)]
    finally:
        pool.terminate()
        pool.join()


def test_the_next_map_does_not_wait_for_a_reconnect_to_a_frozen_server(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reconnect to a frozen server connects (the kernel accepts) and then waits for
    # the handshake until this timeout: long, so that a manager waiting for it shows.
    monkeypatch.setattr(_nodes, "CONNECT_TIMEOUT", 600.0)
    pool = ParallelPool(1, servers=[server.address], secret=server.secret)
    try:
        assert pool.map(abs, range(-4, 0), chunksize=1) == [4, 3, 2, 1]
        assert pool.capacity == 3
        freeze(server)
        with pytest.raises(TaskTimeoutError):  # one task on each node: the frozen one times out
            pool.amap(time.sleep, [30, 30, 30], timeout=2, chunksize=1).get(timeout=WAIT)
        # ... and its connection is being replaced: that must not hold the next map.
        assert pool.amap(abs, range(-6, 0)).get(timeout=WAIT) == [6, 5, 4, 3, 2, 1]
    finally:
        pool.terminate()
        pool.join()


class HalfFrame:
    """A relay to a real server that, once it has relayed a few answers, passes on
    only the first bytes of the next one and then nothing: a connection cut mid-frame."""

    def __init__(self, server: ServerProcess, whole: int) -> None:
        self.server = server
        self.whole = whole  # answers relayed whole on each connection
        self.cut = threading.Event()
        self.listener = Listener(self.relay)

    def relay(self, client: socket.socket) -> None:
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=WAIT) as upstream:
            client.sendall(frame(read_frame(upstream)))  # HELLO
            upstream.sendall(frame(read_frame(client)))  # the client's proof
            client.sendall(frame(read_frame(upstream)))  # OK and the server's proof
            client.sendall(frame(read_frame(upstream)))  # the server's info, in a tagged frame
            answers = 0
            while True:
                upstream.sendall(frame(read_frame(client)))  # a batch
                answer = frame(read_frame(upstream))
                if answers < self.whole or self.cut.is_set():
                    client.sendall(answer)
                    answers += 1
                    continue
                self.cut.set()
                client.sendall(answer[:12])  # the length and a few bytes, then silence
                while True:  # until the client gives up on this connection
                    read_frame(client)

    def close(self) -> None:
        self.listener.close()


def test_a_connection_cut_mid_frame_does_not_hold_the_manager(server: ServerProcess) -> None:
    relay = HalfFrame(server, whole=1)
    pool = ParallelPool(1, servers=[relay.listener.address], secret=server.secret, server_timeout=3)
    try:
        result = pool.amap(tasks.sleep_then, range(10), [0.05] * 10, chunksize=1)
        assert result.get(timeout=WAIT) == list(range(10))
        assert relay.cut.is_set()
    finally:
        pool.terminate()
        pool.join()
        relay.close()


def test_a_worker_busy_longer_than_server_timeout_is_not_taken_for_a_frozen_server(
    server: ServerProcess,
) -> None:
    """The worker reads its connection only between batches: while it runs one, the
    server's heartbeat is what the pool hears."""
    pool = ParallelPool(0, servers=[server.address], secret=server.secret, server_timeout=1)
    with pool, warnings.catch_warnings():
        warnings.simplefilter("error")  # a lost server would warn
        assert pool.map(tasks.sleep_then, range(2), [3.0] * 2, chunksize=1) == [0, 1]


def test_a_frozen_server_with_a_busy_worker_is_lost(server: ServerProcess) -> None:
    """The heartbeat comes from the server, not the worker: a frozen server is lost
    though its worker runs on (and its tasks run again elsewhere, here nowhere)."""
    running = threading.Semaphore(0)

    def started(event: TaskEvent) -> None:
        if event.kind is EventKind.STARTED:
            running.release()

    with ParallelPool(0, servers=[server.address], secret=server.secret, server_timeout=2) as pool:
        handle = pool.amap(tasks.sleep_then, range(2), [30.0] * 2, chunksize=1, progress=started)
        assert running.acquire(timeout=WAIT)
        assert running.acquire(timeout=WAIT)
        freeze(server)
        started = time.monotonic()
        with pytest.warns(RuntimeWarning, match="is lost"), pytest.raises(WorkerLostError):
            handle.get(WAIT)
        assert time.monotonic() - started < 10

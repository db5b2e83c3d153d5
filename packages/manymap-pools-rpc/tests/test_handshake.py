"""The handshake is mutual and bound to the connection (fault table, issue 12 row 2).

Real sockets on 127.0.0.1: a fake server that knows no secret, a man in the
middle relaying between a client and a real server, a wrong secret on
either side. Neither end sends work to, nor loads anything from, a peer that
has not proved the secret, and a relayed handshake gives the relay nothing
it can use.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from rpc_helpers import WAIT, Listener, ServerProcess, frame, read_frame

from manymap.launcher import AuthenticationError, ManymapError
from manymap.pools.rpc import ParallelPool
from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._auth import proof
from manymap.serialize import dumps


class Planted:
    """Unpickling it creates ``path``: code run by whoever loads it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, "--auth-timeout", "5", workers=2)
    try:
        yield process
    finally:
        process.stop()


def test_a_fake_server_gets_nothing_and_the_client_loads_nothing(tmp_path: Path) -> None:
    """A listener that knows no secret: greets, takes what the client says, claims
    success, and answers any work with a pickle that runs code when loaded."""
    planted = tmp_path / "planted-in-the-client"
    received: list[bytes] = []

    def fake(conn: socket.socket) -> None:
        conn.sendall(frame(wire.HELLO, os.urandom(32)))
        received.append(read_frame(conn))
        info = json.dumps({"host": "fake", "workers": 1, "pid": 1, "worker": 1}).encode()
        conn.sendall(frame(wire.OK, info))  # a claim of success, with no proof behind it
        while True:  # whatever comes next is work: answer it with the planted pickle
            work = read_frame(conn)
            received.append(work)
            token = work[1:9]
            conn.sendall(frame(wire.DONE, token, struct.pack("!dI", 0.0, 0), dumps(Planted(planted))))

    listener = Listener(fake)
    try:
        pool = ParallelPool(0, servers=[listener.address], secret="the real secret")
        with (
            pytest.warns(RuntimeWarning, match=rf"server {listener.address} is not used"),
            pytest.raises(AuthenticationError, match=rf"{listener.address}.*did not prove"),
        ):
            pool.map(abs, [-1, -2])
        pool.join()
    finally:
        listener.close()
    assert not planted.exists()
    assert listener.errors == []
    assert len(received) == 1  # the client's proof, and nothing of the work
    assert received[0].startswith(wire.PROVE)
    assert b"abs" not in received[0]


def test_a_server_with_another_secret_is_refused_by_the_client(tmp_path: Path) -> None:
    """The server side wrong: a server that proves another secret (and lets anyone in)."""
    sent_work: list[bytes] = []

    def other(conn: socket.socket) -> None:
        nonce = os.urandom(32)
        conn.sendall(frame(wire.HELLO, nonce))
        reply = read_frame(conn)
        client_nonce = reply[1:33]
        conn.sendall(frame(wire.OK, proof("another secret", b"server", nonce, client_nonce)))
        with contextlib.suppress(EOFError, OSError):
            sent_work.append(read_frame(conn))

    listener = Listener(other)
    try:
        pool = ParallelPool(0, servers=[listener.address], secret="the real secret")
        with (
            pytest.warns(RuntimeWarning, match="is not used"),
            pytest.raises(AuthenticationError, match=rf"{listener.address}.*did not prove"),
        ):
            pool.map(abs, [-1])
        pool.join()
    finally:
        listener.close()
    assert sent_work == []


def test_a_client_with_another_secret_is_refused_by_the_server(server: ServerProcess) -> None:
    pool = ParallelPool(0, servers=[server.address], secret="not the secret")
    with (
        pytest.warns(RuntimeWarning, match="is not used"),
        pytest.raises(AuthenticationError, match=rf"{server.address}.*wrong secret"),
    ):
        pool.map(abs, [-1])
    pool.join()


def test_a_reflected_proof_is_refused(server: ServerProcess) -> None:
    """The server's own proof (or one for another connection) sent back proves nothing."""
    with server.connect() as sock:
        hello = read_frame(sock)
        nonce = hello[len(wire.HELLO) :]
        client_nonce = os.urandom(32)
        reflected = proof(server.secret, b"server", nonce, client_nonce)  # the wrong role
        sock.sendall(frame(wire.PROVE, client_nonce, reflected))
        assert read_frame(sock).startswith(wire.NO)
    with server.connect() as first, server.connect() as second:
        nonce = read_frame(first)[len(wire.HELLO) :]
        read_frame(second)
        client_nonce = os.urandom(32)
        good_for_first = proof(server.secret, b"client", nonce, client_nonce)
        second.sendall(frame(wire.PROVE, client_nonce, good_for_first))  # replayed on another connection
        assert read_frame(second).startswith(wire.NO)


class Relay:
    """A man in the middle between a client and a real server: relays the handshake
    (so both ends authenticate each other through it), then injects frames of its own
    both ways: work for the server, a planted pickle for the client."""

    def __init__(self, server: ServerProcess, planted_client: Path, planted_server: Path) -> None:
        self.server = server
        self.planted_client = planted_client
        self.planted_server = planted_server
        self.relayed = 0
        self.listener = Listener(self.relay)

    def relay(self, client: socket.socket) -> None:
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=WAIT) as upstream:
            client.sendall(frame(read_frame(upstream)))  # HELLO
            upstream.sendall(frame(read_frame(client)))  # the client's proof
            ok = read_frame(upstream)
            client.sendall(frame(ok))
            if not ok.startswith(wire.OK):
                return
            client.sendall(frame(read_frame(upstream)))  # the server's info, in a tagged frame
            self.relayed += 1
            work = read_frame(client)  # the client's first batch: replaced by ours
            token = work[1:9]
            function = dumps(Planted(self.planted_server))  # unpickled by the worker, were it let in
            ours = b"".join(wire.pack_batch(1, False, function, (dumps(({}, [1])),)))
            upstream.sendall(frame(wire.RUN, token, ours, os.urandom(32)))
            client.sendall(
                frame(wire.DONE, token, struct.pack("!dI", 0.0, 0), dumps(Planted(self.planted_client)))
            )
            with contextlib.suppress(EOFError, OSError):
                while read_frame(upstream):
                    pass

    def close(self) -> None:
        self.listener.close()


def test_a_relayed_handshake_gives_a_man_in_the_middle_nothing(server: ServerProcess, tmp_path: Path) -> None:
    planted_client, planted_server = tmp_path / "in-the-client", tmp_path / "in-the-server"
    relay = Relay(server, planted_client, planted_server)
    try:
        pool = ParallelPool(0, servers=[relay.listener.address], secret=server.secret)
        with (
            pytest.warns(RuntimeWarning, match=rf"{relay.listener.address} is lost.*not the server's"),
            pytest.raises(ManymapError, match="tampered with"),
        ):
            pool.map(abs, [-1, -2, -3])
        pool.join()
    finally:
        relay.close()
    assert relay.relayed >= 1  # the relay did get both ends through the handshake
    assert not planted_client.exists()
    assert not planted_server.exists()
    assert relay.listener.errors == []
    with ParallelPool(0, servers=[server.address], secret=server.secret) as pool:  # the server is fine
        assert pool.map(abs, [-1, -2]) == [1, 2]

"""Every frame of ``_wire.py`` packs and unpacks to what it was, and malformed ones are refused.

The handshake and tagged frames go through a real socket pair and the
frame reader, as they travel; the ppft pipe's job frames are read back as a
real ppft worker reads them in ``test_ppworker.py``.
"""

from __future__ import annotations

import hashlib
import io
import marshal
import os
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._auth import BULK, Session, TagError, check_client, new_nonce, proof
from manymap.serialize import BUFFER_ALIGNMENT

# Fixed bytes, not random ones: the parameters' ids must be the same in every
# pytest process (pytest-xdist compares what each one collected).
NONCE = bytes(range(1, wire.NONCE + 1))
PROOF = bytes(range(100, 100 + wire.PROOF))


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    left.settimeout(10.0)
    right.settimeout(10.0)
    try:
        yield left, right
    finally:
        left.close()
        right.close()


def carried(pair: tuple[socket.socket, socket.socket], parts: wire.Parts) -> bytes:
    """``parts`` sent as one frame and cut from the stream again."""
    left, right = pair
    wire.send_plain(left, parts)
    reader = wire.FrameReader.for_socket(right, wire.HANDSHAKE_LIMIT)
    frames: list[bytearray] = []
    while not frames:
        frames = reader.pump()
    assert len(frames) == 1
    return bytes(frames[0])


# ----------------------------------------------------------------- handshake


def test_handshake_frames_round_trip(pair: tuple[socket.socket, socket.socket]) -> None:
    assert wire.unpack_hello(carried(pair, wire.pack_hello(NONCE))) == NONCE
    assert wire.unpack_prove(carried(pair, wire.pack_prove(NONCE, PROOF))) == (NONCE, PROOF)
    accepted = wire.unpack_verdict(carried(pair, wire.pack_accept(PROOF)))
    assert isinstance(accepted, wire.Accepted)
    assert accepted.proof == PROOF
    refused = wire.unpack_verdict(carried(pair, wire.pack_refuse("busy: ünïcode")))
    assert isinstance(refused, wire.Refused)
    assert refused.reason == "busy: ünïcode"
    info = {"host": "h", "workers": 3, "pid": 7, "worker": 8}
    assert wire.unpack_info(carried(pair, wire.pack_info(info))) == info


def test_the_handshake_frames_keep_protocol_2s_layout() -> None:
    """Byte for byte what protocol 2 sends: a peer of the same version still understands it."""
    assert b"".join(wire.pack_hello(NONCE)) == b"MMRPC6" + NONCE
    assert b"".join(wire.pack_prove(NONCE, PROOF)) == b"P" + NONCE + PROOF
    assert b"".join(wire.pack_accept(PROOF)) == b"OK" + PROOF
    assert b"".join(wire.pack_refuse("why")) == b"NOwhy"
    assert wire.frame(b"ab", b"c") == struct.pack("!Q", 3) + b"abc"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"MMRPC1" + NONCE, "another version"),
        (b"MMRPC2" + NONCE, "another version"),
        (b"MMRPC3" + NONCE, "another version"),
        (b"MMRPC4" + NONCE, "another version"),
        (b"MMRPC5" + NONCE, "another version"),
        (b"MMRPC6" + NONCE[:-1], "another version"),
        (b"SSH-2.0-OpenSSH", "not a manymap-server$"),
        (b"", "not a manymap-server$"),
    ],
)
def test_a_wrong_greeting_is_refused(body: bytes, match: str) -> None:
    with pytest.raises(wire.FrameError, match=match):
        wire.unpack_hello(body)


@pytest.mark.parametrize("body", [b"", b"P", b"P" + NONCE, b"P" + NONCE + PROOF + b"x", b"Q" + NONCE + PROOF])
def test_a_malformed_proof_is_refused(body: bytes) -> None:
    with pytest.raises(wire.FrameError):
        wire.unpack_prove(body)


def test_a_malformed_verdict_or_info_is_refused() -> None:
    with pytest.raises(wire.FrameError):
        wire.unpack_verdict(b"MAYBE")
    with pytest.raises(wire.FrameError, match="not readable"):
        wire.unpack_info(b"{")
    with pytest.raises(wire.FrameError, match="not a table of names"):
        wire.unpack_info(marshal.dumps([1], wire.MARSHAL))
    with pytest.raises(wire.FrameError, match="not a table of names"):
        wire.unpack_info(marshal.dumps({1: 2}, wire.MARSHAL))


def test_packing_refuses_nonces_and_proofs_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match="nonce is 32 bytes"):
        wire.pack_hello(b"short")
    with pytest.raises(ValueError, match="proof is 32 bytes"):
        wire.pack_accept(b"short")


def test_a_whole_handshake_through_the_wire_proves_both_ends() -> None:
    secret = "s3cret"
    server_nonce = wire.unpack_hello(b"".join(wire.pack_hello(new_nonce())))
    client_nonce = new_nonce()
    prove = b"".join(wire.pack_prove(client_nonce, proof(secret, b"client", server_nonce, client_nonce)))
    proven = check_client(secret, server_nonce, prove)
    assert proven is not None
    server_session, server_proof = proven
    assert server_proof == proof(secret, b"server", server_nonce, client_nonce)
    assert check_client("another", server_nonce, prove) is None
    with pytest.raises(wire.FrameError):
        check_client(secret, server_nonce, prove[:-1])
    client_session = Session(secret, server_nonce, client_nonce, client=True)
    sealed = server_session.seal(wire.pack_info({"host": "h"}))
    assert wire.unpack_info(client_session.open(sealed[wire.LENGTH.size :])) == {"host": "h"}
    with pytest.raises(TagError):  # a replay: the sequence number moved on
        client_session.open(sealed[wire.LENGTH.size :])


def _sessions() -> tuple[Session, Session]:
    """A client's and a server's session of one connection."""
    server_nonce, client_nonce = new_nonce(), new_nonce()
    client = Session("s3cret", server_nonce, client_nonce, client=True)
    return client, Session("s3cret", server_nonce, client_nonce, client=False)


def test_a_small_frames_tag_is_keyed_blake2b_of_its_number_and_body() -> None:
    """The tag a peer of another implementation can compute: BLAKE2b-256 keyed with
    the direction's key, over the frame's number (8 bytes, big-endian) and its body."""
    client, _ = _sessions()
    body = (b"R", os.urandom(8), b"a small batch")
    client.seal((b"first",))  # frame 0: the next is frame 1
    key = client.keys()[: len(client.keys()) // 4]  # the send key
    expected = hashlib.blake2b(struct.pack("!Q", 1) + b"".join(body), key=key, digest_size=32).digest()
    assert client.seal(body)[-wire.PROOF :] == expected


@pytest.mark.parametrize("size", [0, BULK - 1, BULK, 3 * BULK + 5], ids=["empty", "small", "bulk", "larger"])
def test_tagged_frames_of_every_size_pass_and_any_change_is_caught(size: int) -> None:
    client, server = _sessions()
    body = os.urandom(size)
    for _ in range(2):  # a second frame: another sequence number, another key
        sealed = bytearray(client.seal((body[: size // 2], body[size // 2 :])))
        assert len(sealed) == wire.LENGTH.size + size + wire.PROOF
        assert bytes(server.open(sealed[wire.LENGTH.size :])) == body
    sealed = bytearray(client.seal((body,)))
    changed = [bytearray(sealed[wire.LENGTH.size :]) for _ in range(2)]
    changed[0][-1] ^= 1  # the tag
    changed[1][size // 2 if size else -1] ^= 1  # the body (or the tag of an empty one)
    for frame in changed:
        with pytest.raises(TagError):
            server.open(frame)
    assert bytes(server.open(sealed[wire.LENGTH.size :])) == body  # unchanged: it passes
    with pytest.raises(TagError):  # a replay: the sequence number moved on
        server.open(sealed[wire.LENGTH.size :])
    with pytest.raises(TagError):  # reflected to its sender: the other direction's keys
        client.open(bytes(client.seal((body,)))[wire.LENGTH.size :])


def test_a_bulk_frame_is_sealed_in_pieces_without_copying_its_body() -> None:
    client, server = _sessions()
    body = bytearray(os.urandom(BULK))
    pieces = client.wrap((b"R", body))
    assert pieces[2] is body  # not copied into a frame
    assert bytes(pieces[-1][16:]) == bytes(wire.PROOF - 16)  # Poly1305's 16 bytes, padded
    assert bytes(server.open(b"".join(pieces)[wire.LENGTH.size :])) == b"R" + body
    (small,) = client.wrap((b"R", b"small"))  # a small frame: one piece, one write
    assert bytes(server.open(small[wire.LENGTH.size :])) == b"Rsmall"


def test_without_poly1305_a_bulk_frame_fails_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm

    from manymap.pools.rpc import _auth

    def unsupported(key: bytes) -> None:
        raise UnsupportedAlgorithm("poly1305 is not supported by this version of OpenSSL")

    monkeypatch.setattr(_auth, "_poly1305", [unsupported])  # as an OpenSSL in FIPS mode answers
    client, _ = _sessions()
    assert client.seal((b"small",))  # BLAKE2b alone: no Poly1305 needed
    with pytest.raises(RuntimeError, match=r"needs Poly1305 of the cryptography package.*not supported"):
        client.seal((bytes(BULK),))


@pytest.mark.parametrize("timeout", [None, 30.0], ids=["blocking", "non-blocking"])
def test_send_buffers_writes_every_piece_in_turn(
    pair: tuple[socket.socket, socket.socket], timeout: float | None
) -> None:
    # Non-blocking with a timeout: a worker's connection, where a write that finds
    # the socket's buffer full (the 4 MB piece) waits for the reader.
    left, right = pair
    if timeout is not None:
        left.setblocking(False)
    pieces = [b"ab", b"", memoryview(b"cdef")[1:], bytearray(b"g" * 4_000_000)] + [b"h"] * 100
    outcome: list[BaseException | None] = []

    def send() -> None:
        try:
            wire.send_buffers(left, pieces, timeout)
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    expected = b"".join(pieces)
    got = bytearray()
    while len(got) < len(expected):
        got += right.recv(1 << 16)
    sender.join(30.0)
    assert outcome == [None]
    assert bytes(got) == expected


def test_send_buffers_on_a_non_blocking_socket_gives_up_after_its_timeout(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, _ = pair  # nobody reads the other end
    left.setblocking(False)
    with pytest.raises(TimeoutError, match=r"no room to write on the connection for 0\.2 seconds"):
        wire.send_buffers(left, [bytearray(8_000_000)], 0.2)
    with pytest.raises(BlockingIOError):  # without a timeout: the caller's to handle
        wire.send_buffers(left, [bytearray(8_000_000)])


# -------------------------------------------------------------- tagged bodies


def test_client_frames_round_trip(pair: tuple[socket.socket, socket.socket]) -> None:
    batch = wire.pack_batch(9, True, b"function", (b"da", b"ta"))
    run = wire.unpack_request(carried(pair, wire.pack_run(2**64 - 1, batch)))
    assert isinstance(run, wire.Run)
    assert run.token == 2**64 - 1
    got = wire.unpack_batch(run.payload)
    assert (got.key, got.star, bytes(got.function), bytes(got.data)) == (9, True, b"function", b"data")
    assert isinstance(wire.unpack_request(carried(pair, wire.pack_ping())), wire.Ping)


def test_server_frames_round_trip(pair: tuple[socket.socket, socket.socket]) -> None:
    done = wire.unpack_answer(carried(pair, wire.pack_done(5, 0.25, "out ✓\n", (b"result",))))
    assert isinstance(done, wire.Done)
    assert (done.token, done.duration, done.output, bytes(done.result)) == (5, 0.25, "out ✓\n", b"result")
    lost = wire.unpack_answer(carried(pair, wire.pack_lost(0, -9, "killed by SIGKILL")))
    assert isinstance(lost, wire.Lost)
    assert (lost.token, lost.exitcode, lost.reason) == (0, -9, "killed by SIGKILL")
    assert isinstance(wire.unpack_answer(carried(pair, wire.pack_pong())), wire.Pong)


def test_a_batch_round_trips_with_an_empty_function() -> None:
    batch = wire.unpack_batch(b"".join(wire.pack_batch(1, False, b"", (b"items",))))
    assert (batch.key, batch.star, bytes(batch.function), bytes(batch.data)) == (1, False, b"", b"items")


@pytest.mark.parametrize("size", [0, 1, 37, 63, 64, 65, 1000])
def test_a_payload_starts_at_a_multiple_of_the_buffer_alignment_in_its_body(size: int) -> None:
    """Whatever the function's or the output's length, the payload after it starts at a
    multiple of BUFFER_ALIGNMENT from the body's start: the arrays inside it are
    views of the received frame, aligned where the frame's memory is."""
    payload = b"\x93payload"
    run = b"".join(wire.pack_run(1, wire.pack_batch(2, False, b"f" * size, (payload,))))
    assert run.index(payload) % BUFFER_ALIGNMENT == 0
    batch = wire.unpack_batch(wire.unpack_request(run).payload)
    assert (bytes(batch.function), bytes(batch.data)) == (b"f" * size, payload)
    done = b"".join(wire.pack_done(1, 0.0, "o" * size, (payload,)))
    assert done.index(payload) % BUFFER_ALIGNMENT == 0
    answer = wire.unpack_answer(done)
    assert isinstance(answer, wire.Done)
    assert (answer.output, bytes(answer.result)) == ("o" * size, payload)


@pytest.mark.parametrize(
    "body",
    [b"", b"R", b"R" + b"\0" * 7, b"?x", b"!", b"D", b"X" + b"\0" * 40],
    ids=["empty", "run-no-token", "run-short-token", "ping-with-more", "pong-from-client", "done", "unknown"],
)
def test_a_malformed_client_frame_is_refused(body: bytes) -> None:
    with pytest.raises(wire.FrameError):
        wire.unpack_request(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"D" + b"\0" * 8,
        b"D" + struct.pack("!QdI", 1, 0.0, 10) + b"short",
        b"L" + b"\0" * 5,
        b"!x",
        b"?",
        b"R" + b"\0" * 20,
    ],
    ids=["empty", "done-short-head", "done-short-output", "lost-short", "pong-with-more", "ping", "run"],
)
def test_a_malformed_server_frame_is_refused(body: bytes) -> None:
    with pytest.raises(wire.FrameError):
        wire.unpack_answer(body)


@pytest.mark.parametrize("payload", [b"", b"\0" * 16, struct.pack("!Q?Q", 1, False, 100) + b"f"])
def test_a_malformed_batch_is_refused(payload: bytes) -> None:
    with pytest.raises(wire.FrameError):
        wire.unpack_batch(payload)


# ------------------------------------------------------------ the worker's stdin


def test_the_greeting_round_trips_and_a_malformed_one_is_refused() -> None:
    assert wire.unpack_greeting(str(os.getpid()).encode()) == os.getpid()
    assert wire.pack_pickle_protocol(5) == wire.frame(b"5")
    with pytest.raises(wire.FrameError, match="greeting"):
        wire.unpack_greeting(b"hello")


def test_the_reader_refuses_a_frame_over_its_limit_and_a_stream_cut_mid_frame() -> None:
    with pytest.raises(wire.FrameError, match="over the limit"):
        _pipe_reader(wire.frame(b"x" * 11), limit=10).pump()
    reader = _pipe_reader(wire.frame(b"x" * 10)[:-1])
    assert reader.pump() == []
    with pytest.raises(wire.FrameError, match="middle of a frame"):
        reader.pump()
    with pytest.raises(EOFError):
        _pipe_reader(b"").pump()


@pytest.mark.parametrize(
    "cuts",
    [[], [1] * 40, [8], [13], [13, 8, 12], [20], [7, 30]],
    ids=["all-at-once", "byte-by-byte", "a-length", "one-frame", "one-frame-each", "one-and-a-half", "mixed"],
)
def test_the_reader_cuts_the_same_frames_however_the_stream_arrives(cuts: list[int]) -> None:
    """Whole frames one per read (the common case, cut without buffering), several in
    one read, or frames split anywhere: the same frames, in order."""
    bodies = [b"abcde", b"", b"fghi", b"jklmnopqrstuvwxyz"]
    stream = b"".join(wire.frame(body) for body in bodies)
    chunks, at = [], 0
    for cut in cuts:
        chunks.append(stream[at : at + cut])
        at += cut
    chunks.append(stream[at:])

    def read_into(buffer: memoryview) -> int:
        chunk = chunks.pop(0) if chunks else b""
        buffer[: len(chunk)] = chunk
        return len(chunk)

    reader = wire.FrameReader(read_into, 1 << 20)
    got: list[bytes] = []
    while chunks:
        got += [bytes(frame) for frame in reader.pump()]
    assert got == bodies
    with pytest.raises(EOFError):
        reader.pump()


def _pipe_reader(data: bytes, limit: int = 1 << 20) -> wire.FrameReader:
    """A reader of a stream holding ``data``, ending after it."""
    return wire.FrameReader(io.BytesIO(data).readinto, limit)

"""The server's ppft worker (``_inworker.py``, started by ``PPWorker``): it greets as
ppft's worker does, is handed a client's connection (``_handoff.py``) and serves
it itself, running ppft's own loop: batches in, replies, pings and its retirement
out, and the shared state saying what it does. Real worker processes, exec'd and
forked from a template; this test plays both the server and the client."""

from __future__ import annotations

import os
import selectors
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from manymap.launcher.testing import eventually
from manymap.pools.rpc import _forking
from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._auth import Session
from manymap.pools.rpc._handoff import CUT, IDLE, RETIRED, RUNNING, SharedState, Terms
from manymap.pools.rpc._ppprocess import PPWorker
from manymap.pools.rpc._template import Template
from manymap.serialize import dumps, dumps_parts, loads

WAIT = 30.0


class Client:
    """The client's end of a connection handed to a worker."""

    def __init__(self, worker: PPWorker, max_tasks: int | None = None, frame_limit: int = 1 << 30) -> None:
        ours, theirs = socket.socketpair()
        nonces = os.urandom(wire.NONCE), os.urandom(wire.NONCE)
        self.session = Session("s3cret", *nonces, client=True)
        server = Session("s3cret", *nonces, client=False)
        server.send(theirs, wire.pack_info({"host": "test"}))  # the server's first frame
        self.session.open(wire.FrameReader.for_socket(ours, 1 << 20).pump()[0])
        self.state = SharedState()
        self.state.write(server.sent, server.received, IDLE, 0, time.monotonic())
        assert worker.hand_off(theirs, server, self.state, Terms(frame_limit, max_tasks))
        theirs.close()  # the worker holds it now
        self.sock = ours
        self.reader = wire.FrameReader.for_socket(ours, 1 << 30)
        self.frames: list[bytearray] = []
        self.functions: set[int] = set()

    def send(self, parts: wire.Parts) -> None:
        self.session.send(self.sock, parts)

    def run(self, token: int, function: object, items: list[object]) -> None:
        key = id(function)
        body = b"" if key in self.functions else dumps(function)
        self.functions.add(key)
        self.send(wire.pack_run(token, wire.pack_batch(key, False, body, tuple(dumps_parts(({}, items))))))

    def answer(self) -> wire.Done | wire.Lost | wire.Pong:
        deadline = time.monotonic() + WAIT
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ)
            while not self.frames:
                assert selector.select(deadline - time.monotonic()), "no answer from the worker"
                self.frames += self.reader.pump()
        return wire.unpack_answer(self.session.open(self.frames.pop(0)))

    def done(self) -> wire.Done:
        answer = self.answer()
        assert isinstance(answer, wire.Done), answer
        return answer


@pytest.fixture(params=["exec", "template"])
def worker(request: pytest.FixtureRequest) -> Iterator[PPWorker]:
    if request.param == "template" and not _forking.available():
        pytest.skip("a template forks workers where os.fork and pidfds exist (Linux)")
    template = Template() if request.param == "template" else None
    started = PPWorker(template).ready()
    try:
        yield started
    finally:
        started.kill()
        if template is not None:
            template.close()


def exited(worker: PPWorker) -> int | None:
    """The worker's exit code once it has ended by itself (within WAIT)."""
    with selectors.DefaultSelector() as selector:
        selector.register(worker.death, selectors.EVENT_READ)
        assert selector.select(WAIT), "the worker did not end"
    return worker.exitcode()


def reaches(client: Client, state: int) -> tuple[int, int, int, int, float]:
    """The shared state once it says ``state`` (the worker writes it right after its
    frame goes out: a moment after the client may have read the frame)."""
    assert eventually(lambda: client.state.read()[2] == state, WAIT, 0.001), client.state.read()
    return client.state.read()


def test_serves_the_connection_it_is_handed_with_outputs_and_pings(worker: PPWorker) -> None:
    client = Client(worker)
    client.run(1, abs, [-3, 4])
    done = client.done()
    assert (done.token, loads(done.result), done.output) == (1, ([3, 4], {}), "")
    assert done.duration >= 0
    client.send(wire.pack_ping())
    assert isinstance(client.answer(), wire.Pong)
    client.run(2, print, ["hi"])  # the output comes with the reply
    done = client.done()
    assert loads(done.result) == ([None], {})
    assert done.output == "hi\n"
    client.run(3, abs, [-5])  # the function is cached by now: sent by key only
    assert loads(client.done().result) == ([5], {})
    assert reaches(client, IDLE)[:2] == (client.session.received, client.session.sent)


def test_the_shared_state_says_what_it_runs(worker: PPWorker) -> None:
    client = Client(worker)
    client.run(7, time.sleep, [0.5])
    assert reaches(client, RUNNING)[3] == 7
    assert client.done().token == 7
    reaches(client, IDLE)


def test_a_large_batch_and_its_outcome_pass_both_ways(worker: PPWorker) -> None:
    client = Client(worker)
    data = bytes(range(256)) * (8 * 4096)  # 8 MB
    client.run(1, bytes, [data])
    assert loads(client.done().result) == ([data], {})


def test_large_buffers_go_both_ways_inside_the_frames_uncopied(worker: PPWorker) -> None:
    """A batch's large buffers travel as pieces of the RUN frame and the results' as
    pieces of the DONE frame: loaded, they are views of the frame that brought them."""
    np = pytest.importorskip("numpy")
    client = Client(worker)
    arrays = [np.arange(1 << 20, dtype=np.float64) + i for i in range(3)]
    client.run(1, np.negative, arrays)
    done = client.done()
    values, failures = loads(done.result)
    assert failures == {}
    frame = np.frombuffer(done.result, dtype=np.uint8)
    for got, array in zip(values, arrays, strict=True):
        np.testing.assert_array_equal(got, -array)
        assert np.shares_memory(got, frame)  # a view of the received frame
        assert got.flags.writeable
        assert got.flags.aligned
    assert len(done.result) < 3 * array.nbytes + 4096  # each array once, not twice


def test_a_worker_that_ran_its_share_says_so_first_and_exits(worker: PPWorker) -> None:
    client = Client(worker, max_tasks=3)
    client.run(1, abs, [-1, -2])
    assert loads(client.done().result) == ([1, 2], {})
    client.run(2, abs, [-3, -4])  # the 4th task: over its share, the batch finishes first
    lost = client.answer()
    assert isinstance(lost, wire.Lost)
    assert lost.token == 0  # nothing of the client's lost: it forgets what the worker cached
    assert loads(client.done().result) == ([3, 4], {})
    assert exited(worker) == 0
    assert client.state.read()[2] == RETIRED


def test_a_worker_ends_when_its_client_goes(worker: PPWorker) -> None:
    client = Client(worker)
    client.run(1, abs, [-1])
    client.done()
    client.sock.close()
    assert exited(worker) == 0


def test_a_frame_over_the_servers_limit_or_not_the_clients_ends_the_connection(worker: PPWorker) -> None:
    client = Client(worker, frame_limit=1 << 16)
    client.run(1, bytes, [b"x" * (1 << 17)])
    exited(worker)
    assert client.state.read()[2] == CUT  # the server closes the connection, not hands it on


def test_a_forged_frame_ends_the_connection(worker: PPWorker) -> None:
    client = Client(worker)
    frame = bytearray(client.session.seal(wire.pack_ping()))
    frame[-1] ^= 1  # its tag no longer holds
    client.sock.sendall(frame)
    exited(worker)
    assert client.state.read()[2] == CUT


def test_a_tasks_stdin_reads_nothing(worker: PPWorker) -> None:
    client = Client(worker)
    client.run(1, lambda _: sys.stdin.read(), [None])
    assert loads(client.done().result) == ([""], {})


def test_the_stub_module_is_the_stub_the_server_sends() -> None:
    # A worker runs _stub.py's code for the stub instead of compiling its text: both
    # name run_counted, and nothing else, for ppft's loop.
    from manymap.pools.rpc import _inworker

    assert _inworker.STUB_CODE is not None
    sent: dict[str, object] = {}
    exec(compile(wire.STUB, "<stub>", "exec"), sent)
    ran: dict[str, object] = {}
    exec(_inworker.STUB_CODE, ran)
    for namespace in (sent, ran):
        assert sorted(name for name in namespace if name != "__builtins__") == [wire.STUB_NAME]
        assert namespace[wire.STUB_NAME] is _inworker.run_counted

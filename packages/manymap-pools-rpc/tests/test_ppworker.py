"""The server's ppft worker (``_inworker.py``) still speaks ppft's pipe protocol:
ppft's own transport, used as ppft's Server uses it, runs jobs on it; what the
server packs (``_wire.py``) is what ppft sends."""

from __future__ import annotations

import pickle
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ppft.transport
import pytest

from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._inworker import OneWritePipe
from manymap.pools.rpc._ppprocess import PPWorker

STUB = "def add(a, b):\n    print('adding', a, b)\n    return a + b\n"


@pytest.fixture
def worker() -> Iterator[tuple[subprocess.Popen[bytes], ppft.transport.CPipeTransport]]:
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "manymap.pools.rpc._inworker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    transport = ppft.transport.CPipeTransport(process.stdout, process.stdin)
    try:
        assert int(transport.receive()) == process.pid  # ppft's greeting
        transport.send(str(pickle.HIGHEST_PROTOCOL))
        yield process, transport
    finally:
        process.kill()
        process.wait(10)
        process.stdin.close()
        process.stdout.close()


def run(transport: ppft.transport.CPipeTransport, *args: object) -> tuple[object, str]:
    transport.csend(pickle.dumps(("add", [STUB], ())))  # the source once, its hash after
    transport.send(pickle.dumps(args, pickle.HIGHEST_PROTOCOL))
    result: tuple[object, str] = pickle.loads(transport.receive())
    return result


def _first_reply(worker: PPWorker) -> bytearray:
    """The first frame the ppft ``worker`` answers (30 s at most)."""
    frames: list[bytearray] = []
    with selectors.DefaultSelector() as selector:
        selector.register(worker.stdout, selectors.EVENT_READ)
        while not frames:
            assert selector.select(30.0), "no reply from the ppft worker"
            frames = worker.reader.pump()
    return frames[0]


def test_runs_ppft_jobs_with_their_output(
    worker: tuple[subprocess.Popen[bytes], ppft.transport.CPipeTransport],
) -> None:
    _, transport = worker
    assert run(transport, 2, 3) == (5, "adding 2 3\n")
    assert run(transport, b"a", b"b")[0] == b"ab"  # the stub now sent by hash only


def test_a_failing_job_is_reported_as_ppft_does_and_the_worker_goes_on(
    worker: tuple[subprocess.Popen[bytes], ppft.transport.CPipeTransport],
) -> None:
    _, transport = worker
    result, out = run(transport, 1, "x")
    assert result is None
    assert "TypeError" in out
    assert run(transport, 1, 1)[0] == 2


def test_the_servers_one_write_send_is_what_ppft_sends(
    worker: tuple[subprocess.Popen[bytes], ppft.transport.CPipeTransport],
) -> None:
    process, ppft_transport = worker
    assert process.stdin is not None
    assert process.stdout is not None
    ours = OneWritePipe(process.stdout, process.stdin)
    source = pickle.dumps(("add", [STUB], ()))
    stub = wire.StubCache(source)
    sent = []
    for first, second, total in ((2, 3, 5), (4, 5, 9)):
        sent.append(stub.next())
        ours.send(sent[-1], pickle.dumps((first, second), pickle.HIGHEST_PROTOCOL))
        assert pickle.loads(ours.receive())[0] == total
    # the source the first time, its hash after, as ppft's csend
    assert sent == [b"N" + source, b"H" + ppft_transport.hash(source).encode()]


def test_the_servers_worker_handle_speaks_ppfts_protocol() -> None:
    """PPWorker (the server's side) sends jobs as ppft's csend does: the stub's
    source the first time, its hash after; the replies are ppft's."""
    from manymap.serialize import dumps, loads

    worker = PPWorker().ready()
    try:
        function = dumps(abs)
        jobs = []
        for key, value in ((1, -3), (1, -4)):
            known = bool(jobs)
            body = b"" if known else function
            pieces = worker.job(b"".join(wire.pack_batch(key, False, body, dumps(({}, [value])))))
            jobs.append(b"".join(pieces))
            assert worker.write(pieces, 10.0)
            result, _ = worker.reply(_first_reply(worker))
            assert loads(result) == ([abs(value)], {})
        assert jobs[0][8:9] == b"N"
        assert jobs[1][8:9] == b"H"
    finally:
        worker.kill()


def test_a_large_batch_passes_the_workers_pipes_both_ways() -> None:
    """An 8 MB batch goes to the worker in pieces (uncopied) through pipes grown to
    PIPE_SIZE where the system allows, and its 8 MB outcome comes back as a view of
    the reply."""
    import fcntl

    from manymap.pools.rpc._ppprocess import PIPE_SIZE
    from manymap.serialize import dumps, loads

    worker = PPWorker().ready()
    try:
        allowed = Path("/proc/sys/fs/pipe-max-size")
        if hasattr(fcntl, "F_GETPIPE_SZ") and allowed.exists() and int(allowed.read_text()) >= PIPE_SIZE:
            assert fcntl.fcntl(worker.stdin, fcntl.F_GETPIPE_SZ) == PIPE_SIZE
            assert fcntl.fcntl(worker.stdout, fcntl.F_GETPIPE_SZ) == PIPE_SIZE
        data = bytes(range(256)) * (8 * 4096)
        batch = wire.pack_batch(1, False, dumps(bytes), dumps(({}, [data])))
        assert worker.write(worker.job(b"".join(batch)), 30.0)
        frame = _first_reply(worker)
        result, out = worker.reply(frame)
        assert isinstance(result, memoryview)
        assert result.obj is frame
        assert loads(result) == ([data], {})
        assert out == ""
    finally:
        worker.kill()


def test_the_stub_module_is_the_stub_the_server_sends() -> None:
    # A worker runs _stub.py's code for the stub instead of compiling the text it is sent.
    from manymap.pools.rpc import _inworker

    assert _inworker.STUB_CODE is not None
    sent: dict[str, object] = {}
    exec(compile(wire.STUB, "<stub>", "exec"), sent)
    ran: dict[str, object] = {}
    exec(_inworker.STUB_CODE, ran)
    assert sorted(name for name in ran if name != "__builtins__") == [wire.STUB_NAME]
    mine, theirs = ran[wire.STUB_NAME].__code__, sent[wire.STUB_NAME].__code__  # type: ignore[attr-defined]
    for part in ("co_code", "co_consts", "co_names", "co_varnames", "co_argcount"):
        assert getattr(mine, part) == getattr(theirs, part), part


def test_the_worker_takes_the_stubs_code_for_the_stubs_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from manymap.pools.rpc import _inworker

    monkeypatch.setattr(_inworker.ppft_worker, "pickle", _inworker.ENVELOPE)
    name, code = _inworker._preprocess(pickle.dumps((wire.STUB_NAME, [wire.STUB], ())))
    assert (name, code) == (wire.STUB_NAME, [_inworker.STUB_CODE])
    other = "def other(x):\n    return x\n"
    name, code = _inworker._preprocess(pickle.dumps(("other", [other], ())))
    assert name == "other"
    assert code[0].co_filename == "<string>"  # ppft's own preprocess compiled it

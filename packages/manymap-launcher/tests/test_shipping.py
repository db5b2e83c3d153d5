"""How a ``ManagedWorkerPool`` ships batches (``_send``, ``ManagedWorker.settle``), proven
with ``ShipPool``: worker threads at the far end of ``multiprocessing`` pipes, sent
pickled messages as ProcessPool's worker processes are, so that every message
really crosses a channel and is loaded on the other side.

Also the pieces the managed pools share outright: ``for_all``, ``exit_reason``,
``run_loaded``.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from manymap.launcher import SerializationError
from manymap.launcher._shipping import for_all
from manymap.launcher.lowlevel import (
    ManagedWorker,
    ManagedWorkerPool,
    TaskFailure,
    add_note,
    exit_reason,
    run_loaded,
)
from manymap.launcher.testing import eventually, hang_guard


class PickleCodec:
    """A ``BatchCodec`` over the stdlib pickle (module-level functions only)."""

    def __init__(self) -> None:
        self._keys: dict[bytes, int] = {}

    def function(self, function: Callable[..., Any]) -> bytes:
        return pickle.dumps(function)

    def key(self, payload: bytes) -> int:
        return self._keys.setdefault(payload, len(self._keys))

    def items(self, kwargs: Mapping[str, Any], items: Sequence[Any], first: int, star: bool) -> bytes:
        try:
            return pickle.dumps((dict(kwargs), list(items)))
        except Exception as error:
            raise SerializationError(f"cannot serialize the batch from task {first}: {error}") from error

    def must_send(self, known: set[int], key: int) -> bool:
        if key in known:
            return False
        known.add(key)
        return True


class _Thread(ManagedWorker):
    __slots__ = ("ours", "thread")

    def __init__(self, name: str, *, echo: bool) -> None:
        super().__init__(name)
        self.ours, theirs = multiprocessing.Pipe(duplex=True)
        self.thread = threading.Thread(target=_serve, args=(theirs, echo), name=name, daemon=True)
        self.thread.start()


def _serve(conn: Any, echo: bool) -> None:
    """A worker: load what comes, run it, send back the outcome (twice when ``echo``)."""
    functions: dict[int, Any] = {}
    try:
        while True:
            token, key, star, function, data = conn.recv()
            if function is not None:
                functions[key] = pickle.loads(function)
            missing = TaskFailure(RuntimeError(f"function {key} is not here"), "")
            outcome = run_loaded(functions.get(key, missing), lambda data=data: pickle.loads(data), star=star)
            for _ in range(2 if echo else 1):
                conn.send((token, pickle.dumps(outcome)))
    except (EOFError, OSError):
        pass  # the pool closed our pipe
    finally:
        conn.close()


class ShipPool(ManagedWorkerPool[_Thread]):
    """Thread workers sent pickled batches over pipes; ``echo``: each reply comes twice."""

    def __init__(self, nodes: int | None = None, *, echo: bool = False, **options: Any) -> None:
        super().__init__(nodes, **options)
        self._codec = PickleCodec()
        self._echo = echo
        self._workers: list[_Thread] = []
        self.functions_sent = 0

    def _start_workers(self) -> None:
        self._start_manager()

    def _staff(self) -> None:
        while len(self._workers) < self.nodes and not self._closing:
            worker = _Thread(f"ship-{len(self._workers) + 1}", echo=self._echo)
            self._workers.append(worker)
            self._add_channel(worker.ours, worker)

    def _ready_workers(self) -> list[_Thread]:
        return [worker for worker in self._workers if worker.batch is None]

    def _transmit(self, worker: _Thread, star: bool, key: int, function: bytes | None, data: Any) -> None:
        self.functions_sent += function is not None
        worker.ours.send((worker.token, key, star, function, data))

    def _handle(self, ready: list[Any]) -> None:
        for worker in ready:
            token, outcome = worker.ours.recv()
            worker.settle(token, lambda outcome=outcome: pickle.loads(outcome))

    def _stop_all(self) -> None:
        for worker in self._workers:
            self._remove_channel(worker.ours)
            worker.ours.close()
            worker.thread.join(10)
            if worker.batch is not None:
                worker.batch.lose("the pool was terminated")
        self._workers.clear()


def negate(x: int) -> int:
    return -x


def test_a_function_goes_to_each_worker_once() -> None:
    with hang_guard(), ShipPool(1) as pool:
        assert pool.map(abs, range(-5, 0), chunksize=1) == [5, 4, 3, 2, 1]
        assert pool.map(abs, range(-3, 0), chunksize=1) == [3, 2, 1]
        assert pool.functions_sent == 1
        assert pool.map(negate, range(3), chunksize=1) == [0, -1, -2]
        assert pool.functions_sent == 2


def test_a_reply_for_a_batch_already_settled_is_ignored() -> None:
    with hang_guard(), ShipPool(1, echo=True) as pool:  # every reply arrives twice
        assert pool.map(negate, range(20), chunksize=1) == [-x for x in range(20)]
        assert pool.map(negate, range(5), chunksize=2) == [-x for x in range(5)]


def _refuse_to_load() -> None:
    error = ValueError("this batch will not load here")
    add_note(error, "a note it had before it crossed")
    raise error


class FailsWhileUnpickling:
    def __reduce__(self) -> Any:
        return (_refuse_to_load, ())


def test_a_batch_that_will_not_load_fails_each_task_with_an_error_of_its_own() -> None:
    with hang_guard(), ShipPool(1) as pool:
        result = pool.amap(negate, [FailsWhileUnpickling()] * 3, chunksize=3)
        with pytest.raises(ValueError, match="will not load here") as caught:
            result.get(30)
        notes = [note for note in caught.value.__notes__ if note.startswith("manymap: task")]
        assert notes == ["manymap: task 0 failed on worker ship-1"]
        assert pool.map(negate, [1]) == [-1]


def test_what_cannot_be_encoded_fails_before_anything_is_sent() -> None:
    with hang_guard(), ShipPool(1) as pool:
        with pytest.raises(SerializationError, match="from task 0"):
            pool.map(negate, [threading.Lock()])
        assert pool.functions_sent == 0


def test_for_all_gives_every_task_an_error_and_notes_of_its_own() -> None:
    error = KeyError("k")
    add_note(error, "before")
    failures = for_all(TaskFailure(error, "tb"), 3)
    assert failures[0].error is error
    errors = [failures[offset].error for offset in range(3)]
    assert len({id(e) for e in errors}) == 3
    assert all(isinstance(e, KeyError) and e.args == ("k",) for e in errors)
    add_note(errors[1], "task 1 only")
    assert errors[0].__notes__ == ["before"]
    assert errors[2].__notes__ == ["before"]
    assert all(failures[offset].traceback == "tb" for offset in range(3))


class Uncopyable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("no copies")


def test_for_all_stands_in_for_an_error_that_cannot_be_copied() -> None:
    failures = for_all(TaskFailure(Uncopyable("original"), "tb"), 2)
    assert isinstance(failures[0].error, Uncopyable)
    stand_in = failures[1].error
    assert isinstance(stand_in, RuntimeError)
    assert str(stand_in) == "Uncopyable: original"


def test_exit_reason_says_how_a_worker_ended() -> None:
    assert exit_reason(None) == "did not exit"
    assert exit_reason(3) == "exited with code 3"
    assert exit_reason(-signal.SIGTERM) == "killed by SIGTERM"
    assert exit_reason(-signal.SIGKILL).startswith("killed by SIGKILL: from outside")
    assert exit_reason(-signal.SIGSEGV, "the ppft worker") == "the ppft worker was killed by SIGSEGV"
    assert exit_reason(7, "the ppft worker") == "the ppft worker exited with code 7"


def test_run_loaded_reports_what_would_not_load() -> None:
    assert run_loaded(negate, lambda: ({}, [1, 2]), star=False) == ([-1, -2], {})
    stand_in = TaskFailure(RuntimeError("the function would not load"), "")
    assert run_loaded(stand_in, lambda: ({}, [1]), star=False) == (None, {0: stand_in})

    def broken() -> tuple[dict[str, Any], list[Any]]:
        raise EOFError("cut short")

    values, failures = run_loaded(negate, broken, star=False)
    assert values is None
    assert isinstance(failures[0].error, EOFError)


_ran: list[str] = []  # what the worker threads ran, in order (ShipPool's workers share this process)
_gate = threading.Event()  # what the first task of a test waits for


def _run_gated(name: str, gated: bool) -> str:
    if gated:
        _gate.wait(30)
    _ran.append(name)
    return name


def test_a_blocked_call_waits_behind_the_batches_of_a_busy_pool() -> None:
    # With a worker ready, a blocked caller's call goes straight to it (no queue);
    # with every worker busy and batches queued, it must not overtake them.
    _ran.clear()
    _gate.clear()
    with hang_guard(), ShipPool(1) as pool:
        assert pool.pipe(_run_gated, "warm", False) == "warm"
        queued = pool.amap(_run_gated, ["a", "b", "c"], [True, False, False], chunksize=1)
        blocked: list[str] = []
        caller = threading.Thread(target=lambda: blocked.append(pool.pipe(_run_gated, "blocked", False)))
        caller.start()
        assert eventually(lambda: len(pool._scheduler.queue) == 2)  # the map's batches, then the call's
        _gate.set()
        caller.join(30)
        assert queued.get(30) == ["a", "b", "c"]
    assert blocked == ["blocked"]
    assert _ran == ["warm", "a", "b", "c", "blocked"]


def test_blocked_calls_from_many_threads_each_get_their_own_result() -> None:
    errors: list[BaseException] = []
    with hang_guard(), ShipPool(2) as pool:

        def call_many(seed: int) -> None:
            try:
                for i in range(100):
                    assert pool.pipe(negate, seed * 1000 + i) == -(seed * 1000 + i)
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=call_many, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        assert pool.stats().tasks == 400

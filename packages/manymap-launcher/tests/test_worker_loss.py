"""Lost workers, retries, poison and killed timeouts, with real processes.

``ForkPool`` runs every batch in a fresh forked child: a task that calls
``os._exit`` or is killed by a signal really takes its worker down, and the
launcher's bookkeeping has to turn that into ``WorkerLostError``, retries
and poison. It is the smallest core that can lose a worker; the real
process pools live in manymap-pools-local.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from manymap.launcher import AbstractWorkerPool, EventKind, TaskEvent, TaskTimeoutError, WorkerLostError
from manymap.launcher.lowlevel import Batch, run_calls
from manymap.launcher.testing import eventually, hang_guard, live_children

_fork = multiprocessing.get_context("fork")


def _child(out: Connection, batch_items: tuple[Any, ...]) -> None:
    function, items, star, kwargs = batch_items
    out.send(run_calls(function, items, star=star, kwargs=kwargs))


class ForkPool(AbstractWorkerPool):
    """Each batch runs in its own forked process; a dead child is a lost worker."""

    def _start_workers(self) -> None:
        self._children: dict[int, multiprocessing.process.BaseProcess] = {}
        self._threads = [threading.Thread(target=self._serve, daemon=True) for _ in range(self.nodes)]
        for thread in self._threads:
            thread.start()

    def _serve(self) -> None:
        while (batch := self._wait_batch()) is not None:
            reader, writer = _fork.Pipe(duplex=False)
            child = _fork.Process(
                target=_child, args=(writer, (batch.function, batch.items, batch.star, dict(batch.kwargs)))
            )
            child.start()
            writer.close()
            assert child.pid is not None
            self._children[id(batch)] = child
            batch.start(f"pid-{child.pid}")
            try:
                outcome = reader.recv() if reader.poll(60) else None
            except EOFError:
                outcome = None
            reader.close()
            child.join(60)
            del self._children[id(batch)]
            if outcome is None:
                code = _exit_code(child)
                reason = (
                    f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
                )
                batch.lose(reason, exitcode=code, culprit=getattr(self, "culprit", None))
            else:
                batch.finish(*outcome)

    def _stop_workers(self, *, kill: bool) -> None:
        if kill:
            for child in list(self._children.values()):
                child.kill()

    def _join_workers(self) -> None:
        for thread in self._threads:
            thread.join()

    def _resize(self, nodes: int) -> None:
        raise ValueError("ForkPool cannot be resized")

    def _timed_out(self, batch: Batch) -> None:
        child = self._children.get(id(batch))
        if child is not None:
            child.kill()


def _exit_code(child: multiprocessing.process.BaseProcess) -> int | None:
    """``child.exitcode`` once it is known. Another thread's ``Process.start()`` reaps
    the children that have exited (multiprocessing's ``_cleanup``); when it reaps this
    one while ``join`` waits, ``join`` finds no child left and the status lands on the
    process object a moment later, from that thread (CI saw ``None`` once)."""
    eventually(lambda: child.exitcode is not None, timeout=5.0, interval=0.001)
    return child.exitcode


def exit_on(x: int, bad: int) -> int:
    if x == bad:
        os._exit(7)
    return x * x


def kill_self_on(x: int, bad: int) -> int:
    if x == bad:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def die_once(marker: str) -> str:
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(3)
    return "survived"


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.fixture
def pool(request: pytest.FixtureRequest) -> Iterator[ForkPool]:
    with hang_guard(120, capture=request.config.pluginmanager.getplugin("capturemanager")):
        pool = ForkPool(2)
        try:
            yield pool
        finally:
            pool.terminate()
            pool.join()
            assert not live_children()


def test_exit_in_a_task_is_a_lost_worker(pool: ForkPool) -> None:
    with pytest.raises(WorkerLostError) as caught:
        pool.map(exit_on, range(6), [4] * 6, chunksize=1)
    error = caught.value
    assert (error.index, error.exitcode) == (4, 7)
    assert str(error).startswith("task 4: worker pid-")
    assert "was lost (exit code 7)" in str(error)
    assert pool.map(exit_on, range(4), [99] * 4) == [0, 1, 4, 9]
    assert pool.stats().workers_lost == 1


def test_sigkill_names_the_signal(pool: ForkPool) -> None:
    with pytest.raises(WorkerLostError, match=r"task 2: .* \(killed by SIGKILL\)") as caught:
        pool.map(kill_self_on, range(4), [2] * 4, chunksize=1)
    assert caught.value.exitcode == -signal.SIGKILL


def test_retry_reruns_a_lost_task(pool: ForkPool, tmp_path: Path) -> None:
    events: list[TaskEvent] = []
    marker = str(tmp_path / "died")
    assert pool.map(die_once, [marker], retries=1, progress=events.append) == ["survived"]
    kinds = [e.kind for e in events]
    assert kinds.count(EventKind.RETRIED) == 1
    assert kinds.count(EventKind.FINISHED) == 1
    retried = next(e for e in events if e.kind is EventKind.RETRIED)
    assert isinstance(retried.error, WorkerLostError)
    finished = next(e for e in events if e.kind is EventKind.FINISHED)
    assert finished.attempt == 1


def test_poison_task_is_not_retried_forever(pool: ForkPool) -> None:
    events: list[TaskEvent] = []
    with pytest.raises(WorkerLostError, match="has now killed 2 workers and is not retried again"):
        pool.map(exit_on, [5], [5], retries=10, progress=events.append)
    assert [e.kind for e in events].count(EventKind.RETRIED) == 1
    assert pool.stats().workers_lost == 2


def test_loss_in_a_chunk_reruns_the_innocent_tasks(pool: ForkPool) -> None:
    # Without knowing the culprit, every task of the chunk is charged once;
    # the innocent ones then succeed on their own, the poison one fails.
    with pytest.raises(WorkerLostError) as caught:
        pool.map(exit_on, range(4), [2] * 4, chunksize=4, retries=3)
    assert caught.value.index == 2
    assert pool.map(exit_on, range(4), [9] * 4, chunksize=4, retries=3) == [0, 1, 4, 9]


def test_known_culprit_spares_the_others(pool: ForkPool) -> None:
    pool.culprit = 1  # type: ignore[attr-defined]
    events: list[TaskEvent] = []
    with pytest.raises(WorkerLostError) as caught:
        pool.map(exit_on, range(3), [1] * 3, chunksize=3, retries=0, progress=events.append)
    assert caught.value.index == 1
    assert not [e for e in events if e.kind is EventKind.FAILED and e.index != 1]


def test_timeout_kills_the_worker(pool: ForkPool) -> None:
    started = time.monotonic()
    # Only the slow task is timed here: a quick task beside it could itself run
    # over on a loaded machine (each batch forks a process, whose start counts).
    with pytest.raises(TaskTimeoutError, match=r"task 0 ran over its timeout of 5 s") as caught:
        pool.map(nap, [30.0], timeout=5)
    assert caught.value.index == 0
    assert time.monotonic() - started < 20, "the killed worker should not run its 30 s task out"
    assert pool.map(nap, [0.0, 0.0], timeout=5) == [0.0, 0.0]


def test_timeout_with_retry_and_imap(pool: ForkPool) -> None:
    with pytest.raises(TaskTimeoutError):
        list(pool.imap(nap, [0.0, 30.0, 0.0], timeout=2, retries=1))
    assert pool.stats().lost >= 2  # the slow task, twice; a loaded machine may time out more

"""``EngineWorkerPool``, proven with the smallest real engine: ``ThreadEngine``.

The "engine" is a set of named worker threads, each taking engine tasks from
a queue of its own and reporting through the pool's inbox from its own
thread, as a cluster engine's callbacks do. A stopped worker leaves (its
tasks are lost) and a new one joins, as a restarted engine worker does. It
passes the whole conformance suite; the tests below cover what is the base's
own: batches in flight never exceed ``nodes`` or the threads known, and a
worker that leaves loses its batches.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any

import pytest

from manymap.launcher import WorkerLostError
from manymap.launcher.lowlevel import Batch, EngineOutcome, EngineWorker, EngineWorkerPool, run_calls
from manymap.launcher.testing import PoolConformance
from manymap.launcher.testing import _tasks as tasks

_STOP = object()


class ThreadEngine(EngineWorkerPool):
    """Engine workers that are threads; a stopped worker's task runs on, unheard."""

    def __init__(self, nodes: int | None = None, **options: Any) -> None:
        super().__init__(nodes, **options)
        self._queues: dict[str, queue.SimpleQueue[Any]] = {}
        self._serials = itertools.count(1)
        self.most_in_flight = 0
        self._running = 0
        self._count_lock = threading.Lock()

    def _spawn(self) -> EngineWorker:
        ident = f"thread-{next(self._serials)}"
        inbox, jobs = self._inbox, queue.SimpleQueue[Any]()
        self._queues[ident] = jobs
        threading.Thread(target=self._serve, args=(inbox, jobs), name=ident, daemon=True).start()
        return EngineWorker(ident, ident, "localhost", 1)

    def _serve(self, inbox: Any, jobs: queue.SimpleQueue[Any]) -> None:
        while True:
            work = jobs.get()
            if work is _STOP:
                return
            token, batch = work
            with self._count_lock:
                self._running += 1
                self.most_in_flight = max(self.most_in_flight, self._running)
            try:
                result = run_calls(batch.function, batch.items, star=batch.star, kwargs=batch.kwargs)
            finally:
                with self._count_lock:
                    self._running -= 1
            inbox.put("done", token, result)

    def _engine_open(self) -> list[EngineWorker]:
        self._queues = {}
        return [self._spawn() for _ in range(self.nodes)]

    def _engine_submit(self, worker: EngineWorker, token: int, batch: Batch, function: bool) -> None:
        self._queues[worker.ident].put((token, batch))

    def _engine_release(self, token: int) -> None:
        pass

    def _engine_stop_worker(self, worker: EngineWorker) -> None:
        jobs = self._queues.pop(worker.ident, None)
        if jobs is not None:
            jobs.put(_STOP)
        self._inbox.put("left", worker.ident, f"{worker.name} was stopped")
        self._inbox.put("joined", self._spawn())

    def _engine_scale(self, nodes: int) -> None:
        for _ in range(nodes - len(self._queues)):
            self._inbox.put("joined", self._spawn())

    def _engine_decode(self, result: Any) -> EngineOutcome:
        values, failures = result
        return EngineOutcome(values, failures)

    def _engine_close(self, *, kill: bool) -> None:
        for jobs in self._queues.values():
            jobs.put(_STOP)
        self._queues.clear()


class TestThreadEngine(PoolConformance):
    pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

    def make_pool(self, nodes: int = 2, **options: Any) -> ThreadEngine:
        return ThreadEngine(nodes, **options)


def test_batches_in_flight_never_exceed_nodes() -> None:
    with ThreadEngine(4) as pool:
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]  # four workers up
        pool.nodes = 2  # this engine does not shrink: two workers more than the cap stay idle
        assert len(pool._engine_workers) == 4
        assert pool.map(tasks.sleep_then, range(12), [0.02] * 12, chunksize=1) == list(range(12))
        assert pool.most_in_flight <= 2


def test_a_worker_that_leaves_loses_its_batch() -> None:
    with ThreadEngine(1) as pool:
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        handle = pool.apipe(tasks.sleep_then, 1, 30.0)
        worker = next(iter(pool._engine_workers.values()))
        pool._inbox.put("left", worker.ident, "it was unplugged")
        with pytest.raises(WorkerLostError, match="it was unplugged"):
            handle.get(30)
        pool.terminate()

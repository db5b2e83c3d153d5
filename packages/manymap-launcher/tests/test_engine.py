"""``EngineWorkerPool``, proven with the smallest real engine: ``ThreadEngine``.

The "engine" is a set of named worker threads, each taking engine tasks from
a queue of its own and reporting through the pool's inbox from its own
thread, as a cluster engine's callbacks do. A stopped worker leaves (its
tasks are lost) and a new one joins, as a restarted engine worker does. It
passes the whole conformance suite; the tests below cover what is the base's
own: batches in flight never exceed ``nodes`` or the threads known, and a
worker that leaves loses its batches. ``QueuingEngine`` is the same engine
with ``queue_ahead``: its workers take their tasks in order, as Dask's do.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any

import pytest

from manymap.launcher import EventKind, TaskEvent, WorkerLostError
from manymap.launcher.lowlevel import Batch, EngineOutcome, EngineWorker, EngineWorkerPool, run_calls
from manymap.launcher.testing import PoolConformance, eventually
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
        self.started: list[int] = []  # engine tasks, as their workers began them
        self.finished: set[int] = set()  # engine tasks whose function returned
        self.deliver = threading.Event()  # cleared: results are held, see release()
        self.deliver.set()
        self.held: list[tuple[Any, int, Any]] = []
        self.sizes: list[int] = []  # tasks per engine task, as submitted

    def release(self) -> None:
        """Deliver the results held since ``deliver`` was cleared, and the next ones."""
        with self._count_lock:
            self.deliver.set()
            held, self.held = self.held, []
        for inbox, token, result in held:
            inbox.put("done", token, result)

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
            self.started.append(token)
            try:
                result = run_calls(batch.function, batch.items, star=batch.star, kwargs=batch.kwargs)
            finally:
                with self._count_lock:
                    self._running -= 1
            with self._count_lock:
                self.finished.add(token)
                if not self.deliver.is_set():  # a result still on its way to the pool
                    self.held.append((inbox, token, result))
                    continue
            inbox.put("done", token, result)

    def _engine_open(self) -> list[EngineWorker]:
        self._queues = {}
        return [self._spawn() for _ in range(self.nodes)]

    def _engine_submit(self, worker: EngineWorker, token: int, batch: Batch, function: bool) -> None:
        self.sizes.append(len(batch))
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


class QueuingEngine(ThreadEngine):
    """``ThreadEngine`` whose busy workers hold the next batch of their map."""

    queue_ahead = True

    def _engine_in_order(self, token: int) -> bool:
        return True  # a worker thread takes its queue in order

    def _engine_finished(self, token: int) -> bool:
        return token in self.finished

    def kill(self, worker: EngineWorker) -> None:
        """What a dead worker did not start is gone with it; a new worker joins."""
        jobs = self._queues.pop(worker.ident)
        while not jobs.empty():
            jobs.get_nowait()
        jobs.put(_STOP)
        self._inbox.put("left", worker.ident, f"{worker.name} died")
        self._inbox.put("joined", self._spawn())


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


def test_automatic_batches_taper_so_that_the_workers_end_together() -> None:
    """The batches of an automatic map of known input shrink toward its end
    (``_batching.batch_sizes``), so no worker ends a whole batch after the
    other, unless its tasks are known to be cheap; a chosen chunksize and a
    timeout's one-task batches stay as asked."""
    with ThreadEngine(2) as pool:
        assert pool.map(tasks.square, range(64)) == [x * x for x in range(64)]
        assert pool.sizes == [8, 8, 8, 8, 8, 6, 5, 4, 3, 2, 2, 2]  # first call: the cost is unknown
        pool.sizes.clear()
        pool.map(tasks.square, range(64))  # known to be cheap: not tapered, they end soon anyway
        # Equal batches and what is left: as many as the measured cost fits in a batch's
        # time (a batch per worker on a quiet machine, smaller ones on a loaded one).
        *full, last = pool.sizes
        assert len(set(full)) <= 1, pool.sizes
        assert last <= pool.sizes[0], pool.sizes
        assert sum(pool.sizes) == 64, pool.sizes
        pool.sizes.clear()
        pool.map(tasks.square, range(64), chunksize=8)
        assert pool.sizes == [8] * 8
        pool.sizes.clear()
        pool.map(tasks.square, range(6), timeout=30)
        assert pool.sizes == [1] * 6


def test_a_worker_that_leaves_loses_its_batch() -> None:
    with ThreadEngine(1) as pool:
        assert pool.map(tasks.square, range(3)) == [0, 1, 4]
        handle = pool.apipe(tasks.sleep_then, 1, 30.0)
        worker = next(iter(pool._engine_workers.values()))
        pool._inbox.put("left", worker.ident, "it was unplugged")
        with pytest.raises(WorkerLostError, match="it was unplugged"):
            handle.get(30)
        pool.terminate()


class TestQueuingEngine(PoolConformance):
    pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

    def make_pool(self, nodes: int = 2, **options: Any) -> QueuingEngine:
        return QueuingEngine(nodes, **options)


def _starts(events: list[TaskEvent], index: int) -> int:
    return sum(event.kind is EventKind.STARTED and event.index == index for event in events)


def test_a_busy_worker_holds_one_batch_of_its_map_and_never_runs_more() -> None:
    def held() -> int:
        return sum(len(worker.queued) for worker in pool._engine_workers.values())

    def running() -> int:
        return sum(len(worker.running) for worker in pool._engine_workers.values())

    with QueuingEngine(2) as pool:
        assert pool.map(tasks.sleep_then, range(24), [0.01] * 24, chunksize=2) == list(range(24))
        assert pool.most_in_flight <= 2
        handle = pool.amap(tasks.sleep_then, range(16), [0.15] * 16, chunksize=2)
        assert eventually(lambda: held() == 2)
        assert all(len(worker.queued) <= 1 for worker in pool._engine_workers.values())
        assert handle.get(30) == list(range(16))
        # batches of one task are neither held nor held behind (see _engine.py)
        handle = pool.amap(tasks.sleep_then, range(8), [0.1] * 8, chunksize=1)
        assert eventually(lambda: running() == 2)
        assert held() == 0
        assert handle.get(30) == list(range(8))
        # a timeout counts a task's own run time: nothing is held behind it
        handle = pool.amap(tasks.sleep_then, range(12), [0.1] * 12, chunksize=2, timeout=20)
        assert eventually(lambda: running() == 2)
        assert held() == 0
        assert handle.get(30) == list(range(12))


def test_a_batch_held_by_a_worker_that_dies_goes_back_unrun_and_uncharged() -> None:
    events: list[TaskEvent] = []
    with QueuingEngine(1) as pool:
        assert pool.map(tasks.square, range(2)) == [0, 1]
        handle = pool.amap(
            tasks.sleep_then, range(8), [0, 30.0, 0, 0, 0, 0, 0, 0], chunksize=2, progress=events.append
        )
        worker = next(iter(pool._engine_workers.values()))
        assert eventually(lambda: len(worker.queued) == 1)  # tasks 0-1 run (1 sleeps), 2-3 held
        pool.kill(worker)
        assert eventually(lambda: _starts(events, 1) == 2)  # task 1 again, alone, on the new worker
        # 0-1 were lost: run again one by one, uncharged; 2-3 went back whole, unstarted
        assert not [event for event in events if event.kind in (EventKind.RETRIED, EventKind.FAILED)]
        assert (_starts(events, 0), _starts(events, 2), _starts(events, 3)) == (2, 0, 0)
        assert not handle.ready()
        pool.terminate()


def test_a_batch_held_behind_one_that_finished_counts_as_started() -> None:
    """The worker finished a batch, then died before the pool heard of it: the
    batch it held may have begun, so it is lost as a running one is (its tasks
    run again one by one, uncharged), and the finished one, whose result was
    lost with the worker, runs again uncharged."""
    events: list[TaskEvent] = []
    with QueuingEngine(1) as pool:
        assert pool.map(tasks.square, range(2)) == [0, 1]
        before = len(pool.started)
        pool.deliver.clear()
        handle = pool.amap(
            tasks.sleep_then, range(6), [0, 0, 30.0, 0, 0, 0], chunksize=2, progress=events.append
        )
        worker = next(iter(pool._engine_workers.values()))
        assert eventually(lambda: len(pool.started) == before + 2)  # tasks 0-1 finished, unheard; 2-3 began
        assert len(worker.queued) == 1
        pool.kill(worker)
        pool.release()  # (the old worker's result, delivered now, is of a batch settled)
        assert eventually(lambda: _starts(events, 2) == 2)  # counted as begun; then again, alone
        assert not [event for event in events if event.kind in (EventKind.RETRIED, EventKind.FAILED)]
        assert _starts(events, 0) == 2
        assert not handle.ready()
        pool.terminate()

"""``ManagedWorkerPool``, proven with the smallest real subclass: ``PairPool``,
whose workers are threads at the far end of socket pairs.

The manager thread waits on the pairs' near ends; a worker reads one byte
("run the batch you were given"), runs it and writes one byte back. It
passes the whole conformance suite, and the tests below cover what is the
base's own: callers dispatching from their own thread, stop requests, and a
manager that fails.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from typing import Any

import pytest

from manymap.launcher import PoolClosedError
from manymap.launcher.lowlevel import Batch, ManagedWorkerPool, run_calls
from manymap.launcher.testing import PoolConformance, eventually, hang_guard


class _Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ours, self.theirs = socket.socketpair()
        self.batch: Batch | None = None
        self.outcome: Any = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while self.theirs.recv(1):
                batch = self.batch
                assert batch is not None
                self.outcome = run_calls(batch.function, batch.items, star=batch.star, kwargs=batch.kwargs)
                self.theirs.send(b"d")
        except OSError:
            pass  # the pool closed our pair: a retired or stopped worker
        finally:
            self.theirs.close()


class PairPool(ManagedWorkerPool):
    """Worker threads behind socket pairs: a stopped worker's task runs on, unheard."""

    def __init__(self, nodes: int | None = None, **options: Any) -> None:
        super().__init__(nodes, **options)
        self._workers: list[_Worker] = []
        self._serials = itertools.count(1)
        self._stop: set[Batch] = set()  # batches past their timeout
        self.dispatchers: set[str] = set()  # threads that sent work
        self.fail_in_handle: BaseException | None = None

    def _start_workers(self) -> None:
        self._start_manager()

    def _staff(self) -> None:
        if self._killing or (self._closing and self._draining):
            return
        while len(self._workers) < self.nodes:
            worker = _Worker(f"pair-{next(self._serials)}")
            self._workers.append(worker)
            self._add_channel(worker.ours, worker)
        for worker in self._workers[self.nodes :]:
            if worker.batch is None:
                self._retire(worker)

    def _dispatch(self) -> None:
        for worker in self._workers:
            if worker.batch is None:
                batch = self._take_batch()
                if batch is None:
                    return
                self.dispatchers.add(threading.current_thread().name)
                worker.batch = batch
                batch.start(worker.name)
                worker.ours.send(b"r")

    def _handle(self, ready: list[Any]) -> None:
        if self.fail_in_handle is not None:
            raise self.fail_in_handle
        for worker in ready:
            if worker in self._workers and worker.ours.recv(1):
                batch, worker.batch = worker.batch, None
                assert batch is not None
                values, failures = worker.outcome
                batch.finish(values, failures)
        doomed = self._doomed_jobs()
        for worker in list(self._workers):
            batch = worker.batch
            if batch is not None and (batch in self._stop or batch.job in doomed):
                self._retire(worker)
                batch.lose("its worker was stopped")
        self._stop.clear()

    def _timed_out(self, batch: Batch) -> None:
        self._stop.add(batch)
        self._wake_manager()

    def _retire(self, worker: _Worker) -> None:
        self._workers.remove(worker)
        self._remove_channel(worker.ours)
        worker.ours.close()

    def _stop_all(self) -> None:
        for worker in list(self._workers):
            self._retire(worker)
            if worker.batch is not None:
                worker.batch.lose("the pool was terminated")


class TestPairPool(PoolConformance):
    slow_task = 1.5

    def make_pool(self, nodes: int = 2, **options: Any) -> PairPool:
        return PairPool(nodes, **options)


def test_an_idle_pool_is_fed_from_the_callers_thread() -> None:
    caller = threading.current_thread().name
    with PairPool(2) as pool:
        pool.map(abs, range(4))  # the first round: the manager starts the workers
        # A call finds the manager busy now and then (it rings it then): most do not.
        for _ in range(200):
            assert pool.pipe(abs, -3) == 3
            if caller in pool.dispatchers:
                break
    assert caller in pool.dispatchers


def test_an_interrupted_job_has_its_running_tasks_stopped() -> None:
    started, release = threading.Event(), threading.Event()
    with hang_guard(), PairPool(1) as pool:
        try:
            result = pool.apipe(lambda: (started.set(), release.wait(60)))
            assert started.wait(10)
            job = result._job
            assert job is not None
            job.cancel()
            pool._interrupted(job)
            assert eventually(lambda: job.complete)  # only if its running task was stopped
            assert pool.pipe(abs, -1) == 1  # on a new worker
        finally:
            release.set()


def test_a_failing_manager_fails_the_work_and_breaks_the_pool() -> None:
    with hang_guard():
        pool = PairPool(2)
        try:
            pool.map(abs, range(4))
            pool.fail_in_handle = RuntimeError("a bug in the manager")
            with pytest.raises(RuntimeError, match="a bug in the manager") as caught:
                pool.map(time.sleep, [0.01] * 4)
            assert "manymap: the PairPool manager thread failed" in caught.value.__notes__
            with pytest.raises(PoolClosedError, match="broken"):
                pool.map(abs, range(4))
        finally:
            pool.terminate()
            pool.join()

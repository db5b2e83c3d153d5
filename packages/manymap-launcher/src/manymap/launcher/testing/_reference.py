"""``ReferencePool``: the smallest pool that passes the conformance suite.

It is a plain thread pool written only against the scheduling-core hooks of
:class:`~manymap.launcher.AbstractWorkerPool`, so it shows what a concrete
pool has to supply, and it proves the suite itself. It is not meant for
production use: ``manymap.pools.local.ThreadPool`` is.
"""

from __future__ import annotations

import threading

from manymap.launcher._job import Batch
from manymap.launcher._pool import AbstractWorkerPool
from manymap.launcher._task import run_calls

__all__ = ["ReferencePool"]


class ReferencePool(AbstractWorkerPool):
    """A minimal thread pool over the launcher's scheduling core.

    Timeouts are reported but cannot stop a thread: the thread running a
    task that timed out is replaced, finishes the task in the background,
    and then exits; its late result is ignored.
    """

    node_aliases = ("nthreads",)

    def _start_workers(self) -> None:
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._retire = 0  # workers to let go (a shrink)
        self._condemned: set[str] = set()  # workers replaced after a timeout
        self._serial = 0
        for _ in range(self.nodes):
            self._spawn()

    def _spawn(self) -> None:
        with self._threads_lock:
            self._serial += 1
            thread = threading.Thread(
                target=self._serve, name=f"reference-{id(self):x}-{self._serial}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        name = threading.current_thread().name
        while not self._leaving(name):
            batch = self._wait_batch()
            if batch is None:
                return
            batch.start(name)
            values, failures = run_calls(batch.function, batch.items, star=batch.star, kwargs=batch.kwargs)
            batch.finish(values, failures)

    def _leaving(self, name: str) -> bool:
        with self._threads_lock:
            if name in self._condemned:
                self._condemned.discard(name)
                return True
            if self._retire:
                self._retire -= 1
                return True
            return False

    def _stop_workers(self, *, kill: bool) -> None:
        # Threads see the pool's state in _wait_batch; a running task cannot be stopped.
        pass

    def _join_workers(self) -> None:
        while True:
            with self._threads_lock:
                alive = [thread for thread in self._threads if thread.is_alive()]
                self._threads = alive
            if not alive:
                return
            for thread in alive:
                thread.join()

    def _resize(self, nodes: int) -> None:
        grow = nodes - self.nodes
        if grow < 0:
            with self._threads_lock:
                self._retire += -grow
        for _ in range(grow):
            self._spawn()

    def _timed_out(self, batch: Batch) -> None:
        with self._threads_lock:
            if batch.worker is not None:
                self._condemned.add(batch.worker)
        self._spawn()

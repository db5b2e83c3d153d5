"""``ThreadWorkerPool``: a pool whose workers are threads of this process.

The simplest scheduling core: each worker thread blocks in
:meth:`~manymap.launcher.AbstractWorkerPool._wait_batch`, runs the batch with
:func:`~manymap.launcher.run_calls` and reports it. ``manymap.pools.local``'s
``ThreadPool`` is this core; the conformance suite's ``ReferencePool`` too.

Threads cannot be killed: a task over its timeout is reported as failed at
once, its thread is replaced, finishes the task in the background (its late
result is ignored) and then exits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from manymap.launcher._errors import add_note
from manymap.launcher._job import Batch
from manymap.launcher._pool import AbstractWorkerPool, NodesAlias
from manymap.launcher._task import run_calls

__all__ = ["ThreadWorkerPool"]


class ThreadWorkerPool(AbstractWorkerPool):
    """A pool of worker threads.

    Args:
        nodes: number of threads (default: the number of cores); alias ``nthreads``.
        initializer: called as ``initializer(*initargs)`` in each new thread
            before it takes work. If it raises, the pool is broken: its work
            fails with that exception and it accepts no more.
        initargs: arguments of ``initializer``.
        **options: the pool's default task options (see
            :class:`~manymap.launcher.AbstractWorkerPool`).
    """

    node_aliases: ClassVar[tuple[str, ...]] = ("nthreads",)
    nthreads = NodesAlias()

    def __init__(
        self,
        nodes: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: Sequence[Any] = (),
        **options: Any,
    ) -> None:
        super().__init__(nodes, **options)
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, got {initializer!r}")
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self._retire = 0  # threads to let go after a shrink
        self._condemned: set[str] = set()  # threads replaced after a timeout
        self._serial = 0

    def _start_workers(self) -> None:
        for _ in range(self.nodes):
            self._spawn()

    def _spawn(self) -> None:
        with self._threads_lock:
            self._serial += 1
            thread = threading.Thread(
                target=self._serve, name=f"{type(self).__name__}-{id(self):x}-{self._serial}", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        name = threading.current_thread().name
        if self._initializer is not None:
            try:
                self._initializer(*self._initargs)
            except BaseException as error:  # a broken initializer breaks the pool, not the thread
                add_note(error, f"manymap: the initializer of worker {name} failed")
                self._break(error)
                return
        while not self._leaving(name):
            batch = self._wait_batch()
            if batch is None:
                return
            batch.start(name)
            values, failures = run_calls(batch.function, batch.items, star=batch.star, kwargs=batch.kwargs)
            batch.finish(values, failures)
            del batch, values, failures  # keep no task, function or result alive while idle

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

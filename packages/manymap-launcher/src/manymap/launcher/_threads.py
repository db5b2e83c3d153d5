"""``ThreadWorkerPool``: a pool whose workers are threads of this process.

The simplest scheduling core: each worker thread takes a batch from the
pool, runs it with :func:`~manymap.launcher.lowlevel.run_calls` and reports it.
``manymap.pools.local``'s ``ThreadPool`` is this core; the conformance
suite's ``ReferencePool`` too.

Threads cannot be killed. A task over its timeout is reported as failed at
once and its thread is *abandoned*: replaced by a fresh one, never given
work again, never waited for by ``join`` (which warns that it leaves it
running), and a daemon, so that the interpreter's exit does not wait for it
either. It finishes its task in the background (the late result is
ignored) and then exits.

The threads hold the pool only by a weak reference while they wait for
work, and wait on a bell of their own rather than on the pool's lock: a
pool that is dropped without ``close()`` is garbage-collected, and its idle
threads notice and exit.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence

from manymap.launcher._batch import Batch
from manymap.launcher._errors import add_note
from manymap.launcher._nodes import NodesAlias
from manymap.launcher._pool import AbstractWorkerPool
from manymap.launcher._task import run_calls
from manymap.launcher._warnings import warn_user

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, ClassVar

__all__ = ["ThreadWorkerPool"]

_SLICE = 1.0  # seconds; an idle thread re-checks that its pool still exists at least this often


class _Bell:
    """Wakes idle threads: a counter that :meth:`ring` bumps and :meth:`wait` watches."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self.rings = 0

    def ring(self) -> None:
        with self._cond:
            self.rings += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> None:
        """Wait until rung after ``seen`` was read, or ``timeout`` seconds."""
        with self._cond:
            if self.rings == seen:
                self._cond.wait(timeout)


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

    A task that runs past its ``timeout`` fails with
    :class:`~manymap.launcher.TaskTimeoutError` at once; its thread cannot be
    stopped, so the pool abandons it (see the module's notes) and ``join``
    warns with a :class:`RuntimeWarning` instead of waiting for it.
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
        self._bell = _Bell()
        self._retire = 0  # threads to let go after a shrink
        self._running: dict[str, Batch] = {}  # thread name -> the batch it runs
        self._abandoned: dict[str, str] = {}  # threads never joined: name -> why
        self._serial = 0

    def _start_workers(self) -> None:
        for _ in range(self.nodes):
            self._spawn()

    def _spawn(self) -> None:
        with self._threads_lock:
            self._serial += 1
            thread = threading.Thread(
                target=_serve,
                args=(weakref.ref(self), self._bell),
                name=f"{type(self).__name__}-{id(self):x}-{self._serial}",
                daemon=True,  # an abandoned thread must not hold up the interpreter's exit
            )
            self._threads.append(thread)
        thread.start()

    def _initialize(self, name: str) -> bool:
        """Run the initializer in this new thread; False if it failed (the pool broke)."""
        if self._initializer is None:
            return True
        try:
            self._initializer(*self._initargs)
        except BaseException as error:  # a broken initializer breaks the pool, not the thread
            add_note(error, f"manymap: the initializer of worker {name} failed")
            self._break(error)
            return False
        return True

    def _poll(self, name: str) -> Batch | bool:
        """The next batch for thread ``name``, or whether it should wait (``True``) or exit."""
        with self._threads_lock:
            if self._abandoned.pop(name, None) is not None:
                return False
            if self._retire:
                self._retire -= 1
                return False
        with self._lock:
            if self._lifecycle.terminated:
                return False
            batch = self._scheduler.take()
            if batch is not None:
                with self._threads_lock:
                    self._running[name] = batch
                return batch
            return not (self._lifecycle.closed and self._draining)

    def _run(self, name: str, batch: Batch) -> None:
        try:
            batch.start(name)
            values, failures = run_calls(batch.function, batch.items, star=batch.star, kwargs=batch.kwargs)
            batch.finish(values, failures)
        finally:
            with self._threads_lock:
                self._running.pop(name, None)
            if not self._lifecycle.running:
                self._bell.ring()  # the pool may be draining: idle threads re-check

    def _wake(self) -> None:
        self._bell.ring()

    def _stop_workers(self, *, kill: bool) -> None:
        # Threads see the pool's state when they look for work; a running task
        # cannot be stopped, so terminate() abandons the threads that run one.
        if kill:
            with self._threads_lock:
                for name in self._running:
                    self._abandoned.setdefault(name, "a task of the terminated pool")
        self._bell.ring()

    def _join_workers(self) -> None:
        left: dict[str, str] = {}
        while True:
            with self._threads_lock:
                alive = [thread for thread in self._threads if thread.is_alive()]
                waiting = [thread for thread in alive if thread.name not in self._abandoned]
                left.update((t.name, self._abandoned[t.name]) for t in alive if t not in waiting)
                self._threads = waiting
            if not waiting:
                break
            for thread in waiting:
                thread.join(_SLICE)  # in slices: a thread may be abandoned meanwhile
        if left:
            why, many = sorted(set(left.values())), len(left) > 1
            warn_user(
                f"{type(self).__name__} left {len(left)} thread{'s' if many else ''} running "
                f"({', '.join(why)}): a thread cannot be killed, so the pool does not wait for "
                f"{'them' if many else 'it'}; {', '.join(sorted(left))} exit{'' if many else 's'} "
                "once the task returns",
            )

    def _resize(self, nodes: int) -> None:
        grow = nodes - self.nodes
        if grow < 0:
            with self._threads_lock:
                self._retire += -grow
            self._bell.ring()
        for _ in range(grow):
            self._spawn()

    def _timed_out(self, batch: Batch) -> None:
        with self._threads_lock:
            worker = batch.worker
            if worker is None or self._running.get(worker) is not batch:
                return  # already back (its result came in as the clock ran out)
            self._abandoned[worker] = "a task that timed out"
        if not self._lifecycle.terminated:
            self._spawn()


def _serve(reference: weakref.ref[ThreadWorkerPool], bell: _Bell) -> None:
    """A worker thread: take batches while the pool exists and wants them.

    It holds the pool strongly only while it looks for work or runs a batch,
    never while it waits, so that a dropped pool can be collected.
    """
    name = threading.current_thread().name
    pool = reference()
    if pool is None or not pool._initialize(name):
        return
    del pool
    while True:
        seen = bell.rings
        pool = reference()
        if pool is None:
            return
        work = pool._poll(name)
        if isinstance(work, Batch):
            pool._run(name, work)
            del pool, work
            continue
        del pool
        if not work:
            return
        bell.wait(seen, _SLICE)

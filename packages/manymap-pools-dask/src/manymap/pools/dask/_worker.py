"""What runs inside a Dask worker: one engine task per batch, and a probe.

Dask pickles these functions by reference (this module must be importable on
the workers) and their arguments, which are only bytes and small built-in
values: the task function and its data always travel as manymap.serialize
payloads, never through Dask's own pickling, so lambdas, closures and
``__main__`` code behave as on every other pool and the format version is
checked on arrival.

:func:`run_batch` loads the function once per worker and pool (a worker is
shared by pools and clients, so the cache is keyed by the pool's id), runs
the batch with :func:`manymap.launcher.run_calls` and returns the outcome as
a payload, which it first hands to the pool through the scheduler when it is
small (:func:`_hand_over`). A worker that does not hold the function (it was
restarted, or evicted it) answers :data:`MISSING` and the pool sends it again.

:class:`OwnedWorker` is the worker plugin of an embedded cluster: each
worker leads a process group holding what its tasks start, and dies with that
group when the process that owns the pool dies.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from manymap.launcher import SerializationError
from manymap.launcher.lowlevel import TaskFailure, run_calls
from manymap.serialize import dumps, loads, make_shippable

__all__ = ["HANDED_OVER", "MISSING", "OwnedWorker", "identify", "kill_worker", "run_batch", "shared"]

#: The answer of a worker that does not hold the function of a batch.
MISSING = "missing-function"
_CACHE = 256  # functions a worker keeps, over every pool that uses it
_functions: OrderedDict[tuple[str, int], Callable[..., Any] | TaskFailure] = OrderedDict()
_lock = threading.Lock()
_HAND_OVER_WAIT = 10.0  # seconds a batch waits for the scheduler to take its result
#: The scheduler's event topic on which a batch hands over its small outcome
#: (one topic for every pool: the scheduler keeps only its last 1,000 events,
#: see :func:`_hand_over`).
HANDED_OVER = "manymap-handed-over"
HAND_OVER_MAX = 8192  # bytes of payload: a larger result waits to be fetched instead
_HANDED_KEPT = 1024  # keys of results this worker handed over, the newest
_handed: OrderedDict[Any, None] = OrderedDict()  # (Dask keys)
_RELEASE_WAIT = 30.0  # seconds a held batch waits for a large result before it to be fetched


def run_batch(
    pool: str,
    key: int,
    function: bytes | None,
    data: bytes,
    star: bool,
    buffers: list[bytes] | None = None,
    behind: tuple[str, ...] = (),
) -> tuple[Any, ...]:
    """Run one batch on this worker.

    ``function`` and each of ``buffers`` (the batch's out-of-band buffers, in
    order) may have come as a shared payload: Dask hands over its bytes.
    ``behind``: the worker held this batch behind the engine tasks of these
    keys (``queue_ahead``); it first makes sure that what they finished
    cannot be lost with this worker (:func:`_secure`). A small outcome is
    handed over to the pool before it is returned (:func:`_hand_over`).

    Returns ``("done", payload, duration, pid)`` where ``payload`` holds
    ``(values, failures)`` (``values`` is ``None`` when the batch could not be
    loaded; then ``failures[0]`` says why), or ``(MISSING,)``.
    """
    if behind:
        _secure(pool, behind)
    loaded = _function(pool, key, function)
    if loaded is None:
        return _hand_over(pool, (MISSING,))
    started = time.perf_counter()
    values: list[Any] | None
    if isinstance(loaded, TaskFailure):
        values, failures = None, {0: loaded}
    else:
        try:
            # a copy of each shared buffer: the batch's own, writable, as in band
            kwargs, items = loads(data, buffers=[bytearray(buffer) for buffer in buffers or ()])
        except Exception as error:
            values, failures = None, {0: TaskFailure.capture(error)}
        else:
            values, failures = run_calls(loaded, items, star=star, kwargs=kwargs)
    duration = time.perf_counter() - started
    try:
        payload = dumps((values, failures), name="the results")
    except SerializationError:
        make_shippable(values, failures)
        payload = dumps((values, failures), name="the results")
    _flush()
    return _hand_over(pool, ("done", payload, duration, os.getpid()))


def _function(pool: str, key: int, function: bytes | None) -> Callable[..., Any] | TaskFailure | None:
    with _lock:
        if function is None:
            found = _functions.get((pool, key))
            if found is not None:
                _functions.move_to_end((pool, key))
            return found
    try:
        loaded: Callable[..., Any] | TaskFailure = loads(function)
    except Exception as error:  # reported with the tasks that need it
        loaded = TaskFailure.capture(error)
    with _lock:
        _functions[(pool, key)] = loaded
        while len(_functions) > _CACHE:
            _functions.popitem(last=False)
    return loaded


def shared(data: bytes) -> bytes:
    """A shared payload's Dask task: its bytes, kept on the worker for the batches
    that need them (see ``_shared.py``)."""
    return data


def identify() -> tuple[int, str, int]:
    """This worker's pid, host name and number of threads."""
    threads = 1
    with contextlib.suppress(Exception):
        from distributed import get_worker

        threads = get_worker().state.nthreads
    return os.getpid(), socket.gethostname(), threads


def kill_worker(dask_worker: Any) -> int:
    """Run on a worker's nanny (``client.run(..., nanny=True)``): SIGKILL its worker
    process, which the nanny then replaces (it restarts a worker that exits
    unexpectedly). Returns the pid killed."""
    pid: int = dask_worker.pid
    os.kill(pid, signal.SIGKILL)
    return pid


def _hand_over(pool: str, result: tuple[Any, ...]) -> tuple[Any, ...]:
    """Give the outcome ``result`` of the running batch to the pool now, if it is
    small (at most :data:`HAND_OVER_MAX` bytes of payload); returns it.

    Dask keeps a task's result on its worker until the client fetches it:
    the client hears that the task ended, asks the scheduler where the
    result is and fetches it from the worker, a few round trips. And a
    worker that dies meanwhile (killed by the batch it held next) takes the
    result with it. So a small result goes to the scheduler as an event of
    the topic :data:`HANDED_OVER`, which the pool reads as the batch's
    outcome and does not fetch. It goes by the scheduler's ``log_event``
    call, whose answer says that the scheduler has queued the event for the
    pool's client, ahead of the end of this task and of any news of this
    worker's loss, on the same connection. (Not by the worker's stream of
    reports: the nanny can report the worker's death on a connection of its
    own while the stream's last bytes are unread.) If the call fails, or
    gets no answer within ``_HAND_OVER_WAIT``, the result is fetched as usual.
    """
    if _payload_size(result) > HAND_OVER_MAX:
        return result
    with contextlib.suppress(Exception):
        from distributed import get_worker
        from distributed.utils import sync

        worker = get_worker()
        key = worker.get_current_task()  # (in the task's thread: the loop's has no task)
        sync(worker.loop, _give, worker, pool, key, result, callback_timeout=_HAND_OVER_WAIT)
    return result


def _secure(pool: str, behind: tuple[str, ...]) -> None:
    """Before a held batch runs: make sure that the results of the batches it was
    held behind cannot be lost with this worker, so that this batch, if it
    kills the worker, takes only itself. A small one was handed over as its
    batch ended (:func:`_hand_over`), or is handed over now if that failed;
    a larger one is waited for until the client has fetched it and let it go
    (at most ``_RELEASE_WAIT`` seconds). A batch still running (a worker of
    several threads) has no result yet: it is lost with the worker as any
    running batch is.
    """
    with _lock:
        behind = tuple(key for key in behind if key not in _handed)
    if not behind:
        return
    try:
        from distributed import get_worker
        from distributed.utils import sync

        worker = get_worker()
        large: list[str] = sync(
            worker.loop, _give_scheduler, worker, pool, behind, callback_timeout=_HAND_OVER_WAIT
        )
    except Exception:
        return
    for key in large:
        _released(worker, key)


async def _give_scheduler(worker: Any, pool: str, behind: tuple[str, ...]) -> list[str]:
    """On the worker's loop (which owns its data): hand the small results of
    ``behind`` to the scheduler; the keys of the large ones."""
    large = []
    for key in behind:
        task = worker.state.tasks.get(key)
        if task is None or task.state != "memory":
            continue  # still running, or fetched and let go already
        if not await _give(worker, pool, key, worker.data[key]):
            large.append(key)
    return large


async def _give(worker: Any, pool: str, key: Any, result: Any) -> bool:
    """On the worker's loop: give the result ``key`` to the scheduler as an event
    of :data:`HANDED_OVER` and remember it, if it is small; whether it was."""
    if _payload_size(result) > HAND_OVER_MAX:
        return False
    await worker.scheduler.log_event(topic=HANDED_OVER, msg=(pool, key, result))
    with _lock:
        _handed[key] = None
        while len(_handed) > _HANDED_KEPT:
            _handed.popitem(last=False)
    return True


def _payload_size(result: Any) -> float:
    """Bytes of payload in a :func:`run_batch` result (anything else: infinite)."""
    if not isinstance(result, tuple):
        return float("inf")
    return sum(len(part) for part in result if isinstance(part, bytes))


def _released(worker: Any, key: str) -> None:
    """Wait until the worker no longer holds the result ``key`` (the client has it),
    this task was cancelled, or ``_RELEASE_WAIT`` seconds passed."""
    own = worker.state.tasks.get(worker.get_current_task())
    deadline = time.monotonic() + _RELEASE_WAIT
    while time.monotonic() < deadline:
        task = worker.state.tasks.get(key)
        if task is None or task.state != "memory" or (own is not None and own.state != "executing"):
            return
        time.sleep(0.002)


def _flush() -> None:
    # A task's prints reach the worker's output before its result is reported.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


class OwnedWorker(WorkerPlugin):
    """Worker plugin of an embedded cluster.

    On each worker it makes the worker lead a process group, so that killing
    the group takes what its tasks started, and forks a reaper: a small
    process of that group that waits on pidfds of the worker and of the
    pool's owning process ``owner`` (which nothing else can hold open) and
    kills the group as soon as either is gone, however it died. (Dask's
    worker leaves at once when its nanny goes, without running plugin
    teardowns, so the worker cannot do this itself.)
    """

    name = "manymap-owned-worker"
    idempotent = True

    def __init__(self, owner: int) -> None:
        self.owner = owner

    def setup(self, worker: Any) -> None:
        """Called by Dask in each worker process as it starts."""
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        try:
            watched = [os.pidfd_open(self.owner), os.pidfd_open(os.getpid())]
        except OSError:  # the owner is already gone
            _kill_group()
            return
        try:
            if os.fork() == 0:
                _reap(watched)
        finally:
            for fd in watched:
                os.close(fd)


def _reap(watched: list[int]) -> None:
    """The reaper process: wait for the owner or the worker to die, then kill the group."""
    try:
        os.closerange(3, min(watched))
        os.closerange(min(watched) + 1, max(watched))
        os.closerange(max(watched) + 1, 65536)
        with selectors.DefaultSelector() as selector:
            for fd in watched:
                selector.register(fd, selectors.EVENT_READ)
            while not selector.select(60.0):
                pass
        _kill_group()
    finally:
        os._exit(0)


def _kill_group() -> None:
    with contextlib.suppress(OSError):
        os.killpg(os.getpgid(0), signal.SIGKILL)

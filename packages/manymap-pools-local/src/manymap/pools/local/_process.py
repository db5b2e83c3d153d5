"""``ProcessPool``: worker processes that cannot hang the caller.

How it works. One manager thread per pool owns every worker process
(:class:`manymap.launcher.lowlevel.ManagedWorkerPool`). Each worker has its own duplex
pipe and a death signal: a pidfd of the worker (``_procs.py``), which no
process the worker's tasks start can hold open, or the ``multiprocessing``
sentinel where there is no pidfd or the forkserver reports the death. The
manager waits on all of them at once,
plus a doorbell that other threads ring when work is queued, a task must be
stopped, or the pool resizes or closes:

- a worker with an initializer, or one not forked, says it is ready once
  it has started and run its initializer (so a task's timeout never counts
  its start-up, seconds for a spawned interpreter on a loaded machine); a
  forked worker without one is ready as it is forked: its first batch waits
  in its pipe while it starts (milliseconds), as the stdlib Pool's tasks
  wait in its queue;
- an idle, ready worker gets the next batch from the launcher's queue, as
  every managed pool sends it (``ManagedWorkerPool._send``): the function
  once per worker (cached there), then the batch's items, encoded in the
  caller's thread so that what cannot be serialized fails before anything
  is queued. This pool's part (:meth:`ProcessPool._transmit`) is the pipe:
  a message per frame (``_wire.py``), large buffers through shared memory
  (``_shm.py``);
- a result frame settles the batch (``ManagedWorker.settle``);
- a death signal (or a closed pipe) means the worker died: its process
  group is killed (what its tasks started), its batch is lost
  (``Batch.lose``) naming the exit code or signal and the shared-memory
  files the batch left are unlinked; the launcher retries or fails a batch
  of one task, and re-runs a larger one task by task so that the next death
  names its task; the manager starts a replacement at once.

Timeouts (the launcher's watchdog) and Ctrl-C kill the worker running the
task with its descendants and its process group; the manager then sees it
die like any other.

Workers are not daemonic, so a task may start its own ``ProcessPool``
(pathos refuses: "daemonic processes are not allowed to have children").
A pool created inside a worker defaults to the worker's share of the cores
(cores // nodes of the outer pool), so a default nested pool runs at most
``nodes * (1 + cores // nodes)`` processes. A top-level worker leads a
process group that holds what its tasks start, nested pools' workers
included. At interpreter exit the pool is terminated; if the owner is
killed, each worker's watcher thread kills the worker and its group.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import multiprocessing
import os
import time
import weakref
from collections.abc import Callable, Sequence

from manymap.launcher.lowlevel import (
    Batch,
    ManagedWorker,
    ManagedWorkerPool,
    NodesAlias,
    TaskFailure,
    add_note,
    exit_reason,
)
from manymap.pools.local import _deferred, _nesting, _procs, _shm, _wire
from manymap.serialize import PoolCodec, dumps, loads

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.launcher.lowlevel import Job

__all__ = ["CONTEXTS", "ProcessPool"]

#: The process start methods a ProcessPool accepts.
CONTEXTS = ("fork", "spawn", "forkserver")

_JOIN = 5.0  # seconds a stopping worker gets before it is killed
_START_FAILURES = 3  # workers per node that may die before doing any work
_EXIT_SLICE = 0.05  # seconds between looks at a dying worker's exit status
_pool_serials = itertools.count(1)
_started_pools: weakref.WeakSet[ProcessPool] = weakref.WeakSet()  # those terminated at exit by _exit_hook
# A forked child (ours, multiprocessing's, a task's os.fork) owns none of its parent's pools:
# its exit must not touch their copies (the doorbell it would ring is the parent's).
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_started_pools.clear)


class _Worker(ManagedWorker):
    """The manager's record of one worker process: its pipe, its pidfd, its state."""

    __slots__ = (
        "conn",
        "did_work",
        "gone",
        "leader",
        "names",
        "pidfd",
        "prefix",
        "process",
        "ready",
        "stopping",
        "watched",
    )

    def __init__(self, name: str, process: Any, conn: Any, *, leader: bool, pidfd: int | None) -> None:
        super().__init__(name)
        self.process = process
        self.conn = conn
        self.leader = leader  # it leads its own process group
        self.pidfd = pidfd
        self.gone = False  # reaped: its pid may belong to another process now
        self.prefix = ""  # the shared-memory prefix of the running batch
        self.names: list[str] = []  # shared-memory files sent with the batch
        self.stopping = False  # told to stop, or retiring after maxtasksperchild
        self.ready = False  # started and initialized: it may be sent work
        self.did_work = False
        self.watched = False  # the manager waits on its pipe (ManagedWorkerPool._watch)

    def death_signal(self) -> int:
        """What the pool waits on for the worker's death: its pidfd, else its sentinel."""
        return self.pidfd if self.pidfd is not None else self.process.sentinel


class ProcessPool(ManagedWorkerPool[_Worker]):
    """A pool of worker processes (pathos' ``ProcessPool``, without the hangs).

    Args:
        nodes: number of processes (default: the number of cores, or inside
            another pool's worker that worker's share); aliases ``ncpus``,
            ``processes``.
        context: process start method: ``"fork"``, ``"spawn"`` or
            ``"forkserver"`` (default: the platform's default).
        initializer: called as ``initializer(*initargs)`` in each new worker.
            If it raises, the pool is broken: its work fails with that error.
        initargs: arguments of ``initializer``.
        maxtasksperchild: a worker exits and is replaced after this many
            tasks (default: never). The remedy for tasks that change their
            process for good (limits, environment, signal handlers, leaks).
        poison: a task that has killed this many workers fails even if it
            has retries left.
        **options: default task options: ``chunksize``, ``timeout``,
            ``retries``, ``progress``.
    """

    node_aliases = ("ncpus", "processes")
    ncpus = NodesAlias()
    _calls_direct = True  # a pipe to a ready worker is sent from the caller's thread, no job
    # The key and function of the call that starts the pool, while its first workers are forked.
    _first_function: tuple[int, Callable[..., Any]] | None = None

    def __init__(
        self,
        nodes: int | None = None,
        *,
        context: str | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Sequence[Any] = (),
        maxtasksperchild: int | None = None,
        poison: int = 2,
        **options: Any,
    ) -> None:
        super().__init__(nodes, **options)
        if context is not None and context not in CONTEXTS:
            raise ValueError(f"context must be one of {', '.join(CONTEXTS)} or None, got {context!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, got {initializer!r}")
        for name, value in (("maxtasksperchild", maxtasksperchild), ("poison", poison)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self._context: Any = multiprocessing.get_context(context)  # (its Process: per start method)
        # Forked workers (_forked.py) where a pidfd tells their death, else multiprocessing's.
        # The exit hook that terminates the pool is registered now, before any executor
        # view of the pool registers its own, which must run first (atexit: last in,
        # first out): ours, or multiprocessing's, which runs the pool's finalizer.
        self._forks = self.context == "fork" and _procs.pidfd_works()
        if self._forks:
            _register_exit_hook()
        else:
            _deferred.multiprocessing()
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._maxtasks = maxtasksperchild
        self._scheduler.poison_limit = poison
        self._workers: list[_Worker] = []
        self._serials = itertools.count(1)
        self._codec = PoolCodec(_wire.encode)
        self._start_failures = 0
        self._finalizer: Any = None
        self._shm_prefix = ""
        self._swept = False

    @property
    def context(self) -> str:
        """The process start method in use."""
        method: str = self._context.get_start_method()
        return method

    def _default_nodes(self) -> int:
        share = _nesting.current().cpu_share
        return share if share is not None else super()._default_nodes()

    # --------------------------------------------- the launcher's hooks

    def _start_workers(self) -> None:
        self._shm_prefix = f"{_shm.owned_by(os.getpid())}{next(_pool_serials)}-"
        self._start_failures = 0
        self._swept = False
        if self._forks:
            _started_pools.add(self)
        else:
            self._finalizer = _deferred.multiprocessing().util.Finalize(
                None, _terminate_at_exit, args=(weakref.ref(self),), exitpriority=20
            )
        try:
            self._start_manager(staff=True)  # the workers are forked here, the first ones
        finally:
            self._first_function = None

    def _encode(self, job: Job, batches: list[Batch]) -> None:
        super()._encode(job, batches)
        if self._forks and not self._lifecycle.workers_up and job.payload is not None:
            # The call that starts the pool: its first workers are forked with its
            # function (_spawn), a copy as of now, as the payload is.
            assert self._codec is not None
            self._first_function = (self._codec.key(job.payload), job.function)

    def _join_workers(self) -> None:
        super()._join_workers()
        self._drop_exit_hook()

    def _drop_exit_hook(self) -> None:
        _started_pools.discard(self)
        finalizer, self._finalizer = self._finalizer, None
        if finalizer is not None:
            finalizer.cancel()

    def _timed_out(self, batch: Batch) -> None:
        for worker in list(self._workers):
            if worker.batch is batch:
                _kill(worker)

    # -------------------------------------------------------- the manager

    def _handle(self, ready: list[Any]) -> None:
        dead = [worker for kind, worker in ready if kind == "sentinel"]
        for kind, worker in ready:
            if kind == "conn" and not self._receive(worker, dispatch=worker not in dead):
                dead.append(worker)
        for worker in dict.fromkeys(dead):
            self._reap(worker)
        self._kill_doomed()

    def _idle(self) -> None:
        if not self._swept:  # once per start, when idle: not while the first workers start
            self._swept = True
            _shm.sweep()  # what killed owners left

    def _kill_doomed(self) -> None:
        """Kill the workers running tasks of interrupted jobs."""
        for worker in self._doomed_workers(self._workers):
            _kill(worker)

    def _staff(self) -> None:
        """Start or retire workers so that ``nodes`` of them serve.

        A closing pool still staffs until the work handed out is done: it may
        have been closed before its first worker started, or lost one since.
        """
        serving = [worker for worker in self._workers if not worker.stopping]
        if self._killing or (self._closing and self._draining):
            return
        for _ in range(self.nodes - len(serving)):
            self._spawn()
        for worker in serving[self.nodes :]:
            if worker.batch is None:
                self._tell_stop(worker)

    def _spawn(self) -> None:
        # What starts a worker, and its side, loaded by the first worker started: not at import.
        from manymap.pools.local import _channel, _forked
        from manymap.pools.local._worker import worker_main

        serial = next(self._serials)
        parent_end, child_end = _channel.channel_pair()
        inherited: list[int] = []
        if self.context == "fork":  # the child gets copies of these: it must not hold them
            assert self._doorbell is not None
            inherited = [*self._doorbell.fds, *parent_end.fds()]
            inherited += [fd for w in self._workers for fd in w.conn.fds()]
            inherited += [w.pidfd for w in self._workers if w.pidfd is not None]
        # A pool inside a worker keeps its workers in the outer worker's group,
        # so that killing that group takes them too.
        leader = _nesting.current().depth == 0
        child = self.context != "forkserver"  # a forkserver's workers are its children, not ours
        initializer: Any = self._initializer
        if initializer is not None and self.context != "fork":
            initializer = _ByValue(initializer)
        # A forked worker without an initializer is ready as it is forked: it is sent
        # work at once and reads it once started (milliseconds). Any other says READY.
        ready = self._forks and initializer is None
        # A worker forked for the call that starts the pool has that call's function
        # already (by key, as its payload would bring it): one load less before it runs.
        functions = dict([self._first_function]) if self._first_function is not None else {}
        args = (
            child_end,
            initializer,
            self._initargs,
            self._maxtasks,
            inherited,
            os.getpid(),
            leader,
            child,
            _nesting.for_workers_of(self.nodes),
            not ready,
            functions,
        )
        name = f"manymap-worker-{serial}"
        process: Any
        if self._forks:
            _deferred.load_prctl()  # once per process: each forked worker inherits it
            process = _forked.ForkedProcess(worker_main, args, name)
        else:  # not daemonic: a task may start a pool of its own
            process = self._context.Process(target=worker_main, args=args, name=name, daemon=False)
        process.start()
        child_end.close()
        if leader and child:  # also from here: a kill may come before the worker runs
            with contextlib.suppress(OSError):
                os.setpgid(process.pid, process.pid)
        # The forkserver's sentinel is safe (the forkserver holds it and reports the
        # exit status on it); a child's sentinel is inherited by whatever it forks.
        pidfd = _procs.open_pidfd(process.pid) if child else None
        if pidfd is None and self._forks:  # (out of descriptors) its death would go unseen
            process.kill()
            parent_end.close()
            raise OSError(f"ProcessPool cannot watch its new worker (pid {process.pid}): no pidfd")
        worker = _Worker(
            f"process-{serial}[pid {process.pid}]", process, parent_end, leader=leader, pidfd=pidfd
        )
        worker.ready = ready
        worker.known.update(functions)  # (never sent to it: it holds them)
        self._workers.append(worker)
        self._watch(worker, True)  # until it says it is ready (if it does)
        self._add_channel(worker.death_signal(), ("sentinel", worker))

    def _ready_workers(self) -> list[_Worker]:
        return [w for w in self._workers if w.batch is None and not w.stopping and w.ready]

    def _transmit(
        self, worker: _Worker, star: bool, key: int, function: bytes | None, data: _wire.Encoded
    ) -> None:
        payload, buffers = data
        worker.prefix = f"{self._shm_prefix}{worker.token}-"
        worker.names = _shm.export(buffers, f"{worker.prefix}a") if buffers else []
        worker.did_work = True
        try:
            if function is not None:
                _wire.send(worker.conn, (_wire.FUNCTION, key), function)
            header = (_wire.RUN, worker.token, key, star, worker.names, f"{worker.prefix}r")
            _wire.send(worker.conn, header, payload)
        except OSError:
            pass  # the worker is dead: its sentinel tells, and the batch is lost then

    def _channels(self, worker: _Worker) -> tuple[int, ...]:
        return (worker.conn.fileno(), worker.death_signal())

    def _watch(self, worker: _Worker, watched: bool) -> None:
        # Its pidfd tells its death: its pipe is watched only while it owes the manager
        # a reply (until it is ready, and while it runs a batch that is not on loan).
        watched = watched and (worker.batch is not None or not worker.ready)
        if worker.watched == watched or worker.conn.closed:
            return
        worker.watched = watched
        if watched:
            self._add_channel(worker.conn.fileno(), ("conn", worker))
        else:
            self._remove_channel(worker.conn.fileno())

    def _take_reply(self, worker: _Worker) -> None:
        self._receive(worker)  # a closed pipe: the manager sees it too

    def _receive(self, worker: _Worker, *, dispatch: bool = True) -> bool:
        """Handle a message from ``worker``; with ``dispatch`` (not for one that died),
        a reply sends it its next batch before the results are loaded. False if
        its pipe is closed."""
        try:
            header, data = _wire.receive(worker.conn)
        except (EOFError, OSError):
            return False
        kind = header[0]
        if kind == _wire.READY:
            worker.ready = True  # the manager's next round sends it work
            self._watch(worker, False)  # idle: it owes nothing until it is sent a batch
            return True
        if kind == _wire.INIT_FAILED:
            failure: TaskFailure = _wire.decode(data, ())
            error = failure.error
            add_note(error, f"manymap: the initializer failed in worker {worker.name}")
            add_note(error, failure.traceback.rstrip())
            worker.stopping = True
            self._break(error)
            return True
        _, token, names, duration, retiring, failed = header
        worker.stopping = worker.stopping or retiring
        batch = worker.release(token)
        if batch is not None and dispatch and not worker.stopping and not failed and self._batches_waiting():
            # Its next batch first, then this one's results: the worker computes while
            # they load. (Not after a failure, which may stop the map: fail fast.)
            self._dispatch_to([worker])
        if worker.batch is None:
            # Idle: it owes nothing more. Unwatched before its batch settles: a call the
            # batch ends goes on in its caller's thread, and this thread must not then
            # need a system call (which lets that caller run first) to get back to its
            # wait; otherwise the manager stalls a whole switch interval.
            self._watch(worker, False)
        if batch is None:
            _shm.discard(names)  # a reply nobody waits for
        else:
            worker.finish(batch, lambda: _wire.decode(data, names), duration)
        if worker.stopping and not retiring:
            self._tell_stop(worker)
        return True

    def _reap(self, worker: _Worker) -> None:
        """``worker`` died or exited: settle its batch, forget it."""
        while True:  # results it sent before it went
            try:
                if not worker.conn.poll(0) or not self._receive(worker, dispatch=False):
                    break
            except (EOFError, OSError):
                break
        code = _wait_exit(worker)
        self._workers.remove(worker)
        self._forget(worker)
        batch, worker.batch = worker.batch, None
        if batch is not None:
            _shm.discard(worker.names)
            _shm.discard_prefix(worker.prefix)  # results it was writing when it died
            batch.lose(exit_reason(code), exitcode=code)
        elif not worker.stopping and not worker.did_work and not self._closing:
            self._start_failures += 1
            if self._start_failures > _START_FAILURES * self.nodes:
                self._break(
                    RuntimeError(
                        f"ProcessPool workers keep dying before doing any work (last: {exit_reason(code)})"
                    )
                )

    def _forget(self, worker: _Worker, *, discard: bool = True) -> None:
        """Close ``worker``'s channels; unless ``discard`` is false (the caller
        does it for several), unlink what its own nested pools left."""
        self._watch(worker, False)
        self._remove_channel(worker.death_signal())
        worker.conn.close()
        if worker.pidfd is not None:
            os.close(worker.pidfd)
            worker.pidfd = None
        if discard:
            _shm.discard_prefix(_shm.owned_by(worker.process.pid))

    def _tell_stop(self, worker: _Worker) -> None:
        worker.stopping = True
        with contextlib.suppress(OSError):
            _wire.send(worker.conn, (_wire.STOP,))

    def _stop_all(self) -> None:
        """Stop every worker: politely when closing, at once when terminating."""
        for worker in self._workers:
            if self._killing:
                _kill(worker)
            else:
                self._tell_stop(worker)
        self._await_loans()  # a caller waiting on a worker's reply gives it back
        prefixes = [self._shm_prefix]
        clean = True  # every worker exited on its own, idle: it left no file behind
        for worker in list(self._workers):
            code = _wait_exit(worker)
            clean = clean and code == 0 and worker.batch is None
            if worker.batch is not None:
                _shm.discard(worker.names)
                worker.batch.lose(exit_reason(code) + " as the pool was terminated")
                worker.batch = None
            self._forget(worker, discard=False)
            prefixes.append(_shm.owned_by(worker.process.pid))
        self._workers.clear()
        if not clean:
            _shm.discard_prefix(*prefixes)  # one look at the directory for them all
        self._drop_exit_hook()


class _ByValue:
    """A function that a spawned or forkserver worker gets through manymap.serialize.

    The start method pickles a worker's arguments with the stdlib pickler, which
    cannot ship a lambda or a closure; an initializer goes by value instead, as
    tasks do. Its arguments stay with the start method's pickler, so that
    ``multiprocessing`` locks, queues and shared values reach the worker as
    they do with the stdlib Pool.
    """

    __slots__ = ("function",)

    def __init__(self, function: Callable[..., object]) -> None:
        self.function = function

    def __reduce__(self) -> tuple[Any, ...]:
        return loads, (dumps(self.function, name="initializer"),)


def _kill(worker: _Worker) -> None:
    """Kill ``worker`` with its descendants and its process group."""
    pid = worker.process.pid
    if worker.gone or pid is None:
        return
    _procs.kill_tree(pid, group=worker.leader)


def _wait_exit(worker: _Worker) -> int | None:
    """The exit code of a worker that is exiting, killing it (and its descendants)
    if it does not exit within ``_JOIN`` seconds; then kill what it left in its
    process group. Waits on the pidfd: a grandchild holding the worker's
    sentinel cannot make this wait."""
    process = worker.process
    for attempt in range(2):
        deadline = time.monotonic() + _JOIN
        while True:
            code: int | None = process.exitcode  # non-blocking
            if code is not None or time.monotonic() >= deadline:
                break
            waitable = worker.pidfd if worker.pidfd is not None else process.sentinel
            _procs.wait_readable(waitable, _EXIT_SLICE)
        if code is not None or attempt:
            break
        _kill(worker)
    if worker.leader:
        _procs.kill_group(process.pid)  # the group outlives its leader's pid while it has members
    worker.gone = code is not None
    return code


def _terminate_at_exit(reference: weakref.ref[ProcessPool]) -> None:
    pool = reference()
    if pool is not None:
        pool.terminate()
        pool.join()


@functools.cache
def _register_exit_hook() -> None:
    atexit.register(_exit_hook)


def _exit_hook() -> None:
    """At interpreter exit: terminate the pools of forked workers still running (the
    others' are terminated by multiprocessing's exit handler, which runs their finalizer)."""
    for pool in list(_started_pools):
        _terminate_at_exit(weakref.ref(pool))

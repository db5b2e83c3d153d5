"""The main loop of a ProcessPool worker process.

The worker reads messages from its pipe (``_wire.py``), keeps the functions
it is sent in a ``manymap.serialize.FunctionCache``, runs batches with
:func:`manymap.launcher.lowlevel.run_loaded` and writes back their outcome
(``manymap.serialize.encode_results``). It
ignores SIGINT (the parent decides what Ctrl-C stops) and exits when the
parent says so, when its pipe closes, or after ``maxtasks`` tasks. A thread
watches the process that owns the pool: when it dies, the worker dies at
once with everything its tasks started, busy or not (``_procs.py``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence

from manymap.launcher.lowlevel import TaskFailure, reseed, run_loaded
from manymap.pools.local import _nesting, _procs, _shm, _wire
from manymap.serialize import FunctionCache, dumps, encode_results

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["worker_main"]


def worker_main(
    conn: _wire.Connection,
    initializer: Callable[..., object] | None,
    initargs: Sequence[Any],
    maxtasks: int | None,
    inherited: Sequence[int],
    owner: int,
    leader: bool,
    child: bool,
    settings: _nesting.WorkerSettings,
    announce: bool,
    functions: Mapping[int, Callable[..., Any]],
) -> None:
    """Serve batches until told to stop. Runs in the worker process.

    ``owner`` is the pid of the process that owns the pool (``child``: it is
    this process's parent); ``leader``: lead a process group of its own (a
    worker of a pool that is not itself inside a worker); ``settings``: its
    depth and share of the cores, for the pools its tasks build (``_nesting.py``);
    ``announce``: say READY once started and initialized, before any task comes (a
    forked worker without an initializer is sent work as it is forked);
    ``functions``: the task functions it holds from the start, by key (a forked
    worker inherits the one of the call that started its pool).
    """
    _nesting.enter_worker(settings)
    for fd in inherited:  # the parent's ends of the other workers' pipes (fork)
        with contextlib.suppress(OSError):
            os.close(fd)
    _procs.become_leader(group=leader)
    _procs.watch_owner(owner, group=leader, check_parent=child)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reseed()
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as error:
            _wire.send(conn, (_wire.INIT_FAILED,), dumps(TaskFailure.capture(error)))
            return
    if announce:
        # Only now may tasks come: a task's timeout must not count this process's start-up
        # (a spawned interpreter importing its modules on a loaded machine takes seconds).
        _wire.send(conn, (_wire.READY,))
    cache = FunctionCache(functions)
    done = 0
    while True:
        try:
            # A blocking read, not a poll then a read: the task arrives one wake-up sooner
            # (a poll before each read made a warm ``pipe`` about 20 µs slower).
            header, data = _wire.receive(conn)
        except (EOFError, OSError):
            return
        kind = header[0]
        if kind == _wire.RUN:
            _, token, key, star, names, prefix = header
            started = time.perf_counter()
            function = cache.get(key)
            if isinstance(function, TaskFailure):
                _shm.discard(names)  # the arguments are not loaded: nobody else unlinks them
            values, failures = run_loaded(function, functools.partial(_wire.decode, data, names), star=star)
            duration = time.perf_counter() - started
            done += len(values) if values is not None else 0
            retiring = maxtasks is not None and done >= maxtasks
            payload, buffers = encode_results(values, failures, _wire.encode)
            failed = bool(failures)  # (what encode_results could not send counts)
            del values, failures
            _procs.flush_streams()
            names = _shm.export(buffers, prefix) if buffers else []
            _wire.send(conn, (_wire.DONE, token, names, duration, retiring, failed), payload)
            if retiring:
                return
            # Its next task is near (the next batch of a map, a caller's next pipe): look
            # for it without sleeping first (manymap.launcher.lowlevel.spin).
            conn.spin()
        elif kind == _wire.FUNCTION:
            cache.store(header[1], data)  # one that fails to load fails the tasks that need it
        else:  # STOP
            return

"""Task functions for tests whose workers are spawned: they import this module by name."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any

from manymap.pools.local import ProcessPool

_configured: list[str] = []


def inner_process_map(x: int) -> list[int]:
    """A task that runs a process pool of its own."""
    with ProcessPool(2) as inner:
        return inner.map(abs, range(-x, 0))


def configure(value: str) -> None:
    """A worker initializer."""
    _configured.append(value)


def configured(_: Any) -> list[str]:
    """What the initializer left in this worker."""
    return list(_configured)


class QuotaError(Exception):
    """An exception that pickles but cannot be rebuilt: ``__init__`` wants two arguments."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is over its quota of {limit}")
        self.limit = limit


def square_but_3(x: int) -> int:
    """``x * x``, but :class:`QuotaError` for 3."""
    if x == 3:
        raise QuotaError("disk", x)
    return x * x


def family(x: int) -> tuple[int, int, int]:
    """``(x, pid, parent pid)`` of the process that ran the task."""
    import os

    return x, os.getpid(), os.getppid()


def thread_of(x: int) -> tuple[int, int, int]:
    """``(x, pid, thread id)`` of the worker that ran the task."""
    import os
    import threading

    return x, os.getpid(), threading.get_ident()


def nested_pool_then_sleep(path: str, seconds: float) -> int:
    """Start a ProcessPool inside this worker, record this worker's pid and the
    inner workers' in ``path``, then sleep."""
    import os

    from manymap.launcher.testing import _fault_tasks, _tasks

    with ProcessPool(2) as inner:
        pids = {pid for _, pid, _ in inner.map(_tasks.where, range(8), chunksize=1)}
        busy = inner.amap(_tasks.sleep_then, [0, 0], [seconds, seconds], chunksize=1)  # both inner workers
        _fault_tasks.record(path, {"pid": os.getpid(), "children": sorted(pids)})
        busy.wait(seconds)
    return os.getpid()


def big_results(path: str, count: int) -> list[Any]:
    """Record this worker's pid in ``path``; return ``count`` arrays that each go
    through shared memory."""
    import os

    import numpy as np

    from manymap.launcher.testing import _fault_tasks
    from manymap.pools.local._shm import MIN_SHARED

    _fault_tasks.record(path, {"pid": os.getpid(), "children": []})
    return [np.full(MIN_SHARED // 8 + 1, float(i)) for i in range(count)]


def lower_file_limit(_: Any) -> int:
    """A task that changes its process for good: one file descriptor less."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard))
    return soft - 1


def file_limit(_: Any) -> int:
    """The file descriptor limit of the worker running this task."""
    import resource

    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def default_size(_: Any) -> int:
    """The size a pool built in this worker gets by default: the worker's share."""
    return ProcessPool().nodes


def nested_leadership(_: Any) -> tuple[int, list[tuple[int, int]]]:
    """This worker's process group, and (pid, process group) of an inner pool's workers."""
    with ProcessPool(2) as inner:
        return os.getpgid(0), inner.map(process_group, range(2), chunksize=1)


def process_group(_: Any) -> tuple[int, int]:
    """This process's pid and process group."""
    return os.getpid(), os.getpgid(0)


def pid_once_two_met(folder: str) -> int:
    """Leave this worker's pid in ``folder``, then wait (30 s at most) until two workers have."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid()


def fail_first_mark_the_rest(item: tuple[int, str]) -> int:
    """Task 0 raises; every other task leaves a file named after it in the directory given."""
    index, directory = item
    if index == 0:
        raise ValueError("task 0 fails")
    Path(directory, str(index)).touch()
    return index


def worker_identity(_: object) -> dict[str, Any]:
    """What a task sees of its worker through multiprocessing (test_forked.py)."""
    me = multiprocessing.current_process()
    parent = multiprocessing.parent_process()
    return {
        "name": me.name,
        "daemon": me.daemon,
        "pid": me.pid,
        "own pid": os.getpid(),
        "parent": None if parent is None else parent.pid,
        "parent alive": None if parent is None else parent.is_alive(),
        "children": multiprocessing.active_children(),
        "stdin": sys.stdin.read(),
    }

"""Task functions of the fault table: tasks that misbehave on purpose.

They live in an importable module so that every kind of worker (a thread, a
spawned process, a remote server on this machine) imports them by
reference. Tasks that a test must watch from outside write what it needs
(their pid, the pids of the processes they started) into a JSON file,
written whole or not at all.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

__all__ = [
    "NeedsArguments",
    "busy",
    "busy_with_children",
    "count_run",
    "die_once",
    "raise_needs_arguments",
    "record",
    "sleep_in_child",
    "start_child",
]


def record(path: str, info: dict[str, Any]) -> None:
    """Write ``info`` as JSON into ``path`` atomically."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(info, stream)
    os.replace(temporary, path)


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def sleep_in_child(seconds: float) -> None:
    """The body of a grandchild: sleep, then leave without any clean-up."""
    _sleep(seconds)
    os._exit(0)


def start_child(kind: str, seconds: float) -> int:
    """Start a process that sleeps ``seconds``; return its pid.

    ``kind``: ``"fork"`` (``os.fork()``), ``"process"`` (a
    ``multiprocessing.Process``, forked) or ``"subprocess"`` (``sleep`` run
    by ``subprocess.Popen``).
    """
    if kind == "fork":
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            sleep_in_child(seconds)
        return pid
    if kind == "process":
        process = multiprocessing.get_context("fork").Process(target=sleep_in_child, args=(seconds,))
        process.start()
        assert process.pid is not None
        return process.pid
    if kind == "subprocess":
        return subprocess.Popen(["sleep", str(seconds)]).pid
    raise ValueError(f"unknown kind of child {kind!r}")


def busy(path: str, seconds: float) -> int:
    """Record this worker's pid in ``path``, then sleep ``seconds``; return the pid."""
    record(path, {"pid": os.getpid(), "children": []})
    _sleep(seconds)
    return os.getpid()


def busy_with_children(path: str, kinds: list[str], seconds: float) -> int:
    """Start one child of each kind (see :func:`start_child`), record this worker's
    pid and theirs in ``path``, then sleep ``seconds``."""
    children = [start_child(kind, seconds) for kind in kinds]
    record(path, {"pid": os.getpid(), "children": children})
    _sleep(seconds)
    return os.getpid()


def die_once(marker: str) -> str:
    """SIGKILL this worker the first time (creating ``marker``); return ``"again"`` after."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return "again"
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def count_run(directory: str, x: int, deadly: int, once: bool = False) -> int:
    """Leave a file in ``directory`` per run of task ``x``; the task ``deadly``
    SIGKILLs its worker (the first time only if ``once``). Returns ``x * x``."""
    name = os.path.join(directory, f"run-{x}-{uuid.uuid4().hex}")
    with open(name, "w", encoding="utf-8"):
        pass
    if x == deadly:
        earlier = [entry for entry in os.listdir(directory) if entry.startswith(f"run-{x}-")]
        if not once or len(earlier) == 1:
            os.kill(os.getpid(), signal.SIGKILL)
    return x * x


class NeedsArguments(Exception):
    """An exception that pickles but cannot be rebuilt from its ``args``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"code {code}: {reason}")
        self.code = code
        self.reason = reason


def raise_needs_arguments(x: int, bad: int) -> int:
    """``x * x``, but :class:`NeedsArguments` when ``x == bad``."""
    if x == bad:
        raise NeedsArguments(x, "cannot be rebuilt from its message")
    return x * x

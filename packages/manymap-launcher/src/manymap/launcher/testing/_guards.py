"""Guards of the conformance suite: hang dumps and leak checks.

A pool test must never block CI: every wait in the suite has a timeout, and
as a last resort :func:`hang_guard` dumps the traceback of every thread and
ends the test process when a test outlives its budget. :func:`live_children`
and :func:`live_threads` let a test prove that a closed and joined pool left
nothing behind.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["HANG_SECONDS", "eventually", "hang_guard", "live_children", "live_threads"]

#: Seconds a single conformance test may take before it is declared hung.
HANG_SECONDS = float(os.environ.get("MANYMAP_TEST_HANG_SECONDS", "120"))


@contextlib.contextmanager
def hang_guard(seconds: float = HANG_SECONDS, capture: Any = None) -> Iterator[None]:
    """Dump every thread's traceback and end the process if the block hangs.

    Args:
        seconds: how long the block may take.
        capture: pytest's capture manager (``request.config.pluginmanager
            .getplugin("capturemanager")``), if any: it is suspended first, so
            that the dump reaches the terminal instead of a capture file.
    """
    timer = threading.Timer(seconds, _hung, args=(seconds, capture))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _hung(seconds: float, capture: Any) -> None:
    if capture is not None:
        with contextlib.suppress(Exception):
            capture.suspend_global_capture(in_=False)
    stream = sys.__stderr__ if sys.__stderr__ is not None else sys.stderr
    stream.write(f"\nmanymap: a test hung for {seconds:g} s; the traceback of every thread follows\n")
    stream.flush()
    faulthandler.dump_traceback(file=stream, all_threads=True)
    stream.flush()
    os._exit(1)


def live_threads() -> set[threading.Thread]:
    """The threads of this process that are alive now, but the one finalizer thread
    of the process (started the first time a result iterator is dropped unfinished,
    it serves every pool for the life of the process)."""
    return {
        thread for thread in threading.enumerate() if thread.is_alive() and thread.name != "manymap-finalizer"
    }


def cpu_seconds(pid: int) -> float:
    """The CPU time process ``pid`` has used so far, user and system (Linux ``/proc``):
    what a process that should be asleep, or not spinning, must not gain."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_children() -> set[int]:
    """Pids of this process's child processes, zombies included (Linux ``/proc``).

    Elsewhere it returns an empty set, so the check proves nothing there.
    """
    me = os.getpid()
    children: set[int] = set()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return children
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == me:
            children.add(int(entry))
    return children


def eventually(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Whether ``predicate()`` becomes true within ``timeout`` seconds.

    For state that settles asynchronously after an operation that already
    returned (an OS reaping a process, a thread object's last reference).
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def kill_started(owner: subprocess.Popen[Any], pids: Iterable[int], timeout: float = 10.0) -> None:
    """End what a test started, whatever became of the test: ``owner`` (killed and
    reaped if it still runs) and every one of ``pids`` still there (SIGKILL, by pid).

    For a ``finally:`` after a test that starts a process which starts others.
    """
    if owner.poll() is None:
        owner.kill()
        owner.wait(timeout)
    for pid in pids:
        with contextlib.suppress(OSError):  # gone already
            os.kill(pid, signal.SIGKILL)

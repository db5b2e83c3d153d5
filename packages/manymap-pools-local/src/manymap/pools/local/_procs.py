"""Process control for ProcessPool workers: death seen through what no grandchild
can hold open, and a worker killed with everything it started.

A worker's pipe and its ``multiprocessing`` sentinel are inherited by every
process a task forks (a nested pool, ``os.fork()``, a
``multiprocessing.Process``), so they close only when the last of those
exits. The pool therefore waits on a *pidfd* of the worker
(:func:`open_pidfd`, Linux >= 5.3), which becomes readable when the worker
itself exits, whoever holds its pipes.

A top-level worker leads its own process group; processes its tasks start,
and the workers of pools nested in them, stay in that group unless they
leave it on purpose. A worker is also a child subreaper, so that what its
tasks orphan stays below it. :func:`kill_tree` kills a live worker with its
group and its descendants; once a worker is dead, killing its group
(:func:`kill_group`) takes what it left. In the worker, :func:`watch_owner`
kills the worker and its group when the process that owns the pool dies.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import selectors
import signal
import sys
import time

from manymap.pools.local import _deferred

__all__ = [
    "become_leader",
    "flush_streams",
    "kill_group",
    "kill_tree",
    "open_pidfd",
    "pidfd_works",
    "wait_readable",
    "watch_owner",
]

_PR_SET_CHILD_SUBREAPER = 36
_OWNER_POLL = 0.25  # seconds between checks of the owner where there is no pidfd
_WATCH_SLICE = 60.0  # seconds; the owner watcher re-arms its wait at least this often


def open_pidfd(pid: int) -> int | None:
    """A pidfd of ``pid`` (readable once it exits), or ``None`` where there is none."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:  # no pidfd support in this kernel, or the process is gone
        return None
    return fd


def pidfd_works() -> bool:
    """Whether this process can open pidfds (tried on itself)."""
    fd = open_pidfd(os.getpid())
    if fd is None:
        return False
    os.close(fd)
    return True


def wait_readable(fd: int, timeout: float) -> bool:
    """Wait at most ``timeout`` seconds for ``fd`` (a pidfd or sentinel) to become readable."""
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def become_leader(*, group: bool) -> None:
    """Make this worker a child subreaper and, if ``group``, the leader of its own
    process group (best effort: where the OS has neither, nothing changes)."""
    if group:
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
    with contextlib.suppress(OSError, AttributeError, ImportError):
        _deferred.prctl(_PR_SET_CHILD_SUBREAPER, 1)


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc``; empty elsewhere)."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as listing:
                found.extend(int(child) for child in listing.read().split())
        except (OSError, ValueError):
            continue
    return found


def kill_group(pgid: int) -> None:
    """SIGKILL the process group ``pgid`` (nothing if it is gone)."""
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)


def kill_tree(pid: int, *, group: bool, include_self: bool = True) -> None:
    """SIGKILL ``pid``, its descendants and, if ``group``, its process group.

    The tree is frozen top-down first (SIGSTOP), so that nothing forks past
    the walk, then killed. ``include_self=False`` spares ``pid`` itself (a
    worker clearing up below itself).
    """
    frozen: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        if current != pid or include_self:
            try:
                os.kill(current, signal.SIGSTOP)
            except OSError:
                continue
            frozen.append(current)
        pending.extend(children(current))
    if group:
        kill_group(pid)
    for current in frozen:
        with contextlib.suppress(OSError):
            os.kill(current, signal.SIGKILL)


def watch_owner(owner: int, *, group: bool, check_parent: bool) -> None:
    """In a worker: kill this worker, its descendants and (if it leads one) its
    group when the process ``owner`` dies. Starts a thread, a bare one: a
    ``threading.Thread`` waits until the new thread runs, 0.2 to 3 ms of each
    worker's start on a busy machine, and this one is never joined (it ends
    with the process).

    ``check_parent``: ``owner`` is this process's parent (fork and spawn), so
    a parent that is already gone is seen even if its pid was reused.
    """
    pidfd = open_pidfd(owner)
    if check_parent and os.getppid() != owner:
        _die(group)
    _thread.start_new_thread(_watch, (owner, pidfd, group))


def _watch(owner: int, pidfd: int | None, group: bool) -> None:
    if pidfd is not None:
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            while not selector.select(_WATCH_SLICE):
                pass
    else:
        while _alive(owner):
            time.sleep(_OWNER_POLL)
    _die(group)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die(group: bool) -> None:
    """The owner is gone: take everything below this worker, then the worker."""
    me = os.getpid()
    kill_tree(me, group=False, include_self=False)
    if group:
        kill_group(me)
    os.kill(me, signal.SIGKILL)


def flush_streams() -> None:
    """Flush standard output and error (a task's prints, what a parent buffered before a fork)."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - not contextlib.suppress, two microseconds: this runs after every batch
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass

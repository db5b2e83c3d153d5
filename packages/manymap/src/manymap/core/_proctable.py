"""A host's process table, and pathos.core's queries on it: ``getpid``, ``getppid``, ``getchild``.

The table comes from ``ps`` where there is one, else from Linux's ``/proc``
(minimal images have no ps), on this machine or over ssh; it is parsed
here, never grepped by a shell.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manymap.core._commands import TIMEOUT, HostLike, check_pid, run

__all__ = ["PS_SCRIPT", "Proc", "getchild", "getpid", "getppid", "proc_table", "processes"]


@dataclass(frozen=True)
class Proc:
    """A row of the table."""

    pid: int
    ppid: int
    pgid: int
    args: str


# A fixed script (nothing of the caller's in it): ps where there is one, else Linux's /proc.
PS_SCRIPT = """if command -v ps >/dev/null 2>&1; then exec ps -ww -eo pid=,ppid=,pgid=,args=; fi
for d in /proc/[0-9]*; do
  s=$(cat "$d/stat" 2>/dev/null) || continue
  set -- ${s##*) }
  printf '%s %s %s %s\\n' "${d#/proc/}" "$2" "$3" "$(tr '\\000\\n' '  ' < "$d/cmdline" 2>/dev/null)"
done
"""


def processes(host: HostLike | None, timeout: float, **overrides: Any) -> list[Proc]:
    """Every process of ``host`` (without the lister itself): ``ps``, or ``/proc`` where there is no ps."""
    if host is None and shutil.which("ps") is None:
        return proc_table()
    result = run(PS_SCRIPT, host, timeout, **overrides).check()
    found = []
    for line in result.stdout_text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
            continue
        proc = Proc(int(parts[0]), int(parts[1]), int(parts[2]), parts[3].strip() if len(parts) > 3 else "")
        if proc.pid != result.pid:
            found.append(proc)
    return found


def proc_table() -> list[Proc]:
    """This machine's processes from /proc (Linux), for machines without ``ps``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            raw = (entry / "cmdline").read_bytes().replace(b"\0", b" ").replace(b"\n", b" ")
            args = raw.decode("utf-8", "replace").strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found.append(Proc(int(entry.name), int(fields[1]), int(fields[2]), args))
    return found


def getpid(
    target: str | int | None = None,
    host: HostLike | None = None,
    all: bool = False,
    *,
    timeout: float = TIMEOUT,
    **overrides: Any,
) -> int | list[int]:
    """The pid of the process whose command line contains ``target``, on ``host``.

    As ``pathos.core.getpid``: with no ``target``, this process's pid (locally)
    or, with ``all``, every pid of the host; an integer ``target`` is a pid whose
    existence is checked.

    Args:
        target: text to find in the command lines, or a pid.
        host: where to look (``None``: this machine).
        all: return every matching pid (a sorted list) instead of the first.

    Raises:
        OSError: no matching process (errno ESRCH).
    """
    if target is None and host is None and not all:
        return os.getpid()
    if target is None and not all:
        raise ValueError("getpid on a remote host needs a target (a command-line text or a pid)")
    procs = processes(host, timeout, **overrides)
    if target is None:
        matches = [p.pid for p in procs]
    elif isinstance(target, int) and not isinstance(target, bool):
        matches = [p.pid for p in procs if p.pid == target]
    else:
        matches = [p.pid for p in procs if str(target) in p.args]
    if not matches:
        raise OSError(errno.ESRCH, f"no process matching {target!r} on {host or 'localhost'}")
    return sorted(matches) if all else min(matches)


def getppid(
    pid: int | None = None,
    host: HostLike | None = None,
    group: bool = False,
    *,
    timeout: float = TIMEOUT,
    **overrides: Any,
) -> int:
    """The parent pid of ``pid`` on ``host`` (with ``group``: its process group id instead).

    With no ``pid``, this process's parent (or group) locally.

    Raises:
        OSError: no such process (errno ESRCH).
    """
    if pid is None:
        if host is not None:
            raise ValueError("getppid on a remote host needs a pid")
        return os.getpgid(0) if group else os.getppid()
    pid = check_pid(pid)
    for proc in processes(host, timeout, **overrides):
        if proc.pid == pid:
            return proc.pgid if group else proc.ppid
    raise OSError(errno.ESRCH, f"no process {pid} on {host or 'localhost'}")


def getchild(
    pid: int | None = None,
    host: HostLike | None = None,
    group: bool = True,
    *,
    timeout: float = TIMEOUT,
    **overrides: Any,
) -> list[int]:
    """The pids of the children of ``pid`` on ``host``, sorted.

    Args:
        pid: the parent (``None``: this process, locally).
        host: where (``None``: this machine).
        group: all descendants (children, their children, ...); ``False``: direct children only.
    """
    if pid is None:
        if host is not None:
            raise ValueError("getchild on a remote host needs a pid")
        pid = os.getpid()
    pid = check_pid(pid)
    procs = processes(host, timeout, **overrides)
    children: dict[int, list[int]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        if group:
            todo.extend(children.get(child, []))
    return sorted(found)

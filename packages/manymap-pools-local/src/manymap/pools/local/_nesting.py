"""Where this process sits among nested ProcessPools: its depth and its share of the cores.

A ProcessPool hands each worker it starts two settings in the worker's start
arguments (``worker_main``'s, so fork, spawn and forkserver alike), never
through the environment: writing the parent's ``os.environ`` from a manager
thread races with every other pool starting workers at the same moment.

- ``depth``: 0 in a process that is no pool's worker, ``n + 1`` in a worker of
  a pool built at depth ``n``. A top-level worker (depth 1) leads a process
  group of its own; deeper workers stay in their outer worker's group, so that
  killing that group takes them too.
- ``cpu_share``: the cores of the machine divided among the pool's workers;
  a pool built inside a worker defaults to that many nodes.
"""

from __future__ import annotations

import collections
import os

__all__ = ["WorkerSettings", "current", "enter_worker", "for_workers_of"]


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import NamedTuple

    class _Fields(NamedTuple):
        depth: int
        cpu_share: int | None

else:
    _Fields = collections.namedtuple("WorkerSettings", ["depth", "cpu_share"])


class WorkerSettings(_Fields):
    """What a worker learns from its start arguments about its place in nested pools."""

    __slots__ = ()


_current = WorkerSettings(0, None)


def current() -> WorkerSettings:
    """This process's settings (the defaults outside any worker)."""
    return _current


def for_workers_of(nodes: int) -> WorkerSettings:
    """The settings a pool of ``nodes`` workers built in this process gives each worker."""
    return WorkerSettings(depth=_current.depth + 1, cpu_share=max(1, (os.cpu_count() or 1) // nodes))


def enter_worker(settings: WorkerSettings) -> None:
    """Make ``settings`` this process's own; called once, first thing in a worker."""
    global _current
    _current = settings

"""manymap.launcher: the contracts every manymap package follows.

- :class:`AbstractWorkerPool`: the whole pool contract (the map family,
  ``pipe``, ``submit``/``shutdown``, schwimmbad's surface, options,
  lifecycle, timeouts, retries, progress, stats) over a scheduling core that
  a concrete pool supplies;
- :class:`PoolExecutor` (``pool.executor``): a pool as a strict
  :class:`concurrent.futures.Executor`;
- :class:`AbstractLauncher`: the base of every pipe, copier and tunnel;
- result handles :class:`AsyncResult` / :class:`MapResult`;
- the error hierarchy rooted at :class:`ManymapError`;
- task events (:class:`TaskEvent`) and progress bars;
- :func:`warn_user`: warnings attributed to the user's line, not manymap's;
- for pool implementers: :class:`Job` and :class:`Batch` (what the scheduling
  hooks receive), :class:`ThreadWorkerPool`, and :class:`ManagedWorkerPool`
  (with its :class:`Doorbell`) for pools whose workers a manager thread owns,
  and :class:`EngineWorkerPool` for pools whose tasks run on an external
  engine (a Dask cluster);
- :mod:`manymap.launcher.testing`: the conformance suite every pool passes.

Standard library only.
"""

from __future__ import annotations

from manymap.launcher.__about__ import __version__
from manymap.launcher._calls import PoolCalls
from manymap.launcher._engine import EngineInbox, EngineOutcome, EngineWorker, EngineWorkerPool
from manymap.launcher._errors import (
    AuthenticationError,
    ConnectionLostError,
    HostKeyError,
    ManymapError,
    PoolClosedError,
    RemoteTraceback,
    ResultTimeoutError,
    SerializationError,
    TaskTimeoutError,
    TunnelError,
    WorkerLostError,
    add_note,
    annotate_task_error,
)
from manymap.launcher._events import EventKind, ProgressListener, TaskEvent, TextProgressBar, progress_bar
from manymap.launcher._executor import ExecutorShutdownError, PoolExecutor
from manymap.launcher._job import Batch, Job
from manymap.launcher._launcher import AbstractLauncher
from manymap.launcher._managed import Doorbell, ManagedWorkerPool
from manymap.launcher._options import TaskOptions
from manymap.launcher._pool import AbstractWorkerPool, NodesAlias
from manymap.launcher._public import show_public_paths
from manymap.launcher._rebuild import RemoteTaskError
from manymap.launcher._results import AsyncResult, MapResult, ResultIterator
from manymap.launcher._stats import PoolStats, WorkerStats
from manymap.launcher._task import TaskFailure, run_calls
from manymap.launcher._threads import ThreadWorkerPool
from manymap.launcher._warnings import warn_user

__all__ = [
    "AbstractLauncher",
    "AbstractWorkerPool",
    "AsyncResult",
    "AuthenticationError",
    "Batch",
    "ConnectionLostError",
    "Doorbell",
    "EngineInbox",
    "EngineOutcome",
    "EngineWorker",
    "EngineWorkerPool",
    "EventKind",
    "ExecutorShutdownError",
    "HostKeyError",
    "Job",
    "ManagedWorkerPool",
    "ManymapError",
    "MapResult",
    "NodesAlias",
    "PoolCalls",
    "PoolClosedError",
    "PoolExecutor",
    "PoolStats",
    "ProgressListener",
    "RemoteTaskError",
    "RemoteTraceback",
    "ResultIterator",
    "ResultTimeoutError",
    "SerializationError",
    "TaskEvent",
    "TaskFailure",
    "TaskOptions",
    "TaskTimeoutError",
    "TextProgressBar",
    "ThreadWorkerPool",
    "TunnelError",
    "WorkerLostError",
    "WorkerStats",
    "__version__",
    "add_note",
    "annotate_task_error",
    "progress_bar",
    "run_calls",
    "show_public_paths",
    "warn_user",
]


show_public_paths(globals())

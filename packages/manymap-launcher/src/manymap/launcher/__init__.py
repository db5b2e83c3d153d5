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
- :mod:`manymap.launcher.lowlevel`: the pieces for writing a pool (``Job``,
  ``Batch``, ``run_calls``, the ``ThreadWorkerPool`` and ``ManagedWorkerPool``
  cores, ...) or a package of the family (``warn_user``, ``show_public_paths``);
- :mod:`manymap.launcher.testing`: the conformance suite every pool passes.

Standard library only.
"""

from __future__ import annotations

from manymap.launcher import _public

with _public.collector_paused():  # (import time: see _public.py)
    from manymap.launcher.__about__ import __version__
    from manymap.launcher._calls import PoolCalls
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
    )
    from manymap.launcher._events import EventKind, ProgressListener, TaskEvent
    from manymap.launcher._pool import AbstractWorkerPool
    from manymap.launcher._rebuild import RemoteTaskError
    from manymap.launcher._results import ResultIterator
    from manymap.launcher._stats import PoolStats, WorkerStats

__all__ = [
    "AbstractLauncher",
    "AbstractWorkerPool",
    "AsyncResult",
    "AuthenticationError",
    "ConnectionLostError",
    "EventKind",
    "ExecutorShutdownError",
    "HostKeyError",
    "ManymapError",
    "MapResult",
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
    "TaskTimeoutError",
    "TextProgressBar",
    "TunnelError",
    "WorkerLostError",
    "WorkerStats",
    "__version__",
    "progress_bar",
]


_public.show_public_paths(globals())

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from manymap.launcher._executor import ExecutorShutdownError, PoolExecutor
    from manymap.launcher._futures import AsyncResult, MapResult
    from manymap.launcher._launcher import AbstractLauncher
    from manymap.launcher._progress import TextProgressBar, progress_bar

#: Public names loaded on first access (import time): a plain ``map`` uses neither
#: the executor view, nor the launchers' base (ssh pipes, copiers and tunnels do),
#: nor a progress bar, nor the handles that are futures (``concurrent.futures``
#: brings ``logging``).
_LAZY = {
    "AbstractLauncher": "manymap.launcher._launcher",
    "AsyncResult": "manymap.launcher._futures",
    "MapResult": "manymap.launcher._futures",
    "ExecutorShutdownError": "manymap.launcher._executor",
    "PoolExecutor": "manymap.launcher._executor",
    "TextProgressBar": "manymap.launcher._progress",
    "progress_bar": "manymap.launcher._progress",
}

__getattr__, __dir__ = _public.load_on_access(globals(), _LAZY)

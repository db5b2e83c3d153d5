"""Pieces for writing a pool, or a package of the manymap family (as ``trio.lowlevel``).

Code that only *uses* pools needs none of this: ``manymap.launcher`` holds
the pools' public base, result handles, errors and progress events.

- :class:`ThreadWorkerPool` (workers are threads) and
  :class:`ManagedWorkerPool` (workers are channels one manager thread waits
  on, woken by a :class:`Doorbell`): scheduling cores to subclass;
- :class:`EngineWorkerPool` (a managed pool whose tasks run on an external
  engine that owns the workers, such as a Dask cluster) with its
  :class:`EngineWorker`, :class:`EngineOutcome` and :class:`EngineInbox`;
- for a managed pool: :class:`ManagedWorker` (its record of one worker),
  :class:`BatchCodec` (what it serializes batches with), :func:`run_loaded`
  (a shipped batch run on the far side) and :func:`exit_reason` (a worker's
  exit code in words);
- :class:`Job` and :class:`Batch`: what a scheduling core takes and reports
  through; :func:`run_calls` runs a batch's calls and collects their
  :class:`TaskFailure` s; :class:`TaskOptions` is a call's options;
  :class:`CallResult`: the handle a job settles for a caller blocked on its
  call (``map``, ``pipe``), where others get an ``AsyncResult``;
- :class:`NodesAlias`: ``nodes`` under another name (``ncpus = NodesAlias()``);
- :func:`spin`: look for a message for :data:`SPIN` seconds without sleeping
  (a wake-up costs more than a small task on a virtual machine), a worker
  after its reply for :data:`WORKER_SPIN`;
- :func:`reseed`: a forked worker's own random streams (``random``'s and
  numpy's global generator), called as it starts;
- for the family's packages: :func:`warn_user` (warnings at the caller's
  line), :func:`show_public_paths` (public names show their public path),
  :func:`load_on_access` (public names loaded when first named),
  :class:`collector_paused` (a package's imports without the garbage collector),
  :func:`add_note` and :func:`annotate_task_error`.
"""

from __future__ import annotations

from manymap.launcher._public import collector_paused, load_on_access, show_public_paths

with collector_paused():  # (import time: see _public.py)
    from manymap.launcher._batch import Batch
    from manymap.launcher._errors import add_note, annotate_task_error
    from manymap.launcher._exits import exit_reason
    from manymap.launcher._job import Job
    from manymap.launcher._nodes import NodesAlias
    from manymap.launcher._options import TaskOptions
    from manymap.launcher._reseed import reseed
    from manymap.launcher._results import CallResult
    from manymap.launcher._spin import SPIN, WORKER_SPIN, spin
    from manymap.launcher._task import TaskFailure, run_calls, run_loaded
    from manymap.launcher._warnings import warn_user

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from manymap.launcher._engine import EngineInbox, EngineOutcome, EngineWorker, EngineWorkerPool
    from manymap.launcher._managed import Doorbell, ManagedWorkerPool
    from manymap.launcher._shipping import BatchCodec, ManagedWorker
    from manymap.launcher._threads import ThreadWorkerPool

__all__ = [
    "SPIN",
    "WORKER_SPIN",
    "Batch",
    "BatchCodec",
    "CallResult",
    "Doorbell",
    "EngineInbox",
    "EngineOutcome",
    "EngineWorker",
    "EngineWorkerPool",
    "Job",
    "ManagedWorker",
    "ManagedWorkerPool",
    "NodesAlias",
    "TaskFailure",
    "TaskOptions",
    "ThreadWorkerPool",
    "add_note",
    "annotate_task_error",
    "collector_paused",
    "exit_reason",
    "load_on_access",
    "reseed",
    "run_calls",
    "run_loaded",
    "show_public_paths",
    "spin",
    "warn_user",
]


show_public_paths(globals(), private="manymap.launcher._")

#: Names loaded on first access, and their modules: each kind of pool uses its own
#: core (threads: ThreadPool; a manager: ProcessPool, ParallelPool; an engine: DaskPool).
_DEFERRED = {
    "ThreadWorkerPool": "manymap.launcher._threads",
    "EngineInbox": "manymap.launcher._engine",
    "EngineOutcome": "manymap.launcher._engine",
    "EngineWorker": "manymap.launcher._engine",
    "EngineWorkerPool": "manymap.launcher._engine",
    "Doorbell": "manymap.launcher._managed",
    "ManagedWorkerPool": "manymap.launcher._managed",
    "BatchCodec": "manymap.launcher._shipping",
    "ManagedWorker": "manymap.launcher._shipping",
}

__getattr__, __dir__ = load_on_access(globals(), _DEFERRED)

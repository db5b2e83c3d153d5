"""manymap.pools.local: serial, thread and process pools that never hang.

- :class:`SerialPool`: every task in the caller's thread;
- :class:`ThreadPool`: worker threads;
- :class:`ProcessPool`: worker processes (the stdlib's ``multiprocessing``)
  with their own scheduler: a worker that dies, a task over its timeout, an
  argument that cannot be serialized are errors naming the task, never
  hangs. It is loaded when first named, so that importing the package for
  a ThreadPool or SerialPool does not load it.

All three have the whole pool contract of
:class:`manymap.launcher.AbstractWorkerPool` and pass its conformance suite.
"""

from __future__ import annotations

from manymap.launcher.lowlevel import collector_paused, load_on_access, show_public_paths

with collector_paused():  # (import time: see manymap.launcher.lowlevel.collector_paused)
    from manymap.pools.local.__about__ import __version__
    from manymap.pools.local._random import random_seed, random_state
    from manymap.pools.local._serial import SerialPool
    from manymap.pools.local._thread import ThreadPool

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from manymap.pools.local._process import CONTEXTS, ProcessPool

__all__ = [
    "CONTEXTS",
    "ProcessPool",
    "SerialPool",
    "ThreadPool",
    "__version__",
    "random_seed",
    "random_state",
]


show_public_paths(globals())

# Loaded on first access: a ThreadPool or SerialPool never needs the process
# machinery (its pipes, shared memory, process control, serialization).
__getattr__, __dir__ = load_on_access(
    globals(),
    {"CONTEXTS": "manymap.pools.local._process", "ProcessPool": "manymap.pools.local._process"},
)

"""manymap.pools.local: serial, thread and process pools that never hang.

- :class:`SerialPool`: every task in the caller's thread;
- :class:`ThreadPool`: worker threads;
- :class:`ProcessPool`: worker processes (on the stdlib's ``multiprocessing``) with their own
  scheduler: a worker that dies, a task over its timeout, an argument that
  cannot be serialized are errors naming the task, never hangs.

All three have the whole pool contract of
:class:`manymap.launcher.AbstractWorkerPool` and pass its conformance suite.
"""

from __future__ import annotations

from manymap.launcher.lowlevel import show_public_paths
from manymap.pools.local.__about__ import __version__
from manymap.pools.local._process import CONTEXTS, ProcessPool
from manymap.pools.local._random import random_seed, random_state
from manymap.pools.local._serial import SerialPool
from manymap.pools.local._thread import ThreadPool

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

"""The conformance suite: the pool contract as pytest test classes.

A pool package proves its pool by subclassing :class:`PoolConformance` in
its own tests with a factory::

    from manymap.launcher.testing import PoolConformance

    class TestThreadPool(PoolConformance):
        def make_pool(self, nodes=2, **options):
            return ThreadPool(nodes, **options)

Every test is bounded: waits carry timeouts, and a test that still hangs
dumps every thread's traceback and ends the run (see ``_guards.py``).
The tasks come from :mod:`manymap.launcher.testing._tasks`, importable by
any worker.
"""

from __future__ import annotations

import pytest

from manymap.launcher.testing._base import PoolSuite
from manymap.launcher.testing._suite_calls import CallOptionsConformance
from manymap.launcher.testing._suite_compat import CompatConformance
from manymap.launcher.testing._suite_config import PoolConfigConformance
from manymap.launcher.testing._suite_errors import ErrorConformance
from manymap.launcher.testing._suite_futures import FutureConformance
from manymap.launcher.testing._suite_lifecycle import LifecycleConformance
from manymap.launcher.testing._suite_maps import MapConformance
from manymap.launcher.testing._suite_mp import MultiprocessingConformance
from manymap.launcher.testing._suite_pathos import PathosConformance
from manymap.launcher.testing._suite_progress import ProgressConformance
from manymap.launcher.testing._suite_timeouts import TimeoutConformance

__all__ = ["PoolConformance"]


class PoolConformance(
    MapConformance,
    ErrorConformance,
    TimeoutConformance,
    LifecycleConformance,
    FutureConformance,
    ProgressConformance,
    CompatConformance,
    CallOptionsConformance,
    PoolConfigConformance,
    MultiprocessingConformance,
    PathosConformance,
    PoolSuite,
):
    """The contract of :class:`~manymap.launcher.AbstractWorkerPool`, as tests.

    Each concept's tests live in a mixin of their own (``_suite_*.py``):
    maps and inputs, task errors, timeouts and retries, the lifecycle,
    futures and asyncio, progress and stats, per-call options, the
    configuration, ``multiprocessing.Pool``'s and pathos' surfaces, and
    :class:`CompatConformance`: the ``concurrent.futures`` view
    (``pool.executor``) and schwimmbad's surface.

    Subclasses implement :meth:`make_pool`. Class attributes tune the suite
    to what a pool can do:

    Attributes:
        nodes: the pool size the suite asks for.
        slow_task: seconds a task sleeps to outlive a timeout; keep it short:
            a thread pool abandons the thread, which sleeps on in the
            background of the following tests.
        timeout: the per-task timeout the suite sets (well above a quick
            task's start-up cost on this pool).
        concurrent: whether work runs apart from the caller; a serial pool
            finishes each call before it returns, so there is never pending
            work to cancel or wait for, and the suite checks that instead. It
            is the builtin ``map``: each item is read just before its task
            runs, so a failure ends the map (whatever the ``chunksize``).
    """

    # A thread pool abandons the thread of a task that timed out and says so in a
    # RuntimeWarning when it is closed: here that is what the timeout tests ask for.
    pytestmark = pytest.mark.filterwarnings(r"ignore:\w+ left \d+ threads? running:RuntimeWarning")

    nodes = 2
    concurrent = True
    slow_task = 3.0
    timeout = 1.0

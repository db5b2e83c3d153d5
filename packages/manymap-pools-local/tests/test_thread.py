"""ThreadPool and a task that times out and never ends: the pool abandons the thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap

WAIT = 30.0


def test_with_block_and_exit_do_not_wait_for_a_runaway_thread() -> None:
    # A real never-ending task (it waits on an event nobody sets): the with
    # block raises its TaskTimeoutError, warns at the user's line, and the
    # interpreter exits although the thread still runs.
    script = textwrap.dedent(
        """
        import threading
        from manymap.pools.local import ThreadPool

        never = threading.Event()
        with ThreadPool(2) as pool:
            pool.map(never.wait, [None], timeout=0.2)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "TaskTimeoutError: task 0 ran over its timeout of 0.2 s" in done.stderr
    assert (
        "<string>:6: RuntimeWarning: ThreadPool left 1 thread running (a task that timed out)" in done.stderr
    )


def test_pool_sizes_of_none_mean_the_default() -> None:
    import os

    from manymap.pools.local import ProcessPool, SerialPool, ThreadPool

    cores = os.cpu_count() or 1
    for pool in (
        ThreadPool(None),
        ThreadPool(nthreads=None),
        ThreadPool(processes=None),
        ThreadPool(nodes=None),
    ):
        assert pool.nodes == cores
    assert ProcessPool(ncpus=None).nodes == ProcessPool().nodes
    assert SerialPool(None).nodes == 1
    pool = ThreadPool(1)
    pool.nthreads = None
    assert pool.nodes == cores

"""A pool handed out as an executor behaves as the stdlib executors at interpreter exit.

These are CPython's ``test_interpreter_shutdown``,
``test_submit_after_interpreter_shutdown`` and ``test_hang_gh83386``
(``ExecutorShutdownTest``), which ``test_cpython_executor.py`` cannot run as
they are: their scripts import the executor class by name from
``concurrent.futures``. Here the same scripts build a manymap executor.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

POOLS = ["ThreadPool", "ProcessPool"]


def run(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("pool", POOLS)
def test_work_submitted_finishes_at_exit(pool: str) -> None:
    done = run(
        f"""
        import time
        from manymap.pools.local import {pool}

        def sleep_and_print(t, msg):
            time.sleep(t)
            print(msg, flush=True)

        if __name__ == "__main__":
            t = {pool}(5).executor
            t.submit(sleep_and_print, 1.0, "apple")
        """
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "apple", "")


@pytest.mark.parametrize("pool", POOLS)
def test_submit_after_interpreter_shutdown_is_refused(pool: str) -> None:
    done = run(
        f"""
        import atexit

        @atexit.register
        def run_last():
            try:
                t.submit(id, None)
            except RuntimeError:
                print("runtime-error")
                raise

        from manymap.pools.local import {pool}

        if __name__ == "__main__":
            t = {pool}(5).executor
            t.submit(id, 42).result()
        """
    )
    # CPython's test looks for "RuntimeError: cannot schedule new futures": the error
    # is a RuntimeError (the script prints "runtime-error") under manymap's name.
    assert (
        "manymap.launcher.ExecutorShutdownError: PoolExecutor.submit(): cannot schedule new futures"
        in done.stderr
    )
    assert done.stdout.strip() == "runtime-error"


@pytest.mark.parametrize("pool", POOLS)
def test_shutdown_without_waiting_does_not_hang_at_exit(pool: str) -> None:
    done = run(
        f"""
        import time
        from manymap.pools.local import {pool}

        def sleep_and_print(t, msg):
            time.sleep(t)
            print(msg, flush=True)

        if __name__ == "__main__":
            t = {pool}(3).executor
            t.submit(sleep_and_print, 1.0, "apple")
            t.shutdown(wait=False)
        """
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "apple", "")


def test_a_pool_used_as_a_pool_is_terminated_at_exit() -> None:
    # pathos' behaviour, kept for pool users: exit does not wait for their work
    done = run(
        """
        import time
        from manymap.pools.local import ProcessPool

        def sleep_and_print(t, msg):
            time.sleep(t)
            print(msg, flush=True)

        if __name__ == "__main__":
            pool = ProcessPool(2)
            pool.apipe(sleep_and_print, 30.0, "apple")
        """
    )
    assert (done.returncode, done.stdout.strip()) == (0, "")

"""Workers of the ``fork`` start method are forked without ``multiprocessing``'s
launcher (``_forked.py``), and the code a task runs sees what a
``multiprocessing`` child sees: its own ``current_process()``, its parent, no
inherited children, the after-fork hooks of the objects it inherited run, stdin
at ``/dev/null``, its own threads waited for at exit. Real forked workers, no mocks."""

from __future__ import annotations

import errno
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pool_helpers import worker_identity

from manymap.launcher import PoolClosedError
from manymap.launcher.testing import eventually, hang_guard, live_children, live_threads
from manymap.pools.local import ProcessPool, _procs

_queue: Any = None


def keep_queue(queue: Any) -> None:
    global _queue
    _queue = queue


def put(value: int) -> int:
    _queue.put(value)
    return value


def write_later(path: str) -> str:
    def late() -> None:
        time.sleep(0.5)
        Path(path).write_text("written")

    threading.Thread(target=late).start()  # not a daemon: the worker waits for it at exit
    return path


def test_a_task_sees_its_worker_as_multiprocessing_describes_it() -> None:
    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30,))
    child.start()  # the pool's owner has a child: its workers do not
    try:
        with hang_guard(), ProcessPool(1, context="fork") as pool:
            seen = pool.map(worker_identity, [0])[0]
    finally:
        child.kill()
        child.join()
    assert seen["name"].startswith("manymap-worker-")
    assert seen["daemon"] is False  # a task may start processes of its own
    assert seen["pid"] == seen["own pid"] != os.getpid()
    assert seen["parent"] == os.getpid()
    assert seen["parent alive"] is True
    assert seen["children"] == []
    assert seen["stdin"] == ""


def test_a_multiprocessing_queue_in_use_works_in_the_workers() -> None:
    # The queue's feeder thread runs in the parent: the worker's copy must forget it
    # (multiprocessing's after-fork hook), or what the worker puts is never sent.
    queue = multiprocessing.get_context("fork").Queue()
    queue.put(-1)
    assert queue.get(timeout=10) == -1
    with hang_guard(), ProcessPool(2, context="fork", initializer=keep_queue, initargs=(queue,)) as pool:
        assert pool.map(put, range(6)) == list(range(6))
        assert sorted(queue.get(timeout=10) for _ in range(6)) == list(range(6))


def test_a_worker_waits_for_the_threads_its_tasks_started(tmp_path: Path) -> None:
    target = tmp_path / "late"
    with hang_guard(), ProcessPool(1, context="fork") as pool:
        pool.pipe(write_later, str(target))
    assert target.read_text() == "written"  # join returned after the worker's thread ended


def test_a_fork_pool_loads_neither_multiprocessing_util_nor_subprocess() -> None:
    # multiprocessing's launcher imports them (2 ms before the first fork); the pool
    # must not, in a fresh interpreter that runs one map.
    code = textwrap.dedent(
        """
        import sys
        from manymap.pools.local import ProcessPool
        with ProcessPool(2, context="fork") as pool:
            assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
        print(sorted(name for name in ("multiprocessing.util", "subprocess") if name in sys.modules))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_other_start_methods_still_use_multiprocessing(context: str) -> None:
    with hang_guard(), ProcessPool(1, context=context) as pool:
        assert pool.map(worker_identity, [0])[0]["name"].startswith("manymap-worker-")


def test_a_fork_that_fails_breaks_the_pool_with_its_error_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first worker forks, the second cannot (the system is out of processes): the
    # call that started the pool raises the system's error, the first worker is stopped.
    real_fork = os.fork
    forks: list[int] = []

    def second_fails() -> int:
        if forks:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        forks.append(1)
        return real_fork()

    threads, children = live_threads(), live_children()
    pool = ProcessPool(2, context="fork")
    monkeypatch.setattr(os, "fork", second_fails)
    with hang_guard(), pytest.raises(BlockingIOError, match="temporarily unavailable"):
        pool.map(abs, [-1, -2])
    monkeypatch.undo()
    assert forks == [1]
    with pytest.raises(PoolClosedError):
        pool.map(abs, [-1])
    pool.join()
    assert eventually(lambda: live_children() <= children)
    assert eventually(lambda: live_threads() <= threads)


def test_a_worker_the_pool_cannot_watch_is_killed_and_the_start_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Out of descriptors after the fork: no pidfd of the new worker, so its death would go
    # unseen. It is killed and reaped, and the call that started the pool says why.
    children = live_children()
    pool = ProcessPool(1, context="fork")  # pidfds work here: it forks its own workers
    monkeypatch.setattr(_procs, "open_pidfd", lambda pid: None)
    with hang_guard(), pytest.raises(OSError, match="cannot watch its new worker"):
        pool.map(abs, [-1])
    monkeypatch.undo()
    pool.join()
    assert live_children() <= children  # reaped at once, not left to the pool's end

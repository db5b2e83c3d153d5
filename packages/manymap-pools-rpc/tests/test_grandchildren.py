"""A task with children (fault table, issue 12 row 1, the RPC half).

The task's children inherit its ppft worker's pipes, so the end of the
worker's stdout never comes while they live: the server must see the
worker's death through something they cannot hold open (its pidfd), and kill
them with it, also when the task times out. Real processes, real SIGKILL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from manymap_testhosts import process_gone, wait_until
from manymap_testhosts._common import kill_pids

from manymap.launcher import TaskTimeoutError, WorkerLostError
from manymap.pools.rpc import ParallelPool

WAIT = 60.0  # seconds; the hang these tests catch lasts as long as the children (600 s)


def fork_then_die(path: str) -> None:
    """Fork a child that holds the worker's pipes, then SIGKILL the worker."""
    import os
    import signal
    import time

    child = os.fork()
    if child == 0:
        time.sleep(600)
        os._exit(0)
    Path(path).write_text(str(child))
    os.kill(os.getpid(), signal.SIGKILL)


def subprocess_then_die(path: str) -> None:
    """Start a subprocess (it inherits stdout), then SIGKILL the worker."""
    import os
    import signal
    import subprocess

    child = subprocess.Popen(["sleep", "600"])
    Path(path).write_text(str(child.pid))
    os.kill(os.getpid(), signal.SIGKILL)


def subprocess_then_sleep(path: str) -> None:
    """Start a subprocess, then run past the timeout."""
    import subprocess
    import time

    child = subprocess.Popen(["sleep", "600"])
    Path(path).write_text(str(child.pid))
    time.sleep(600)


def nested_pool_then_die(path: str) -> None:
    """Start a nested multiprocessing pool (its workers inherit the pipes), then SIGKILL the worker."""
    import multiprocessing
    import os
    import signal

    pool = multiprocessing.get_context("fork").Pool(1)
    pids = pool._pool[0].pid  # type: ignore[attr-defined]
    Path(path).write_text(str(pids))
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def pool() -> Iterator[ParallelPool]:
    with ParallelPool(1) as pool:
        yield pool


def _child(path: Path) -> int:
    return int(path.read_text())


@pytest.mark.parametrize(
    "task",
    [fork_then_die, subprocess_then_die, nested_pool_then_die],
    ids=["fork", "subprocess", "nested-pool"],
)
def test_a_worker_killed_with_children_alive_is_worker_lost_and_they_die(
    pool: ParallelPool, tmp_path: Path, task: Callable[[str], None]
) -> None:
    path = tmp_path / "child"
    try:
        with pytest.raises(WorkerLostError, match="SIGKILL"):
            pool.amap(task, [str(path)]).get(timeout=WAIT)  # a hang is a ResultTimeoutError
        wait_until(lambda: process_gone(_child(path)), WAIT, "the task's child to be killed")
        assert pool.map(abs, [-1, -2]) == [1, 2]  # and the connection goes on with a fresh worker
    finally:
        if path.exists():
            kill_pids([_child(path)])


def test_a_timed_out_tasks_children_are_killed(pool: ParallelPool, tmp_path: Path) -> None:
    path = tmp_path / "child"
    try:
        with pytest.raises(TaskTimeoutError):
            pool.amap(subprocess_then_sleep, [str(path)], timeout=2).get(timeout=WAIT)
        wait_until(path.exists, WAIT, "the task to start its child")
        wait_until(lambda: process_gone(_child(path)), WAIT, "the timed-out task's child to be killed")
    finally:
        if path.exists():
            kill_pids([_child(path)])

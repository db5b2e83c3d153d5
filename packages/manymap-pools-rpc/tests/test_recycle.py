"""``ParallelPool(maxtasksperchild=n)`` and ``manymap-server --max-tasks-per-worker N``:
what a task changes in its process (here a resource limit) stays on its worker for
the next tasks, unless the worker is replaced after ``n`` tasks; on real servers,
local, over the loopback sshd, and started by hand."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from manymap_testhosts import SSHServer
from rpc_helpers import WAIT, ServerProcess, ssh_pool

from manymap.pools.rpc import ParallelPool, RPCServer

TASKS = 4


def _by_value() -> Callable[[int], tuple[int, int]]:
    def lower_the_limit(_: int) -> tuple[int, int]:
        """Lower this process's soft RLIMIT_NOFILE by one; its pid and the limit it found."""
        import os
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard))
        return os.getpid(), soft

    return lower_the_limit


lower_the_limit = _by_value()  # a nested function goes by value: the ssh host cannot import this module


def record(path: str, index: int) -> int:
    """Append ``index`` to the file at ``path`` (one line per run of the task)."""
    with open(path, "a") as file:
        file.write(f"{index}\n")
    return index * index


def run(pool: ParallelPool, chunksize: int = 1) -> tuple[list[int], list[int]]:
    """The pids and limits seen by :data:`TASKS` tasks, in order."""
    seen = pool.map(lower_the_limit, range(TASKS), chunksize=chunksize, timeout=WAIT)
    return [pid for pid, _ in seen], [limit for _, limit in seen]


def assert_kept(pids: list[int], limits: list[int]) -> None:
    """One worker ran every task, and each task found what the one before left."""
    assert len(set(pids)) == 1
    assert limits == [limits[0] - step for step in range(TASKS)]


def assert_fresh(pids: list[int], limits: list[int]) -> None:
    """Every task ran in a fresh process, which had the original limit."""
    assert len(set(pids)) == TASKS
    assert limits == [limits[0]] * TASKS


@contextlib.contextmanager
def closing(pool: ParallelPool) -> Iterator[ParallelPool]:
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


# --------------------------------------------------------------------------- the local server


def test_without_recycling_a_limit_stays_on_the_worker() -> None:
    with closing(ParallelPool(1)) as pool:
        assert_kept(*run(pool))


def test_maxtasksperchild_1_gives_every_task_a_fresh_process() -> None:
    with closing(ParallelPool(1, maxtasksperchild=1)) as pool:
        assert_fresh(*run(pool))
        assert_fresh(*run(pool))  # the function, cached by the client, reaches the fresh workers


def test_maxtasksperchild_counts_tasks_and_a_batch_finishes_first() -> None:
    with closing(ParallelPool(1, maxtasksperchild=2)) as pool:
        pids, limits = run(pool)
        assert pids[0] == pids[1] != pids[2] == pids[3]
        assert limits == [limits[0], limits[0] - 1] * 2
    with closing(ParallelPool(1, maxtasksperchild=1)) as pool:
        pids, limits = run(pool, chunksize=2)  # two tasks a batch: each batch in a process of its own
        assert pids[0] == pids[1] != pids[2] == pids[3]
        assert limits == [limits[0], limits[0] - 1] * 2


def test_recycling_loses_and_repeats_no_task(tmp_path: Path) -> None:
    log = tmp_path / "runs"
    count = 40
    with closing(ParallelPool(2, maxtasksperchild=3)) as pool:
        results = pool.map(record, [str(log)] * count, range(count), chunksize=1, timeout=WAIT)
        assert results == [index * index for index in range(count)]
    assert sorted(int(line) for line in log.read_text().split()) == list(range(count))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_maxtasksperchild_is_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"ParallelPool\(\): maxtasksperchild must be a positive integer"):
        ParallelPool(1, maxtasksperchild=bad)
    with pytest.raises(ValueError, match=r"RPCServer\(\): max_tasks_per_worker must be a positive integer"):
        RPCServer(max_tasks_per_worker=bad)


# --------------------------------------------------------------------------- over ssh


def test_over_ssh_without_recycling_a_limit_stays_on_the_worker(sshd: SSHServer) -> None:
    with closing(ssh_pool(sshd, 1)) as pool:
        assert_kept(*run(pool))


def test_over_ssh_maxtasksperchild_1_gives_every_task_a_fresh_process(sshd: SSHServer) -> None:
    with closing(ssh_pool(sshd, 1, maxtasksperchild=1)) as pool:
        assert_fresh(*run(pool))


# --------------------------------------------------------------------------- a server started by hand


@pytest.fixture
def recycling_server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, "--max-tasks-per-worker", "1")
    try:
        yield process
    finally:
        process.stop()


def test_a_server_started_by_hand_recycles_with_its_option(recycling_server: ServerProcess) -> None:
    pool = ParallelPool(0, servers=[recycling_server.address], secret=recycling_server.secret)
    with closing(pool) as pool:
        assert_fresh(*run(pool))


def test_a_host_port_server_keeps_its_own_setting(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        pool = ParallelPool(0, servers=[server.address], secret=server.secret, maxtasksperchild=1)
        with closing(pool) as pool:
            assert_kept(*run(pool))
    finally:
        server.stop()


@pytest.mark.parametrize("bad", ["0", "-3"])
def test_the_server_refuses_a_bad_max_tasks_per_worker(bad: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "manymap.pools.rpc", f"--max-tasks-per-worker={bad}"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=WAIT,
    )
    assert done.returncode == 2
    assert b"--max-tasks-per-worker must be at least 1" in done.stderr

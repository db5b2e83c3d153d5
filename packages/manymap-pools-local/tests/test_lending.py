"""A caller blocked on a call reads its worker's reply itself (``ManagedWorkerPool``'s
loans), and nothing about the call changes when it does: deaths, terminate, close,
and many callers at once, each with real worker processes (Ctrl-C on loan:
``test_process.py``'s ``test_ctrl_c_stops_the_call_and_its_workers``). The manager
waits on an idle worker's death signal only, and a worker looks for its next task
for a moment only: deaths of idle workers are still seen, and idle workers sleep."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from manymap.launcher import WorkerLostError
from manymap.launcher import _managed as managed
from manymap.launcher.testing import LendingConformance, cpu_seconds, eventually, hang_guard
from manymap.pools.local import ProcessPool, _procs


class TestProcessPoolLending(LendingConformance):
    def make_pool(self, nodes: int = 1, **options: Any) -> ProcessPool:
        return ProcessPool(nodes, **options)


@pytest.fixture
def long_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller keeps its loan for a whole minute: the manager sees the worker only after."""
    monkeypatch.setattr(managed, "_LEASE", 60.0)


def test_a_blocking_call_settles_in_the_callers_thread() -> None:
    finished_in: list[str] = []

    def listener(event: object) -> None:
        if getattr(event, "kind", None) is not None and event.kind.name == "FINISHED":  # type: ignore[attr-defined]
            finished_in.append(threading.current_thread().name)

    with hang_guard(), ProcessPool(2) as pool:
        calls = pool.with_options(progress=listener)
        assert [calls.pipe(pow, i, 2) for i in range(50)] == [i * i for i in range(50)]
        assert pool.apply(pow, (3, 3)) == 27
    # The manager thread may be busy for an occasional call, never for all of them.
    assert threading.main_thread().name in finished_in, set(finished_in)


def test_a_reply_later_than_the_lease_is_the_managers() -> None:
    with hang_guard(), ProcessPool(1) as pool:
        assert pool.pipe(time.sleep, 3 * managed._LEASE) is None
        assert pool.pipe(abs, -4) == 4


def test_many_callers_and_a_map_at_once_get_their_own_results() -> None:
    results: dict[int, list[int]] = {}

    def caller(serial: int) -> None:
        results[serial] = [pool.pipe(pow, serial * 1000 + i, 1) for i in range(200)]

    with hang_guard(), ProcessPool(2) as pool:
        threads = [threading.Thread(target=caller, args=(serial,)) for serial in range(6)]
        for thread in threads:
            thread.start()
        assert pool.map(abs, range(-5000, 0)) == list(range(5000, 0, -1))
        for thread in threads:
            thread.join()
    assert results == {serial: [serial * 1000 + i for i in range(200)] for serial in range(6)}


def test_a_worker_killed_on_loan_is_a_worker_lost_error(long_lease: None) -> None:
    with hang_guard(), ProcessPool(1) as pool:
        pid = pool.pipe(os.getpid)
        started = time.monotonic()
        with pytest.raises(WorkerLostError, match="SIGKILL"):
            pool.pipe(os.kill, pid, signal.SIGKILL)
        assert time.monotonic() - started < 10
        assert pool.pipe(abs, -1) == 1  # its replacement serves


def kill_self_leaving_a_child() -> None:
    """A task whose worker dies while a child it forked holds the worker's pipes open."""
    if os.fork() == 0:
        time.sleep(60)  # killed with the worker's process group long before; a bound if not
        os._exit(0)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_on_loan_is_lost_even_while_its_child_holds_the_pipe(long_lease: None) -> None:
    # No end of file on the reply pipe: the caller and the manager see the death
    # signal at once; the manager's sight of it waits (muted) for the caller's.
    with hang_guard(), ProcessPool(1) as pool:
        started = time.monotonic()
        with pytest.raises(WorkerLostError, match="SIGKILL"):
            pool.pipe(kill_self_leaving_a_child)
        assert time.monotonic() - started < 10
        assert pool.pipe(abs, -1) == 1


def test_idle_workers_sleep_after_their_last_reply() -> None:
    with hang_guard(), ProcessPool(2) as pool:
        pids = set(pool.map(lambda _: os.getpid(), range(2), chunksize=1))
        for _ in range(200):
            pool.pipe(abs, -1)
        before = {pid: cpu_seconds(pid) for pid in pids}
        time.sleep(1.0)  # idle: what is measured
        used = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
    assert all(seconds < 0.1 for seconds in used.values()), used  # a spin would take the whole second


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "sentinel"])
def test_an_idle_worker_that_dies_is_replaced(monkeypatch: pytest.MonkeyPatch, pidfd: bool) -> None:
    if not pidfd:
        monkeypatch.setattr(_procs, "open_pidfd", lambda pid: None)
    with hang_guard(), ProcessPool(1, context="fork") as pool:
        pid = pool.pipe(os.getpid)
        os.kill(pid, signal.SIGKILL)  # idle: the manager does not wait on its pipe
        assert eventually(lambda: not os.path.exists(f"/proc/{pid}"), timeout=10)  # seen, and reaped
        assert pool.pipe(os.getpid) != pid


def test_a_call_sent_straight_to_a_worker_is_retried_as_a_job(tmp_path: Path) -> None:
    marker = tmp_path / "died-once"

    def die_once() -> int:
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return os.getpid()

    with hang_guard(), ProcessPool(1, retries=1) as pool:
        first = pool.pipe(os.getpid)
        assert pool.pipe(die_once) != first  # its worker lost: run again on the replacement
        assert marker.exists()


def test_a_call_that_cannot_be_written_leaves_its_worker_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    # Say the shared memory for its arguments is full: the call fails, the worker stays usable.
    transmit = ProcessPool._transmit
    failures = [OSError(28, "No space left on device")]

    def full_once(pool: ProcessPool, *args: object) -> None:
        if failures:
            raise failures.pop()
        transmit(pool, *args)  # type: ignore[arg-type]

    with hang_guard(), ProcessPool(1) as pool:
        assert pool.pipe(abs, -1) == 1  # the worker is ready: the next call goes straight to it
        monkeypatch.setattr(ProcessPool, "_transmit", full_once)
        with pytest.raises(OSError, match="No space"):
            pool.pipe(abs, -2)
        assert pool.pipe(abs, -3) == 3
        assert not pool._scheduler.jobs


def test_a_ctrl_c_while_a_direct_call_is_sent_stops_it(
    monkeypatch: pytest.MonkeyPatch, long_lease: None
) -> None:
    # The Ctrl-C comes while the call is being sent, held until it is out and its
    # worker lent: it then stops the task (the call made a job, interrupted), gives the
    # worker back, and the pool closes at once, not after the 60-second lease or the task.
    transmit = ProcessPool._transmit

    def interrupted(pool: ProcessPool, *args: object) -> None:
        transmit(pool, *args)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGINT)

    with hang_guard(), ProcessPool(1) as pool:
        pid = pool.pipe(os.getpid)
        monkeypatch.setattr(ProcessPool, "_transmit", interrupted)
        started = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            pool.pipe(time.sleep, 30)
        monkeypatch.setattr(ProcessPool, "_transmit", transmit)
        assert eventually(lambda: not os.path.exists(f"/proc/{pid}"), timeout=10)  # its task stopped
        pool.close()
        pool.join()
        assert time.monotonic() - started < 10

"""ProcessPool beyond the contract: nesting, random streams, shared memory,
worker recycling, initializers and Ctrl-C."""

from __future__ import annotations

import mmap
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pool_helpers import (
    configure,
    configured,
    fail_first_mark_the_rest,
    inner_process_map,
    pid_once_two_met,
)

from manymap.launcher import PoolClosedError
from manymap.launcher.testing import eventually, hang_guard, live_children
from manymap.pools.local import ProcessPool, ThreadPool, random_seed, random_state


@pytest.fixture(autouse=True)
def _guard(request: pytest.FixtureRequest) -> Iterator[None]:
    with hang_guard(180, capture=request.config.pluginmanager.getplugin("capturemanager")):
        yield


def inner_thread_map(x: int) -> list[int]:
    with ThreadPool(2) as inner:
        return inner.map(abs, range(-x, 0))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_process_pool_inside_a_process_pool(context: str) -> None:
    with ProcessPool(2, context=context) as outer:
        assert outer.map(inner_process_map, [1, 2, 3]) == [[1], [2, 1], [3, 2, 1]]


def test_thread_pool_inside_a_forked_process_pool() -> None:
    with ThreadPool(2) as warm:  # the parent has live threads when it forks
        warm.map(abs, range(4))
        with ProcessPool(2, context="fork") as outer:
            assert outer.map(inner_thread_map, [2, 3]) == [[2, 1], [3, 2, 1]]


def default_size(_: Any) -> int:
    return ProcessPool().nodes


def test_nested_default_size_is_the_workers_share() -> None:
    with ProcessPool(2, context="fork") as outer:
        sizes = outer.map(default_size, range(2))
    assert sizes == [max(1, (os.cpu_count() or 1) // 2)] * 2


def draw(path: str) -> tuple[int, float, float]:
    """This worker's first draws, once two workers have each taken a task (a
    rendezvous in ``path``: a lone worker would otherwise run every task)."""
    with open(path, "a") as log:
        log.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + 30
    while len(set(Path(path).read_text().split())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid(), random.random(), float(np.random.random())


def test_every_worker_has_its_own_random_streams(tmp_path: Path) -> None:
    random.seed(1234)
    np.random.seed(1234)
    with ProcessPool(2, context="fork") as pool:
        draws = pool.map(draw, [str(tmp_path / "pids")] * 2, chunksize=1)
    first: dict[int, tuple[float, float]] = {}
    for pid, python, numpy in draws:
        first.setdefault(pid, (python, numpy))
    assert len(first) == 2
    (a, b) = first.values()
    assert a[0] != b[0]
    assert a[1] != b[1]


def test_random_helpers() -> None:
    random_seed(7)
    a = random.random(), float(np.random.random())
    random_seed(7)
    assert (random.random(), float(np.random.random())) == a
    assert random_state() is random
    generator = random_state("numpy", new=True, seed=3)
    assert isinstance(generator, np.random.RandomState)
    assert generator.randint(1000) == np.random.RandomState(3).randint(1000)
    assert random_state("random", new=True, seed="*") is not random


def double(array: Any) -> Any:
    return array * 2


def shm_files() -> set[str]:
    return {name for name in os.listdir("/dev/shm") if name.startswith("manymap-")}


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="this machine has no /dev/shm")
def test_large_arrays_travel_through_shared_memory() -> None:
    before = shm_files()
    arrays = [np.full(1_000_000, float(i)) for i in range(6)]  # 8 MB each
    with ProcessPool(2) as pool:
        results = pool.map(double, arrays, chunksize=1)
        mapped = pool.pipe(double, arrays[1])
    assert all(np.array_equal(r, a * 2) for r, a in zip(results, arrays, strict=True))
    base = mapped
    while getattr(base, "base", None) is not None or isinstance(base, memoryview):
        base = base.obj if isinstance(base, memoryview) else base.base
    assert isinstance(base, mmap.mmap), f"the result should sit in shared memory, not in {type(base)}"
    assert shm_files() == before, "no shared-memory file may be left behind"


def worker_pid(_: Any) -> int:
    return os.getpid()


def test_maxtasksperchild_recycles_workers() -> None:
    with ProcessPool(2, maxtasksperchild=2) as pool:
        pids = pool.map(worker_pid, range(12), chunksize=1)
    assert len(pids) == 12
    assert len(set(pids)) >= 6


def fail_to_configure() -> None:
    raise OSError("no database")


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_initializer(context: str) -> None:
    with ProcessPool(2, context=context, initializer=configure, initargs=("ready",)) as pool:
        assert pool.map(configured, range(4)) == [["ready"]] * 4


@pytest.mark.parametrize("context", ["spawn", "forkserver"])
def test_an_initializer_by_value_and_a_lock_reach_a_started_worker(context: str) -> None:
    # The start method pickles a worker's arguments with the stdlib pickler: the
    # initializer (a closure here) goes by value, its arguments as the stdlib Pool
    # sends them, so a multiprocessing lock is shared, not copied.
    lock = multiprocessing.get_context(context).Lock()
    label = "set by a closure"

    def setup(shared: Any) -> None:
        configure(label)
        with shared:
            pass

    with ProcessPool(1, context=context, initializer=setup, initargs=(lock,)) as pool:
        with lock:  # held here: a worker whose copy were unrelated would not wait
            result = pool.amap(configured, range(2))
            assert not result.wait(0.5)
        assert result.get(30) == [[label]] * 2


def test_failing_initializer_breaks_the_pool() -> None:
    pool = ProcessPool(2, initializer=fail_to_configure)
    with pytest.raises((OSError, PoolClosedError), match="no database"):
        pool.map(abs, range(10))
    with pytest.raises(PoolClosedError, match="broken"):
        pool.map(abs, range(3))
    pool.join()


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="context must be one of fork, spawn, forkserver"):
        ProcessPool(2, context="threads")
    with pytest.raises(ValueError, match="maxtasksperchild must be a positive integer"):
        ProcessPool(2, maxtasksperchild=0)
    with pytest.raises(TypeError, match="initializer must be callable"):
        ProcessPool(2, initializer="setup")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="conflicting pool sizes"):
        ProcessPool(2, ncpus=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nthreads'"):
        ProcessPool(nthreads=3)
    assert ProcessPool(ncpus=3).nodes == ProcessPool(processes=3).ncpus == 3


CTRL_C = textwrap.dedent(
    """
    import os, sys, time
    from manymap.launcher import _managed
    from manymap.pools.local import ProcessPool

    def nap(x):
        os.write(1, f"napping {os.getpid()}\\n".encode())  # one write: workers share the parent's stdout
        time.sleep(60)
        return x

    if __name__ == "__main__":
        _managed._LEASE = 60.0  # a pipe's whole wait is on loan (its worker lent to the caller)
        pool = ProcessPool(WORKERS)
        try:
            CALL
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            pool.close()
            pool.join()
            raise
    """
)


@pytest.mark.parametrize(
    ("workers", "call"),
    [
        (2, "pool.map(nap, range(4), chunksize=1)"),
        (1, "pool.pipe(nap, 0)"),
        (1, "pool.pipe(abs, 0); pool.pipe(nap, 0)"),  # a ready worker: sent straight, no job
    ],
    ids=["map", "pipe-on-loan", "pipe-direct"],
)
def test_ctrl_c_stops_the_call_and_its_workers(tmp_path: Path, workers: int, call: str) -> None:
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C.replace("WORKERS", str(workers)).replace("CALL", call))
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's job
    )
    try:
        assert process.stdout is not None
        # Every worker is in a task, so the parent is inside the call, inside its try.
        lines = [process.stdout.readline() for _ in range(workers)]
        if not all(line.startswith("napping") for line in lines):
            process.kill()
            _, err = process.communicate(timeout=60)
            raise AssertionError(f"the workers did not start their tasks: {lines}; stderr: {err}")
        pids = [int(line.split()[1]) for line in lines]
        assert _children(process.pid) >= set(pids)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the whole group gets SIGINT
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert "interrupted" in out, err
    assert "KeyboardInterrupt" in err
    assert process.returncode != 0
    assert eventually(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in pids)), "workers left behind"


def _children(pid: int) -> set[int]:
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        children.add(int(entry))
            except (OSError, IndexError):
                continue
    return children


def test_resize_keeps_results_right(tmp_path: Path) -> None:
    before = live_children()
    with ProcessPool(1) as pool:
        assert pool.map(worker_pid, range(4)) != []
        pool.nodes = 3
        # Each task waits until two workers have run one: only a grown pool can.
        assert len(set(pool.map(pid_once_two_met, [str(tmp_path)] * 3, chunksize=1))) >= 2
        pool.ncpus = 1
        assert pool.map(abs, range(-3, 0)) == [3, 2, 1]
    assert eventually(lambda: not (live_children() - before))


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_a_timeout_does_not_count_the_workers_start_up(context: str) -> None:
    # A worker that takes 2 s to start (a spawned interpreter on a loaded machine
    # can) must not time out a task of 0 s that was waiting for it.
    with hang_guard(), ProcessPool(1, context=context, initializer=time.sleep, initargs=(2.0,)) as pool:
        assert pool.map(abs, [-1, -2], timeout=1, chunksize=1) == [1, 2]


def test_a_forked_worker_without_an_initializer_is_ready_as_it_is_forked() -> None:
    # It reads its first batch once started, as a stdlib Pool worker reads its queue;
    # one with an initializer is sent nothing before it says READY (the test above).
    with hang_guard(), ProcessPool(2, context="fork") as pool:
        assert [worker.ready for worker in pool._workers] == [True, True]
        assert pool.map(abs, [-1, -2, -3], chunksize=1) == [1, 2, 3]
    with hang_guard(), ProcessPool(1, context="fork", initializer=time.sleep, initargs=(1.0,)) as pool:
        assert [worker.ready for worker in pool._workers] == [False]
        assert pool.map(abs, [-1]) == [1]


def test_a_failure_stops_the_map_before_its_worker_gets_another_batch(tmp_path: Path) -> None:
    # A worker's next batch goes out before the reply it sent is loaded, but not when
    # that reply carries a failure: the failure stops the map first (fail fast).
    with hang_guard(), ProcessPool(1) as pool, pytest.raises(ValueError, match="task 0 fails"):
        pool.map(fail_first_mark_the_rest, [(i, str(tmp_path)) for i in range(20)], chunksize=1)
    assert sorted(os.listdir(tmp_path)) == []


def test_the_workers_a_call_starts_are_forked_with_its_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pool started by its first call (not entered first) forks its workers with that
    # call's function: they run it at once, with the values it captured, never sent it.
    from manymap.pools.local import _wire

    sent: list[int] = []
    send = _wire.send

    def recorded(conn: Any, header: tuple[Any, ...], data: bytes = b"") -> None:
        sent.append(header[0])
        send(conn, header, data)

    monkeypatch.setattr(_wire, "send", recorded)
    k = 3
    with hang_guard():
        pool = ProcessPool(2, context="fork")
        try:
            assert pool.map(lambda x: x * k, range(10)) == [x * 3 for x in range(10)]
            assert _wire.FUNCTION not in sent
            assert _wire.RUN in sent
            assert pool.map(abs, [-1, -2]) == [1, 2]  # another function: sent as ever
            assert _wire.FUNCTION in sent
        finally:
            pool.close()
            pool.join()

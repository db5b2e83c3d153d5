"""Through a real ProcessPool: module globals by reference, process-bound state refused up front."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import state_helpers

from manymap.launcher import SerializationError
from manymap.pools.local import ProcessPool


@pytest.fixture
def pool() -> Iterator[ProcessPool]:
    with ProcessPool(2, context="spawn") as pool:
        yield pool


def test_closure_from_a_module_runs_on_the_workers_own_module_globals(pool: ProcessPool) -> None:
    state_helpers.SCALE = 1000  # the caller's state: spawned workers import their own module
    try:
        results = pool.map(state_helpers.make_counter(3), range(6))
    finally:
        state_helpers.SCALE = 1
    assert [value for value, _pid, _calls in results] == [3 * x for x in range(6)]
    by_worker: dict[int, list[int]] = {}
    for _value, pid, calls in results:
        by_worker.setdefault(pid, []).append(calls)
    for calls in by_worker.values():  # each worker counts on its own module's list
        assert sorted(calls) == list(range(1, len(calls) + 1))
    assert state_helpers.CALLS == [], "nothing ran on the caller's globals"


def test_closure_over_an_open_file_is_refused_before_anything_runs(pool: ProcessPool, tmp_path: Path) -> None:
    path = tmp_path / "results.txt"
    with open(path, "w") as handle:
        handle.write("kept\n")
        handle.flush()
        with pytest.raises(
            SerializationError, match=r"<closure handle>: manymap\.serialize\.dumps refuses an open file"
        ):
            pool.map(lambda x: handle.write(f"{x}\n"), range(4))
    assert path.read_text() == "kept\n"
    assert pool.stats().tasks == 0


def test_lock_argument_is_refused_naming_the_task(pool: ProcessPool) -> None:
    with pytest.raises(
        SerializationError, match=r"the argument of task 1: manymap\.serialize\.dumps refuses a lock"
    ):
        pool.map(repr, [1, threading.Lock(), 3])
    assert pool.stats().tasks == 0
    assert pool.map(repr, [1, 2]) == ["1", "2"]

"""Large task functions and shared arguments cross to the cluster once per map,
not once per task: counted by the real scheduler (a plugin that weighs every
task spec a client sends it, and the keys it holds) on an embedded cluster."""

from __future__ import annotations

import itertools
import os
import pickle
from collections.abc import Iterator
from typing import Any

import numpy
import pytest
from distributed import Client
from distributed.diagnostics.plugin import SchedulerPlugin

from manymap.launcher.testing import _tasks as tasks
from manymap.pools.dask import DaskPool

MiB = 1 << 20
TASKS = 50


class SpecBytes(SchedulerPlugin):
    """Scheduler plugin: the bytes of every task spec received (a task that only
    refers to another's result holds a reference to it, not its bytes), and how
    many times each shared payload was computed (put on a worker)."""

    name = "manymap-test-spec-bytes"

    def __init__(self) -> None:
        self.received = 0
        self.computed: dict[str, int] = {}
        self._counted: set[Any] = set()

    def update_graph(self, scheduler: Any, *, tasks: list[Any], **kwargs: Any) -> None:
        for key in tasks:  # the new tasks, and those they depend on
            state = scheduler.tasks.get(key)
            if state is not None and state.run_spec is not None and key not in self._counted:
                self._counted.add(key)
                self.received += len(pickle.dumps(state.run_spec, protocol=5))

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if str(key).startswith("manymap-shared-") and (start, finish) == ("processing", "memory"):
            self.computed[key] = self.computed.get(key, 0) + 1


def _read(dask_scheduler: Any) -> dict[str, Any]:
    plugin = dask_scheduler.plugins[SpecBytes.name]
    held = {
        str(key): (state.nbytes, len(state.who_has or ()))
        for key, state in dask_scheduler.tasks.items()
        if state.nbytes >= MiB
    }
    return {"received": plugin.received, "computed": dict(plugin.computed), "held": held}


@pytest.fixture
def watched() -> Iterator[tuple[DaskPool, Client]]:
    with DaskPool(2) as pool:
        assert pool.map(tasks.square, range(4), chunksize=1) == [0, 1, 4, 9]
        with Client(pool.scheduler_address, set_as_default=False) as watcher:
            watcher.register_plugin(SpecBytes())
            yield pool, watcher


def test_a_large_closure_and_a_shared_array_cross_once_per_map(watched: tuple[DaskPool, Client]) -> None:
    pool, watcher = watched
    blob = os.urandom(2 * MiB)  # the function closes over it
    table = numpy.arange(3 * MiB // 8, dtype=numpy.int64)  # every task gets it

    def lookup(x: int, array: Any) -> int:
        return x + len(blob) + int(array[x])

    expected = [x + len(blob) + x for x in range(TASKS)]
    assert pool.map(lookup, range(TASKS), itertools.repeat(table, TASKS), chunksize=1) == expected

    seen = watcher.run_on_scheduler(_read)
    big = len(blob) + table.nbytes
    # once (not TASKS times, nor once per worker): the specs hold little else
    assert big <= seen["received"] < big + MiB, seen
    assert sorted(seen["computed"].values()) == [1, 1], seen
    shared = {key: found for key, found in seen["held"].items() if key.startswith("manymap-shared-")}
    assert len(shared) == 2, seen["held"]
    sizes = sorted(size for size, _ in shared.values())  # the function's payload, the array
    assert sizes == [pytest.approx(len(blob), rel=0.01), pytest.approx(table.nbytes, rel=0.01)], sizes
    assert all(holders >= 1 for _, holders in shared.values()), shared

    # the next map with the same function and array sends neither again
    assert pool.map(lookup, range(TASKS), itertools.repeat(table, TASKS), chunksize=1) == expected
    again = watcher.run_on_scheduler(_read)
    assert again["received"] - seen["received"] < MiB, again
    assert again["computed"] == seen["computed"]


def test_big_arguments_of_their_own_travel_with_their_task(watched: tuple[DaskPool, Client]) -> None:
    pool, watcher = watched
    arrays = [numpy.full(MiB // 8, x, dtype=numpy.int64) for x in range(4)]  # 1 MiB each, each once
    assert pool.map(lambda array: int(array[0]) * 2, arrays, chunksize=1) == [0, 2, 4, 6]
    seen = watcher.run_on_scheduler(_read)
    assert seen["computed"] == {}, seen  # no shared payload for what only one task gets
    assert seen["received"] >= 4 * MiB


def test_a_shared_buffer_is_each_tasks_own_writable_copy(watched: tuple[DaskPool, Client]) -> None:
    pool, _ = watched
    table = numpy.zeros(MiB // 8, dtype=numpy.int64)

    def bump(x: int, array: Any) -> int:
        array[0] += x  # the task's own copy, as in band: no other task sees it
        return int(array[0])

    assert pool.map(bump, range(1, 9), itertools.repeat(table, 8), chunksize=1) == list(range(1, 9))
    assert table[0] == 0


def test_a_shared_payload_outlives_the_worker_that_held_it() -> None:
    from manymap.launcher import TaskTimeoutError

    blob = os.urandom(MiB)

    def slow(x: float) -> int:
        return len(blob) + len(str(tasks.sleep_then(x, x)))

    with DaskPool(1) as pool:  # one worker: the only holder of the shared function
        assert pool.map(slow, [0, 0]) == [MiB + 1, MiB + 1]
        with pytest.raises(TaskTimeoutError):
            pool.map(slow, [60], timeout=1.0)  # its worker is killed, the payload with it
        assert pool.map(slow, [0, 0, 0], chunksize=1) == [MiB + 1] * 3

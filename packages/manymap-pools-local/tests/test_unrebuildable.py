"""A task's exception that pickles but cannot be rebuilt fails that task only,
with an error naming its type, its message and its traceback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pool_helpers
import pytest

from manymap.launcher import AbstractWorkerPool, EventKind, RemoteTaskError, RemoteTraceback, TaskEvent
from manymap.pools.local import ProcessPool, SerialPool, ThreadPool

WAIT = 60.0

POOLS: dict[str, Callable[[], AbstractWorkerPool]] = {
    "serial": SerialPool,
    "thread": lambda: ThreadPool(2),
    "process-fork": lambda: ProcessPool(2, context="fork"),
    "process-spawn": lambda: ProcessPool(2, context="spawn"),
}


@pytest.fixture(params=sorted(POOLS))
def pool(request: pytest.FixtureRequest) -> Iterator[AbstractWorkerPool]:
    pool = POOLS[request.param]()
    yield pool
    pool.terminate()
    pool.join()


def _check_error(pool: AbstractWorkerPool, error: BaseException) -> None:
    if isinstance(pool, ProcessPool):  # it crossed a process boundary
        assert isinstance(error, RemoteTaskError)
        assert error.type_name == "pool_helpers.QuotaError"
        assert error.message == "disk is over its quota of 3"
        assert "pool_helpers.QuotaError: disk is over its quota of 3" in str(error)
        assert "missing 1 required positional argument" in error.reason
        assert "raise QuotaError" in error.traceback_text
    else:  # nothing was pickled: the exception itself
        assert isinstance(error, pool_helpers.QuotaError)
        assert error.limit == 3
    assert isinstance(error.__cause__, RemoteTraceback)
    assert "raise QuotaError" in str(error.__cause__)
    assert any("task 3 failed" in note for note in getattr(error, "__notes__", []))


@pytest.mark.parametrize("chunksize", [1, 4])
def test_only_the_failing_task_fails(pool: AbstractWorkerPool, chunksize: int) -> None:
    events: list[TaskEvent] = []
    result = pool.amap(pool_helpers.square_but_3, range(8), chunksize=chunksize, progress=events.append)
    with pytest.raises(Exception) as caught:
        result.get(WAIT)
    _check_error(pool, caught.value)
    finished = {event.index for event in events if event.kind is EventKind.FINISHED}
    failed = {event.index for event in events if event.kind is EventKind.FAILED}
    assert failed == {3}
    assert {0, 1, 2} <= finished  # the batch-mates of task 3 kept their results


@pytest.mark.parametrize("chunksize", [1, 4])
def test_imap_yields_the_batch_mates_first(pool: AbstractWorkerPool, chunksize: int) -> None:
    results = pool.imap(pool_helpers.square_but_3, range(8), chunksize=chunksize)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    with pytest.raises(Exception) as caught:
        next(results)
    _check_error(pool, caught.value)
    assert pool.map(pool_helpers.square_but_3, [4, 5]) == [16, 25]

"""ParallelPool (local ppft workers): a task's exception that pickles but cannot be
rebuilt fails that task only, with an error naming its type, message and traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import unrebuildable_helpers as helpers

from manymap.launcher import EventKind, RemoteTaskError, RemoteTraceback, TaskEvent
from manymap.pools.rpc import ParallelPool

WAIT = 60.0


@pytest.fixture(scope="module")
def pool() -> Iterator[ParallelPool]:
    pool = ParallelPool(2)
    yield pool
    pool.terminate()
    pool.join()


def _check_error(error: BaseException) -> None:
    assert isinstance(error, RemoteTaskError)
    assert error.type_name == "unrebuildable_helpers.QuotaError"
    assert error.message == "disk is over its quota of 3"
    assert "missing 1 required positional argument" in error.reason
    assert "raise QuotaError" in error.traceback_text
    assert isinstance(error.__cause__, RemoteTraceback)
    assert any("task 3 failed" in note for note in getattr(error, "__notes__", []))


@pytest.mark.parametrize("chunksize", [1, 4])
def test_only_the_failing_task_fails(pool: ParallelPool, chunksize: int) -> None:
    events: list[TaskEvent] = []
    result = pool.amap(helpers.square_but_3, range(8), chunksize=chunksize, progress=events.append)
    with pytest.raises(RemoteTaskError) as caught:
        result.get(WAIT)
    _check_error(caught.value)
    assert {event.index for event in events if event.kind is EventKind.FAILED} == {3}
    assert {0, 1, 2} <= {event.index for event in events if event.kind is EventKind.FINISHED}


@pytest.mark.parametrize("chunksize", [1, 4])
def test_imap_yields_the_batch_mates_first(pool: ParallelPool, chunksize: int) -> None:
    results = pool.imap(helpers.square_but_3, range(8), chunksize=chunksize)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    with pytest.raises(RemoteTaskError) as caught:
        next(results)
    _check_error(caught.value)
    assert pool.map(helpers.square_but_3, [4, 5]) == [16, 25]

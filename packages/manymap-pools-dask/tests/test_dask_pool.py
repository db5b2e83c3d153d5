"""What is DaskPool's own, beyond the conformance suite: serialization through
manymap.serialize (never Dask's pickling), the embedded cluster bound to
127.0.0.1, and its arguments."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from manymap.launcher import EventKind, SerializationError, TaskEvent
from manymap.launcher.testing import _fault_tasks as fault_tasks
from manymap.launcher.testing import _tasks as tasks
from manymap.pools.dask import DaskPool


@pytest.fixture(scope="module")
def pool() -> Iterator[DaskPool]:
    with DaskPool(2) as pool:
        yield pool


def test_lambdas_and_closures_run_as_on_every_pool(pool: DaskPool) -> None:
    offset = 10
    assert pool.map(lambda x: x + offset, range(4)) == [10, 11, 12, 13]

    def scale(x: int) -> int:
        return x * offset

    assert pool.pipe(scale, 3) == 30


def test_what_cannot_be_serialized_fails_before_dispatch_naming_the_task(pool: DaskPool) -> None:
    before = pool.stats().tasks
    with pytest.raises(SerializationError, match="task 2"):
        pool.map(tasks.square, [1, 2, threading.Lock(), 4])
    lock = threading.Lock()
    with pytest.raises(SerializationError, match="task function"):
        pool.map(lambda x: (lock, x), range(2))
    assert pool.stats().tasks == before  # nothing was sent


def test_the_embedded_cluster_listens_on_loopback_only(pool: DaskPool) -> None:
    pool.map(tasks.square, range(8), chunksize=1)
    assert (pool.scheduler_address or "").startswith("tcp://127.0.0.1:")
    workers = pool.stats().workers
    assert len(workers) >= 2
    assert all(name.startswith("tcp://127.0.0.1:") for name in workers), sorted(workers)
    link = pool.dashboard_link
    assert link is None or "127.0.0.1" in link, link


def test_a_worker_gone_as_the_pool_opens_is_left_out_and_any_other_failure_raised() -> None:
    # What the pool's identify broadcast gives back as it opens (Client.run(on_error="return")):
    # a worker killed just before (its connection reset) is not an error, a task's error is.
    from distributed.comm.core import CommClosedError

    from manymap.pools.dask._pool import _identified

    found = {
        "tcp://127.0.0.1:1": (11, "here", 2),
        "tcp://127.0.0.1:2": CommClosedError("Connection reset by peer"),
    }
    workers = _identified(found)
    assert [(w.ident, w.host, w.threads, w.info) for w in workers] == [("tcp://127.0.0.1:1", "here", 2, 11)]
    with pytest.raises(ImportError, match="no manymap here"):
        _identified({**found, "tcp://127.0.0.1:3": ImportError("no manymap here")})


def test_one_way_to_name_the_cluster() -> None:
    with pytest.raises(ValueError, match="one of address, cluster, scheduler_file"):
        DaskPool(address="tcp://127.0.0.1:8786", scheduler_file="scheduler.json")
    with pytest.raises(TypeError, match="address must be a string"):
        DaskPool(address=8786)  # type: ignore[arg-type]


def test_a_tls_address_needs_security() -> None:
    with pytest.raises(ValueError, match=r"DaskPool\(address='tls://10.0.0.1:8786'\) needs security="):
        DaskPool(address="tls://10.0.0.1:8786")
    with pytest.raises(ValueError, match="applies to a cluster it joins"):
        DaskPool(2, security=object())


def test_a_batch_held_by_a_worker_that_dies_runs_later_unrun_and_uncharged(tmp_path: Path) -> None:
    """A busy worker holds the next batch of its map in its Dask queue; killed
    in the batch it runs, it had not started the one it held: that batch goes
    back to the queue whole and runs once elsewhere; the batch it died in runs
    again task by task, uncharged, and the map succeeds."""
    events: list[TaskEvent] = []
    with DaskPool(2) as pool:
        found = pool.map(
            fault_tasks.count_run,
            [str(tmp_path)] * 16,
            range(16),
            [0] * 16,
            [True] * 16,
            chunksize=2,
            progress=events.append,
        )
    assert found == [x * x for x in range(16)]
    runs = [sum(entry.startswith(f"run-{x}-") for entry in os.listdir(tmp_path)) for x in range(16)]
    assert runs == [2] + [1] * 15
    assert not [event for event in events if event.kind in (EventKind.RETRIED, EventKind.FAILED)]
    starts = [sum(e.kind is EventKind.STARTED and e.index == x for e in events) for x in range(16)]
    assert starts == [2, 2] + [1] * 14  # 0-1: the batch it died in, then one by one


def test_small_outcomes_are_handed_over_through_the_scheduler_and_large_ones_fetched(pool: DaskPool) -> None:
    """A batch's outcome of at most HAND_OVER_MAX bytes goes to the pool as a
    scheduler event of its topic (no fetch from the worker); a larger one
    stays on the worker until the pool fetches it."""
    from manymap.pools.dask import _worker

    def handed() -> list[object]:
        events = pool._client.get_events(_worker.HANDED_OVER)
        return [message for _, message in events if message[0] == pool._pool_id]

    assert pool.pipe(tasks.square, 3) == 9  # (the pool started)
    fetched: list[int] = []
    fetch = pool._fetcher._fetch_task

    def counted(token: int, future: object) -> None:
        fetched.append(token)
        fetch(token, future)

    pool._fetcher._fetch_task = counted
    try:
        before = len(handed())
        assert pool.map(tasks.square, range(8), chunksize=2) == [x * x for x in range(8)]
        assert len(handed()) - before == 4  # one per batch
        assert fetched == []  # (the pool did not fetch them)
        before = len(handed())
        assert (
            pool.map(bytes, [_worker.HAND_OVER_MAX + 1] * 2, chunksize=1)
            == [bytes(_worker.HAND_OVER_MAX + 1)] * 2
        )
        assert len(handed()) == before
        assert len(fetched) == 2
    finally:
        pool._fetcher._fetch_task = fetch


@pytest.mark.parametrize("large", [False, True], ids=["handed-over", "fetched-first"])
def test_a_held_batch_that_kills_its_worker_takes_only_itself(tmp_path: Path, large: bool) -> None:
    """One worker runs the batch of tasks 0-3 and holds 4-7, whose task 5 kills
    it at once. Dask keeps 0-3's result on the worker until the pool fetches
    it, a round trip later; so the held batch first hands that result over
    (small) or waits until it was fetched (large). 0-3 run once, and only the
    batch the worker died in runs again."""

    def deadly_with_a_large_result(directory: str, x: int) -> bytes:  # (nested: sent by value)
        fault_tasks.count_run(directory, x, 5, True)
        return bytes(20_000)  # over what a batch hands over through the scheduler

    with DaskPool(1) as pool:
        assert pool.queue_ahead  # (DaskPool's default)
        args = ([str(tmp_path)] * 8, range(8))
        if large:
            found = pool.map(deadly_with_a_large_result, *args, chunksize=4)
            assert found == [bytes(20_000)] * 8
        else:
            found = pool.map(fault_tasks.count_run, *args, [5] * 8, [True] * 8, chunksize=4)
            assert found == [x * x for x in range(8)]
    runs = [sum(entry.startswith(f"run-{x}-") for entry in os.listdir(tmp_path)) for x in range(8)]
    assert runs[:4] == [1] * 4, runs
    assert runs[5] == 2, runs

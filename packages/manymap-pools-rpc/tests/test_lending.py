"""A caller blocked on a call reads its connection's reply itself (the launcher's
loans), on a real local server, even when the worker answers at once."""

from __future__ import annotations

import selectors
import threading
import time
from typing import Any

import pytest

from manymap.launcher import EventKind, TaskEvent
from manymap.launcher import _managed as managed
from manymap.launcher.testing import eventually, hang_guard
from manymap.pools.rpc import ParallelPool
from manymap.pools.rpc._slot import Slot


def test_a_reply_that_comes_before_the_loan_is_still_the_callers(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a busy machine the worker may answer before the caller's thread goes on from
    sending the batch. The manager must leave that reply alone: had it read it, the
    caller would wait out its whole lease (50 ms) for a reply that was no longer there."""
    transmit = ParallelPool._transmit

    def answered_at_once(pool: ParallelPool, slot: Slot, *args: Any) -> None:
        transmit(pool, slot, *args)
        with selectors.DefaultSelector() as selector:  # the reply is there before we go on
            selector.register(slot.sock, selectors.EVENT_READ)
            selector.select(30)
        # The window under test, not a wait for an event: the manager thread gets the
        # time to return from its select, had it still watched the connection.
        time.sleep(0.01)

    monkeypatch.setattr(ParallelPool, "_transmit", answered_at_once)
    finished_in: list[str] = []

    def listener(event: TaskEvent) -> None:
        if event.kind is EventKind.FINISHED:
            finished_in.append(threading.current_thread().name)

    with hang_guard(), ParallelPool(1) as pool:
        calls = pool.with_options(progress=listener)
        assert [calls.pipe(pow, i, 2) for i in range(10)] == [i * i for i in range(10)]
    assert finished_in == [threading.main_thread().name] * 10


def fail(x: int) -> None:
    raise ValueError(f"no {x}")


def test_a_call_sent_straight_to_a_connection_is_told_apart_from_a_job_only_by_its_speed() -> None:
    # A pipe that finds a connection idle is no job (ManagedWorkerPool._call): its
    # value, its failure and its stats are those of the job it would have been.
    with hang_guard(), ParallelPool(1) as pool:
        assert pool.pipe(abs, -1) == 1  # the connection is idle from here on
        assert not pool._scheduler.jobs
        assert [pool.pipe(pow, i, 2) for i in range(20)] == [i * i for i in range(20)]
        assert pool.apply(divmod, (7, 2)) == (3, 1)
        with pytest.raises(ValueError, match="no 3") as direct:
            pool.pipe(fail, 3)
        with pytest.raises(ValueError, match="no 3") as queued:
            pool.apipe(fail, 3).get()
        assert direct.value.__notes__ == queued.value.__notes__  # "task 0 failed on worker ..."
        assert "in fail" in str(direct.value.__cause__)  # the remote traceback
        assert pool.stats().tasks == 1 + 20 + 1 + 2
        assert pool.stats().failed == 2
        assert not pool._scheduler.jobs


@pytest.mark.parametrize("ending", ["terminate", "close"])
def test_the_pool_ends_while_a_direct_call_waits_on_its_connection(
    monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    # The lease outlasts the test: terminate wakes the caller by ending its connection,
    # close waits for the task.
    monkeypatch.setattr(managed, "_LEASE", 60.0)
    outcome: list[object] = []

    def caller() -> None:
        try:
            outcome.append(pool.pipe(time.sleep, 0.5))
        except Exception as error:
            outcome.append(error)

    with hang_guard():
        pool = ParallelPool(1)
        assert pool.pipe(abs, -1) == 1
        thread = threading.Thread(target=caller)
        thread.start()
        assert eventually(lambda: pool._on_loan == 1, timeout=10)
        started = time.monotonic()
        getattr(pool, ending)()
        pool.join()
        thread.join()
        assert time.monotonic() - started < 10
    if ending == "close":
        assert outcome == [None]  # the task ran to its end
    else:
        assert len(outcome) == 1, outcome
        assert isinstance(outcome[0], Exception), outcome

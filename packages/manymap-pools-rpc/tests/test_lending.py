"""A caller blocked on a call reads its connection's reply itself (the launcher's
loans), on a real local server, even when the worker answers at once."""

from __future__ import annotations

import selectors
import threading
import time
from typing import Any

import pytest

from manymap.launcher import EventKind, TaskEvent
from manymap.launcher.testing import LendingConformance, hang_guard
from manymap.pools.rpc import ParallelPool
from manymap.pools.rpc._slot import Slot


class TestParallelPoolLending(LendingConformance):
    def make_pool(self, nodes: int = 1, **options: Any) -> ParallelPool:
        return ParallelPool(nodes, **options)


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

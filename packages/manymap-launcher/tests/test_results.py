"""Result handles outside of any pool: future conversion and cancellation; the
blocked caller's ``CallResult``; the ``Condition`` the bookkeeping notifies."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

from manymap.launcher import AsyncResult, ResultTimeoutError
from manymap.launcher._condition import Condition
from manymap.launcher.lowlevel import CallResult


def test_from_future_follows_the_source() -> None:
    source: concurrent.futures.Future[int] = concurrent.futures.Future()
    handle = AsyncResult.from_future(source)
    assert not handle.ready()
    with pytest.raises(ValueError, match="not ready"):
        handle.successful()
    with pytest.raises(ResultTimeoutError, match=r"not ready within 0\.01 s"):
        handle.get(0.01)
    source.set_result(5)
    assert handle.get(1) == 5
    assert handle.successful()


def test_from_future_carries_errors() -> None:
    source: concurrent.futures.Future[int] = concurrent.futures.Future()
    handle = AsyncResult.from_future(source)
    source.set_exception(KeyError("k"))
    with pytest.raises(KeyError):
        handle.get(1)
    assert not handle.successful()


def test_cancelling_the_handle_cancels_the_source() -> None:
    source: concurrent.futures.Future[int] = concurrent.futures.Future()
    handle = AsyncResult.from_future(source)
    assert handle.cancel()
    assert source.cancelled()
    assert handle.cancelled()


def test_cancelled_source_cancels_the_handle_and_wakes_waiters() -> None:
    source: concurrent.futures.Future[int] = concurrent.futures.Future()
    handle = AsyncResult.from_future(source)
    woke = threading.Event()

    def waiter() -> None:
        concurrent.futures.wait([handle], timeout=30)
        woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    source.cancel()
    assert woke.wait(10)
    thread.join(10)
    assert handle.cancelled()


def test_running_source_cannot_be_cancelled() -> None:
    source: concurrent.futures.Future[int] = concurrent.futures.Future()
    source.set_running_or_notify_cancel()
    handle = AsyncResult.from_future(source)
    assert not handle.cancel()
    assert not handle.cancelled()


def test_handle_is_awaitable() -> None:
    source: concurrent.futures.Future[str] = concurrent.futures.Future()
    handle = AsyncResult.from_future(source)

    async def main() -> str:
        asyncio.get_running_loop().call_later(0.01, source.set_result, "ok")
        return await asyncio.wait_for(handle, 10)

    assert asyncio.run(main()) == "ok"
    assert handle.as_future() is handle
    assert handle.wait(0) is True


def test_dropping_an_unfinished_imap_never_waits_for_the_pools_lock() -> None:
    # The garbage collector may finalize an abandoned iterator while this
    # very thread holds its pool's lock (any allocation under it can start a
    # collection): the finalizer must not wait for that lock, and the job is
    # still cancelled.
    from manymap.launcher.testing import ReferencePool, eventually

    pool = ReferencePool(1)
    release = threading.Event()
    results = pool.imap(release.wait, [30.0] * 4, chunksize=1)
    job = results._job

    def drop_under_the_lock() -> None:
        nonlocal results
        with pool._lock:
            del results  # the last reference: finalized here, in this thread

    dropper = threading.Thread(target=drop_under_the_lock, daemon=True)
    dropper.start()
    dropper.join(30)
    assert not dropper.is_alive(), "dropping the iterator deadlocked on the pool's lock"
    assert eventually(lambda: job._cancelled, timeout=30), "the dropped iterator's job was not cancelled"
    release.set()
    pool.close()
    pool.join()
    assert job.complete


# CallResult: the handle of a call its caller blocks on (only that caller waits).


def test_a_call_result_gives_the_value_delivered_from_another_thread() -> None:
    result: CallResult[int] = CallResult()
    threading.Timer(0.05, result._deliver, args=(42,)).start()
    assert result.get() == 42
    assert result.get() == 42  # read again: no second wait


def test_a_call_result_raises_the_error_delivered() -> None:
    result: CallResult[int] = CallResult()
    result._deliver(error=ValueError("the task's own"))
    with pytest.raises(ValueError, match="the task's own"):
        result.get()


def test_a_call_result_keeps_the_first_outcome() -> None:
    result: CallResult[int] = CallResult()
    result._cancel()
    result._deliver(7)  # a result a moment after the cancellation: ignored
    with pytest.raises(concurrent.futures.CancelledError):
        result.get()
    settled: CallResult[int] = CallResult()
    settled._deliver(7)
    settled._cancel()
    assert settled.get() == 7


def test_a_call_result_settled_by_racing_threads_is_settled_once() -> None:
    for _ in range(200):
        result: CallResult[int] = CallResult()
        start = threading.Barrier(3)

        def settle(value: int, result: CallResult[int] = result, start: threading.Barrier = start) -> None:
            start.wait()
            result._deliver(value)

        threads = [threading.Thread(target=settle, args=(value,)) for value in (1, 2, 3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert result.get() in (1, 2, 3)  # (a second release of its lock would have raised)


def test_a_condition_notifies_its_waiters_and_costs_nothing_without() -> None:
    lock = threading.Lock()
    condition = Condition(lock)
    with condition:
        condition.notify_all()  # nobody waits: nothing to do
        condition.notify()
    woken = threading.Event()

    def wait() -> None:
        with condition:
            condition.wait(30)
            woken.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    while True:
        with condition:
            if condition._waiters:  # type: ignore[attr-defined]
                condition.notify_all()
                break
    waiter.join(30)
    assert woken.is_set()

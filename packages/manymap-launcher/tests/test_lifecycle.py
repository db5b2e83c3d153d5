"""The pool's lifecycle as one state: transitions, a failed start, read-only from outside."""

from __future__ import annotations

import pytest

from manymap.launcher import PoolClosedError
from manymap.launcher._lifecycle import Lifecycle, PoolState
from manymap.launcher.lowlevel import ThreadWorkerPool


class FailingStartPool(ThreadWorkerPool):
    """A thread pool whose workers cannot be started (say, the system refuses threads)."""

    def _start_workers(self) -> None:
        raise OSError("no workers today")


def test_a_pool_whose_start_fails_is_broken_by_that_error() -> None:
    pool = FailingStartPool(2)
    with pytest.raises(OSError, match="no workers today"):
        pool.map(abs, range(4))
    # Without the failed-start hook the pool stayed "running" with no workers,
    # and this call's result never came.
    with pytest.raises(PoolClosedError, match=r"broken \(OSError\('no workers today'\)\)") as caught:
        pool.amap(abs, range(4)).get(timeout=30)
    assert isinstance(caught.value.__cause__, OSError)
    assert "terminated" in repr(pool)
    pool.join()  # nothing started: nothing to wait for


def test_a_broken_start_is_forgotten_by_clear() -> None:
    pool = FailingStartPool(1)
    with pytest.raises(OSError):
        pool.pipe(abs, -1)
    pool.clear()
    assert pool._state is PoolState.NEW
    with pytest.raises(OSError, match="no workers today"):  # it tries again, and fails again
        pool.pipe(abs, -1)
    pool.join()


def test_the_state_is_read_only_from_outside_the_base() -> None:
    with ThreadWorkerPool(1) as pool:
        assert pool.pipe(abs, -2) == 2
        with pytest.raises(AttributeError):
            pool._state = PoolState.TERMINATED  # type: ignore[misc]
        assert pool._state is PoolState.RUNNING


def test_transitions() -> None:
    life = Lifecycle()
    assert life.accepting
    assert not life.running
    assert life.begin()
    assert life.running
    assert not life.begin()  # started once
    assert life.close()
    assert life.closed
    assert not life.accepting
    assert not life.close()
    reason = RuntimeError("initializer failed")
    assert life.terminate(reason)
    assert life.terminated
    assert life.broken is reason
    assert not life.terminate()
    assert life.why_closed() == f"broken ({reason!r})"
    life.reset()
    assert life.state is PoolState.NEW
    assert life.broken is None
    assert str(life.state) == "new"

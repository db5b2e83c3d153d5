"""The conformance suite, proven against the launcher's reference pool."""

from __future__ import annotations

from typing import Any

from manymap.launcher.testing import PoolConformance, ReferencePool


class TestReferencePool(PoolConformance):
    def make_pool(self, nodes: int = 2, **options: Any) -> ReferencePool:
        return ReferencePool(nodes, **options)


def test_initializer_runs_in_every_thread() -> None:
    import threading

    seen: set[str] = set()
    lock = threading.Lock()

    def remember() -> None:
        with lock:
            seen.add(threading.current_thread().name)

    with ReferencePool(3, initializer=remember) as pool:
        pool.map(abs, range(30))
        names = set(pool.stats().workers)
    assert names <= seen
    assert len(seen) == 3


def test_failing_initializer_breaks_the_pool() -> None:
    import pytest

    from manymap.launcher import PoolClosedError

    def broken() -> None:
        raise OSError("no database")

    pool = ReferencePool(2, initializer=broken)
    # The work fails with the initializer's error, or, if the pool broke
    # before the map was queued, is refused with it as the cause.
    with pytest.raises((OSError, PoolClosedError), match="no database") as caught:
        pool.map(abs, range(10))
    error = caught.value if isinstance(caught.value, OSError) else caught.value.__cause__
    assert isinstance(error, OSError)
    assert any("initializer of worker" in note for note in getattr(error, "__notes__", []))
    with pytest.raises(PoolClosedError, match="broken"):
        pool.map(abs, range(3))
    pool.join()

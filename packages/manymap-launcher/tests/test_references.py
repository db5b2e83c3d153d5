"""Finished work keeps nothing alive: a dropped handle frees the task's function
and result at once (no reference cycle left for the garbage collector), and an
idle worker thread holds no finished task."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from manymap.launcher.testing import ReferencePool, eventually

WAIT = 30.0


class Thing:
    def method(self) -> Thing:
        return Thing()


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Only reference counting frees objects: what a cycle holds stays."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_dropped_future_frees_its_function_and_result(no_gc: None) -> None:
    with ReferencePool(2) as pool:
        pool.map(abs, range(10))
        thing = Thing()
        function_freed = weakref.ref(thing)
        result = pool.submit(thing.method).result(WAIT)
        result_freed = weakref.ref(result)
        del thing, result
        assert eventually(lambda: function_freed() is None and result_freed() is None)


def test_a_dropped_map_result_frees_its_values(no_gc: None) -> None:
    with ReferencePool(2) as pool:
        values = pool.amap(Thing.method, [Thing() for _ in range(4)]).get(WAIT)
        freed = [weakref.ref(value) for value in values]
        del values
        assert eventually(lambda: all(ref() is None for ref in freed))

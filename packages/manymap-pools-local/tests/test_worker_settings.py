"""A worker's settings (its share of the cores, how deep it is nested) travel in its
start arguments: starting workers never writes the parent's environment, so two
pools starting workers at once cannot see each other's settings."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pool_helpers import default_size, nested_leadership

from manymap.launcher.testing import hang_guard
from manymap.pools.local import ProcessPool

WAIT = 120.0
CORES = os.cpu_count() or 1


@pytest.fixture(autouse=True)
def _guard(request: pytest.FixtureRequest) -> Iterator[None]:
    with hang_guard(300, capture=request.config.pluginmanager.getplugin("capturemanager")):
        yield


@pytest.fixture
def environment_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every write to this process's environment (``os.environ[...] = ...``, ``pop``, ``del``)
    but pytest's own ``PYTEST_CURRENT_TEST``."""
    writes: list[tuple[str, str]] = []
    putenv, unsetenv = os.putenv, os.unsetenv

    def recording_putenv(key: Any, value: Any) -> None:
        if os.fsdecode(key) != "PYTEST_CURRENT_TEST":
            writes.append(("set", os.fsdecode(key)))
        putenv(key, value)

    def recording_unsetenv(key: Any) -> None:
        if os.fsdecode(key) != "PYTEST_CURRENT_TEST":
            writes.append(("unset", os.fsdecode(key)))
        unsetenv(key)

    monkeypatch.setattr(os, "putenv", recording_putenv)
    monkeypatch.setattr(os, "unsetenv", recording_unsetenv)
    return writes


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_two_pools_starting_workers_at_once_each_give_their_own_share(
    context: str, environment_writes: list[tuple[str, str]]
) -> None:
    before = dict(os.environ)
    sizes = {1: CORES, 2: max(1, CORES // 2)}  # nodes -> each worker's share
    pools = {nodes: ProcessPool(nodes, context=context, maxtasksperchild=1) for nodes in sizes}
    start = threading.Barrier(len(pools), timeout=WAIT)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def run(nodes: int) -> None:
        try:
            start.wait()
            # maxtasksperchild=1: every task is run by a newly started worker
            results[nodes] = pools[nodes].map(default_size, range(6), chunksize=1)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(nodes,)) for nodes in pools]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert not any(thread.is_alive() for thread in threads), "a map did not finish"
    finally:
        for pool in pools.values():
            pool.terminate()
            pool.join()
    assert not errors, errors
    assert results == {nodes: [share] * 6 for nodes, share in sizes.items()}
    assert environment_writes == [], "starting workers wrote the parent's environment"
    assert {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"} == {
        k: v for k, v in before.items() if k != "PYTEST_CURRENT_TEST"
    }


def test_a_nested_pool_keeps_its_workers_in_the_outer_workers_group(
    environment_writes: list[tuple[str, str]],
) -> None:
    with ProcessPool(1, context="spawn") as outer:
        group, inner = outer.map(nested_leadership, [0])[0]
    assert group != os.getpgid(0)  # a top-level worker leads a group of its own
    assert all(inner_group == group for _, inner_group in inner), (group, inner)
    assert environment_writes == []

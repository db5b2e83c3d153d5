"""ParallelPool's pathos surface (issue 11 §2) and per-task errors of a failed batch
(issue 12 row 9, the ParallelPool half), on real servers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rpc_helpers import ServerProcess

from manymap.launcher import EventKind, TaskEvent
from manymap.pools.rpc import ParallelPool

WAIT = 60.0


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    first = ServerProcess(tmp_path, workers=2)
    second = ServerProcess(tmp_path, workers=1, secret=first.secret)
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def workers_of(pool: ParallelPool, items: int) -> set[str]:
    """The workers that ran a map of ``items`` tasks."""
    seen: set[str] = set()

    def consume(event: TaskEvent) -> None:
        if event.kind is EventKind.FINISHED and event.worker:
            seen.add(event.worker)

    assert pool.map(abs, range(-items, 0), chunksize=1, progress=consume) == list(range(items, 0, -1))
    return seen


def test_servers_can_be_reassigned_and_take_effect_at_the_next_map(
    two_servers: tuple[ServerProcess, ServerProcess],
) -> None:
    first, second = two_servers
    with ParallelPool(0, servers=[first.address], secret=first.secret) as pool:
        assert all(name.startswith(first.address) for name in workers_of(pool, 8))
        assert pool.capacity == 2
        pool.servers = [second.address]
        assert pool.servers == (second.address,)
        assert all(name.startswith(second.address) for name in workers_of(pool, 8))
        assert pool.capacity == 1  # the first server's connections are closed
        pool.servers = (first.address, second.address)
        names = workers_of(pool, 30)
        assert {name.split("/")[0] for name in names} <= {first.address, second.address}
        assert pool.capacity == 3


def test_servers_reassigned_before_the_first_map(two_servers: tuple[ServerProcess, ServerProcess]) -> None:
    first, second = two_servers
    with ParallelPool(0, servers=[first.address], secret=first.secret) as pool:
        pool.servers = [second.address]
        assert all(name.startswith(second.address) for name in workers_of(pool, 4))


def test_servers_must_be_specs() -> None:
    pool = ParallelPool(1)
    with pytest.raises(TypeError, match="not one string"):
        pool.servers = "127.0.0.1:1"  # type: ignore[assignment]
    with pytest.raises(TypeError, match="neither a server spec"):
        pool.servers = [1]  # type: ignore[list-item]


def test_none_is_the_default_size() -> None:
    cores = os.cpu_count() or 1
    assert ParallelPool(nodes=None).nodes == cores
    assert ParallelPool(ncpus=None).nodes == cores
    with ParallelPool(1) as pool:
        assert pool.map(abs, [-1]) == [1]
        pool.nodes = None
        assert pool.nodes == cores
        assert pool.ncpus == cores
        pool.ncpus = None
        assert pool.nodes == cores
        assert pool.map(abs, range(-cores * 2, 0), chunksize=1) == list(range(cores * 2, 0, -1))


def explode() -> object:
    raise ValueError("this argument cannot be loaded here")


class LoadsNowhere:
    """An argument whose unpickling fails: its whole batch fails on the server."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return (explode, ())


def test_a_batch_failing_as_a_whole_gives_each_task_its_own_error_and_note() -> None:
    errors: dict[int, BaseException] = {}

    def consume(event: TaskEvent) -> None:
        if event.kind is EventKind.FAILED and event.error is not None:
            errors[event.index] = event.error

    with ParallelPool(1) as pool, pytest.raises(ValueError, match="cannot be loaded here") as caught:
        pool.map(id, [LoadsNowhere()] * 4, chunksize=4, progress=consume)
    assert sorted(errors) == [0, 1, 2, 3]
    assert len({id(error) for error in errors.values()}) == 4  # one object per task
    for index, error in errors.items():
        notes = [note for note in getattr(error, "__notes__", []) if "failed on worker" in note]
        assert len(notes) == 1, notes
        assert f"task {index} failed" in notes[0]
    assert caught.value is errors[0]

"""manymap.profile: tasks profiled in the workers, stats merged in the caller."""

from __future__ import annotations

import io
import os
import pstats
from pathlib import Path

import pytest

from manymap.pools.local import ProcessPool, SerialPool, ThreadPool
from manymap.profile import Profiled, Profiler, profile_map
from manymap.serialize import dumps, loads


def busy_leaf(n: int) -> int:
    return sum(i * i for i in range(n))


def busy(n: int) -> int:
    return busy_leaf(n) + busy_leaf(n // 2)


def _calls(stats: pstats.Stats, name: str) -> int:
    return sum(
        value[1]
        for (_file, _line, function), value in stats.stats.items()  # type: ignore[attr-defined]
        if function == name
    )


@pytest.mark.parametrize("pool_class", [SerialPool, ThreadPool, ProcessPool])
def test_stats_of_every_task_are_merged(pool_class: type) -> None:
    profiler = Profiler()
    with pool_class(2) if pool_class is not SerialPool else SerialPool() as pool:
        results = profiler.map(pool, busy, [1000, 2000, 3000, 4000])
        assert results == [busy(n) for n in (1000, 2000, 3000, 4000)]
        assert list(profiler.imap(pool, busy, [10, 20])) == [busy(10), busy(20)]
        assert profiler.pipe(pool, busy, 5) == busy(5)
    assert profiler.tasks == 7
    assert sum(profiler.workers.values()) == 7
    stats = profiler.stats(stream=io.StringIO())
    assert _calls(stats, "busy") == 7
    assert _calls(stats, "busy_leaf") == 14
    if pool_class is ProcessPool:
        pids = {int(worker.split(":")[1]) for worker in profiler.workers}
        assert os.getpid() not in pids, "the tasks were profiled in the worker processes"


def test_print_and_dump(tmp_path: Path) -> None:
    with ProcessPool(2) as pool:
        results, stats = profile_map(pool, busy, [100, 200])
    assert results == [busy(100), busy(200)]
    assert _calls(stats, "busy") == 2
    profiler = Profiler()
    with SerialPool() as pool:
        profiler.map(pool, busy, [10])
    out = io.StringIO()
    profiler.print_stats(limit=5, stream=out)
    assert "busy" in out.getvalue()
    profiler.dump_stats(tmp_path / "merged.prof")
    assert _calls(pstats.Stats(str(tmp_path / "merged.prof"), stream=io.StringIO()), "busy") == 1


def test_nothing_collected_and_bad_outcomes() -> None:
    profiler = Profiler()
    with pytest.raises(ValueError, match="no profiled task"):
        profiler.stats()
    with pytest.raises(TypeError, match="not the outcome"):
        profiler.collect(42)


def test_profiled_functions_serialize_and_errors_pass_through() -> None:
    wrapped = loads(dumps(Profiled(lambda x: x + 1)))
    assert Profiler().collect(wrapped(1)) == 2
    with SerialPool() as pool, pytest.raises(ZeroDivisionError):
        Profiler().map(pool, lambda x: 1 / x, [0])

"""Conformance: what the map family and ``pipe`` compute, whatever the input.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): order kept by ``map``/``imap``/``amap``, everything once by
``uimap``, an ``amap``'s list taken at the call, several iterables stopping
at the shortest as builtin ``map`` does, the star variants, ``pipe``'s
arguments, and inputs: empty, generators, an endless generator read lazily,
an abandoned ``imap``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from manymap.launcher import (
    AbstractWorkerPool,
    AsyncResult,
    MapResult,
)
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._base import WAIT
from manymap.launcher.testing._suite_part import SuitePart

__all__ = ["MapConformance"]


class MapConformance(SuitePart):
    """The map family and ``pipe``'s results, as tests (see the module)."""

    # ------------------------------------------------------------ ordering

    def test_map_keeps_order(self, pool: AbstractWorkerPool) -> None:
        assert pool.map(tasks.square, range(50)) == [x * x for x in range(50)]

    def test_map_with_chunksize(self, pool: AbstractWorkerPool) -> None:
        for chunksize in (1, 3, 7, 100):
            assert pool.map(tasks.square, range(20), chunksize=chunksize) == [x * x for x in range(20)]

    def test_imap_keeps_order(self, pool: AbstractWorkerPool) -> None:
        assert list(pool.imap(tasks.square, range(50))) == [x * x for x in range(50)]

    def test_amap_keeps_order(self, pool: AbstractWorkerPool) -> None:
        result = pool.amap(tasks.square, range(50))
        assert isinstance(result, MapResult)
        assert result.get(WAIT) == [x * x for x in range(50)]
        assert result.ready()
        assert result.successful()

    def test_an_async_map_takes_its_list_as_it_is_at_the_call(self, pool: AbstractWorkerPool) -> None:
        # The map reads the caller's list without copying it whole first: what it
        # needs is taken before amap returns, and a change after that changes nothing.
        items = list(range(40))
        handle = pool.amap(tasks.square, items)
        items[:] = [-1] * 40
        items.append(7)
        assert handle.get(WAIT) == [x * x for x in range(40)]

    def test_uimap_returns_everything_once(self, pool: AbstractWorkerPool) -> None:
        results = list(pool.uimap(tasks.square, range(100)))
        assert sorted(results) == [x * x for x in range(100)]

    def test_imap_results_arrive_before_the_input_ends(self, pool: AbstractWorkerPool) -> None:
        first = next(pool.imap(tasks.square, range(10)))
        assert first == 0

    # ---------------------------------------------------- several iterables

    def test_map_stops_at_the_shortest_iterable(self, pool: AbstractWorkerPool) -> None:
        xs, ys = range(10), [2, 3, 4]
        assert pool.map(pow, xs, ys) == list(map(pow, xs, ys))
        assert list(pool.imap(pow, xs, ys)) == list(map(pow, xs, ys))
        assert pool.amap(pow, xs, ys).get(WAIT) == list(map(pow, xs, ys))
        assert sorted(pool.uimap(pow, xs, ys)) == sorted(map(pow, xs, ys))

    def test_map_over_three_iterables(self, pool: AbstractWorkerPool) -> None:
        assert pool.map(tasks.describe, "ab", [1, 2, 3], (True, False)) == [
            (("a", 1, True), {}),
            (("b", 2, False), {}),
        ]

    def test_map_stops_at_the_shortest_generator(self, pool: AbstractWorkerPool) -> None:
        endless = itertools.count()
        assert pool.map(pow, endless, [2, 2, 2]) == [0, 1, 4]

    # ------------------------------------------------------- star variants

    def test_star_variants(self, pool: AbstractWorkerPool) -> None:
        pairs = [(2, 3), (3, 2), (10, 0)]
        expected = [8, 9, 1]
        assert pool.smap(pow, pairs) == expected
        assert list(pool.ismap(pow, iter(pairs))) == expected
        assert pool.asmap(pow, pairs).get(WAIT) == expected

    # ----------------------------------------------------------- pipe

    def test_pipe_passes_args_and_kwargs(self, pool: AbstractWorkerPool) -> None:
        assert pool.pipe(tasks.describe, 1, "two", three=3) == ((1, "two"), {"three": 3})

    def test_apipe_passes_args_and_kwargs(self, pool: AbstractWorkerPool) -> None:
        result = pool.apipe(tasks.describe, 1, key="value")
        assert isinstance(result, AsyncResult)
        assert result.get(WAIT) == ((1,), {"key": "value"})
        assert result.successful()

    def test_pipe_kwargs_named_like_options_reach_the_function(self, pool: AbstractWorkerPool) -> None:
        assert pool.pipe(tasks.describe, timeout=1, retries=2) == ((), {"timeout": 1, "retries": 2})

    # ------------------------------------------------------------- inputs

    def test_empty_input(self, pool: AbstractWorkerPool) -> None:
        assert pool.map(tasks.square, []) == []
        assert list(pool.imap(tasks.square, [])) == []
        assert list(pool.uimap(tasks.square, iter([]))) == []
        assert pool.amap(tasks.square, []).get(WAIT) == []
        assert pool.smap(pow, []) == []

    def test_generator_input(self, pool: AbstractWorkerPool) -> None:
        assert pool.map(tasks.square, (x for x in range(30))) == [x * x for x in range(30)]
        assert list(pool.imap(tasks.square, (x for x in range(30)))) == [x * x for x in range(30)]
        assert sorted(pool.uimap(tasks.square, (x for x in range(30)))) == [x * x for x in range(30)]

    def test_imap_reads_an_endless_generator_lazily(self, pool: AbstractWorkerPool) -> None:
        produced = 0

        def endless() -> Iterator[int]:
            nonlocal produced
            for x in itertools.count():
                produced = x + 1
                yield x

        results = pool.imap(tasks.square, endless())
        assert [next(results) for _ in range(100)] == [x * x for x in range(100)]
        # the window ahead is a few batches per worker, never the whole input
        assert produced < 100 + 2000, f"imap read {produced} items ahead for 100 results"
        unordered = pool.uimap(tasks.square, endless())
        assert len({next(unordered) for _ in range(50)}) == 50
        assert produced < 50 + 2000

    def test_abandoned_imap_lets_the_pool_go_on(self, pool: AbstractWorkerPool) -> None:
        results = pool.imap(tasks.square, itertools.count())
        assert next(results) == 0
        del results
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

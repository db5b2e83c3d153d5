"""Conformance: every way of submitting work takes the same per-call options.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): the map family takes ``chunksize``, ``timeout``, ``retries``
and ``progress`` as keywords, ``pipe``/``apipe``/``submit`` through
``pool.with_options(...)``, and an unknown option is a ``TypeError`` naming
the call. Whatever the path, a finished call leaves no reference cycle behind.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from manymap.launcher import AbstractWorkerPool, EventKind, TaskEvent, TaskTimeoutError
from manymap.launcher.testing import _tasks as tasks

__all__ = ["CallOptionsConformance"]

WAIT = 60.0

_MAPS: dict[str, Callable[[AbstractWorkerPool, dict[str, Any]], list[Any]]] = {
    "map": lambda pool, options: pool.map(tasks.square, range(6), **options),
    "imap": lambda pool, options: list(pool.imap(tasks.square, range(6), **options)),
    "uimap": lambda pool, options: sorted(pool.uimap(tasks.square, range(6), **options)),
    "amap": lambda pool, options: pool.amap(tasks.square, range(6), **options).get(WAIT),
    "smap": lambda pool, options: pool.smap(pow, [(x, 2) for x in range(6)], **options),
    "ismap": lambda pool, options: list(pool.ismap(pow, [(x, 2) for x in range(6)], **options)),
    "asmap": lambda pool, options: pool.asmap(pow, [(x, 2) for x in range(6)], **options).get(WAIT),
}

_SINGLES: dict[str, Callable[[Any, Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]] = {
    "pipe": lambda calls, function, args, kwds: calls.pipe(function, *args, **kwds),
    "apipe": lambda calls, function, args, kwds: calls.apipe(function, *args, **kwds).get(WAIT),
    "submit": lambda calls, function, args, kwds: calls.submit(function, *args, **kwds).result(WAIT),
}


class CallOptionsConformance:
    """The per-call options of every submission path, as tests (see the module)."""

    timeout: float
    slow_task: float

    def make_pool(self, nodes: int = 2, **options: Any) -> AbstractWorkerPool:
        raise NotImplementedError

    @pytest.mark.parametrize("method", sorted(_MAPS))
    def test_every_map_takes_every_option(self, pool: AbstractWorkerPool, method: str) -> None:
        events: list[TaskEvent] = []
        options = {"chunksize": 2, "timeout": WAIT, "retries": 1, "progress": events.append}
        assert _MAPS[method](pool, options) == [x * x for x in range(6)]
        finished = sorted(event.index for event in events if event.kind is EventKind.FINISHED)
        assert finished == list(range(6))
        via_view = pool.with_options(chunksize=3, retries=2)
        assert _MAPS[method](via_view, {"progress": None}) == [x * x for x in range(6)]  # type: ignore[arg-type]

    @pytest.mark.parametrize("method", sorted(_MAPS))
    def test_an_unknown_map_option_names_the_call(self, pool: AbstractWorkerPool, method: str) -> None:
        name = type(pool).__name__
        with pytest.raises(TypeError, match=rf"^{name}\.{method}\(\) got an unexpected option 'retry'; "):
            _MAPS[method](pool, {"retry": 1})

    def test_with_options_checks_what_it_is_given(self, pool: AbstractWorkerPool) -> None:
        name = type(pool).__name__
        with pytest.raises(TypeError, match=rf"^{name}\.with_options\(\) got an unexpected option 'retry'"):
            pool.with_options(retry=1)
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            pool.with_options(timeout=-1)
        with pytest.raises(ValueError, match="retries must be a non-negative integer"):
            pool.with_options(retries="2")
        assert "timeout=5" in repr(pool.with_options(timeout=5))

    @pytest.mark.parametrize("method", sorted(_SINGLES))
    def test_single_calls_take_options_and_pass_keywords_on(
        self, pool: AbstractWorkerPool, method: str
    ) -> None:
        events: list[TaskEvent] = []
        calls = pool.with_options(timeout=WAIT, retries=1, progress=events.append)
        # keywords named like options still reach the function
        assert _SINGLES[method](calls, tasks.describe, (1,), {"timeout": 2, "retries": 3}) == (
            (1,),
            {"timeout": 2, "retries": 3},
        )
        assert [event.kind for event in events if event.kind is not EventKind.SUBMITTED] == [
            EventKind.STARTED,
            EventKind.FINISHED,
        ]

    @pytest.mark.parametrize("method", sorted(_SINGLES))
    def test_single_calls_take_a_timeout(self, pool: AbstractWorkerPool, method: str) -> None:
        calls = pool.with_options(timeout=self.timeout)
        with pytest.raises(TaskTimeoutError, match="ran over its timeout"):
            _SINGLES[method](calls, tasks.sleep_then, (1, self.slow_task), {})
        assert pool.pipe(tasks.square, 3) == 9

    @pytest.mark.parametrize("method", sorted(_SINGLES))
    def test_single_calls_take_retries(self, pool: AbstractWorkerPool, method: str, tmp_path: Path) -> None:
        marker = str(tmp_path / "first-attempt")
        events: list[TaskEvent] = []
        calls = pool.with_options(timeout=self.timeout, retries=1, progress=events.append)
        assert _SINGLES[method](calls, tasks.sleep_once, (marker, self.slow_task), {}) == "again"
        assert [event.kind for event in events].count(EventKind.RETRIED) == 1

    def test_finished_calls_leave_no_cycles_for_the_garbage_collector(self, pool: AbstractWorkerPool) -> None:
        # Reference counting alone frees a finished call's bookkeeping: a pool called in
        # a loop must not set off the cyclic collector (a pause of milliseconds, every
        # few dozen calls). The pool's own objects are counted, not its engine's.
        def calls() -> None:
            for name in sorted(_MAPS):
                assert _MAPS[name](pool, {}) == [x * x for x in range(6)]
            for name in sorted(_SINGLES):
                assert _SINGLES[name](pool, tasks.square, (3,), {}) == 9
            assert pool.apply(tasks.square, (4,)) == 16

        calls()  # warm: what the first calls build stays (workers, caches)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            calls()
            gc.collect()
            ours = [type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("manymap.")]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        assert ours == []

"""cProfile across workers: every task profiled where it runs, the stats merged in the caller.

:class:`Profiler` wraps a function so that each call runs under
:mod:`cProfile` in whichever worker (thread, process, remote server) runs it;
the wrapper returns the task's value together with its raw profile, and the
profiler, back in the caller, keeps the value for the map's result and adds
the profile to its merged :class:`pstats.Stats`. Any pool works, since the
wrapper is an ordinary picklable callable.

    >>> from manymap.pools.local import ProcessPool
    >>> from manymap.profile import Profiler
    >>> profiler = Profiler()
    >>> with ProcessPool(2) as pool:  # doctest: +SKIP
    ...     results = profiler.map(pool, sorted, [[3, 1, 2]] * 8)
    >>> profiler.print_stats(limit=5)  # doctest: +SKIP
"""

from __future__ import annotations

import cProfile
import io
import marshal
import os
import pstats
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Profiled", "Profiler", "profile_map"]

T = TypeVar("T")

# From Python 3.12 a cProfile profiler covers every thread of its process
# (sys.monitoring), and only one can be active: tasks of one process are then
# profiled one at a time.
_ONE_AT_A_TIME = sys.version_info >= (3, 12)
_process_lock = threading.Lock()


class _Outcome:
    """What a profiled task sends back: its value, its raw stats and where it ran."""

    __slots__ = ("stats", "value", "worker")

    def __init__(self, value: Any, stats: bytes, worker: str) -> None:
        self.value = value
        self.stats = stats
        self.worker = worker

    def __reduce__(self) -> tuple[object, ...]:
        return (_Outcome, (self.value, self.stats, self.worker))


class Profiled(Generic[T]):
    """``function`` profiled: a call returns an outcome holding its value and its stats.

    Made by :meth:`Profiler.wrap`; picklable whenever ``function`` is.
    """

    __slots__ = ("function",)

    def __init__(self, function: Callable[..., T]) -> None:
        self.function = function

    def __call__(self, *args: Any, **kwds: Any) -> _Outcome:
        if _ONE_AT_A_TIME:
            with _process_lock:
                return self._profile(args, kwds)
        return self._profile(args, kwds)

    def _profile(self, args: tuple[Any, ...], kwds: dict[str, Any]) -> _Outcome:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            value = self.function(*args, **kwds)
        finally:
            profiler.disable()
        profiler.create_stats()
        worker = f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"
        return _Outcome(value, marshal.dumps(profiler.stats), worker)

    def __reduce__(self) -> tuple[object, ...]:
        return (Profiled, (self.function,))

    def __repr__(self) -> str:
        return f"Profiled({self.function!r})"


class _Loaded:
    """A raw stats dict in the shape :class:`pstats.Stats` loads (a profiler after ``create_stats``)."""

    def __init__(self, stats: dict[Any, Any]) -> None:
        self.stats = stats

    def create_stats(self) -> None:
        """Nothing to do: the stats are already made."""


class Profiler:
    """Collects the profiles of tasks run anywhere and merges them.

    Attributes:
        tasks: how many profiled tasks came back.
        workers: tasks per worker (``host:pid:thread``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: pstats.Stats | None = None
        self.tasks = 0
        self.workers: dict[str, int] = {}

    def wrap(self, function: Callable[..., T]) -> Profiled[T]:
        """``function`` profiled; give its outcomes to :meth:`collect`."""
        return Profiled(function)

    def collect(self, outcome: Any) -> Any:
        """Merge an outcome's stats and return its value."""
        if not isinstance(outcome, _Outcome):
            raise TypeError(f"not the outcome of a profiled task: {outcome!r}")
        loaded = pstats.Stats(_Loaded(marshal.loads(outcome.stats)), stream=io.StringIO())  # type: ignore[arg-type]
        with self._lock:
            if self._stats is None:
                self._stats = loaded
            else:
                self._stats.add(loaded)
            self.tasks += 1
            self.workers[outcome.worker] = self.workers.get(outcome.worker, 0) + 1
        return outcome.value

    def map(
        self, pool: Any, function: Callable[..., T], *iterables: Iterable[Any], **options: Any
    ) -> list[T]:
        """``pool.map(function, *iterables)``, every task profiled; returns the results."""
        return [self.collect(outcome) for outcome in pool.map(self.wrap(function), *iterables, **options)]

    def imap(
        self, pool: Any, function: Callable[..., T], *iterables: Iterable[Any], **options: Any
    ) -> Iterator[T]:
        """``pool.imap(...)``, every task profiled; results as they are read."""
        for outcome in pool.imap(self.wrap(function), *iterables, **options):
            yield self.collect(outcome)

    def pipe(self, pool: Any, function: Callable[..., T], /, *args: Any, **kwds: Any) -> T:
        """``pool.pipe(function, *args, **kwds)``, profiled."""
        result: T = self.collect(pool.pipe(self.wrap(function), *args, **kwds))
        return result

    def stats(self, stream: Any = None) -> pstats.Stats:
        """The merged stats of every task collected so far.

        Raises:
            ValueError: nothing was collected yet.
        """
        with self._lock:
            if self._stats is None:
                raise ValueError("no profiled task has come back yet")
            merged = pstats.Stats(stream=stream or sys.stdout)
            merged.add(self._stats)
            return merged

    def print_stats(self, sort: str = "cumulative", limit: int | None = 20, stream: Any = None) -> None:
        """Print the merged stats, sorted by ``sort``, the top ``limit`` lines."""
        stats = self.stats(stream)
        stats.sort_stats(sort)
        if limit is None:
            stats.print_stats()
        else:
            stats.print_stats(limit)

    def dump_stats(self, path: str | os.PathLike[str]) -> None:
        """Write the merged stats to ``path`` (readable by ``pstats``, snakeviz, ...)."""
        self.stats().dump_stats(path)


def profile_map(
    pool: Any, function: Callable[..., T], *iterables: Iterable[Any], **options: Any
) -> tuple[list[T], pstats.Stats]:
    """``pool.map(function, *iterables)`` with every task profiled: the results and the merged stats."""
    profiler = Profiler()
    results = profiler.map(pool, function, *iterables, **options)
    return results, profiler.stats()

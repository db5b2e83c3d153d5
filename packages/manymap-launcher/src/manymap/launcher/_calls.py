"""``pool.with_options(...)``: the per-call options for every way of submitting work.

The map family takes the options as keywords (``pool.map(f, xs, timeout=5)``),
but ``pipe``, ``apipe`` and ``submit`` pass their keywords to the function,
as pathos and ``concurrent.futures`` do, so a task can have a keyword named
``timeout``. :meth:`AbstractWorkerPool.with_options` gives every path the
same options: it returns a :class:`PoolCalls`, the pool's submission methods
with those options laid over the pool's defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from manymap.launcher._futures import AsyncResult, MapResult
    from manymap.launcher._pool import AbstractWorkerPool

    T = TypeVar("T")

__all__ = ["PoolCalls"]


class PoolCalls:
    """The submission methods of a pool, with per-call options set.

    Made by :meth:`AbstractWorkerPool.with_options`, e.g.
    ``pool.with_options(timeout=5, retries=1).submit(f, x)``. The options
    (``chunksize``, ``timeout``, ``retries``, ``progress``) are validated
    when it is made; options given to a map method override them. It holds
    no workers of its own: closing the pool closes it too.
    """

    __slots__ = ("_overrides", "pool")

    def __init__(self, pool: AbstractWorkerPool, overrides: Mapping[str, Any]) -> None:
        self.pool = pool
        self._overrides = dict(overrides)

    def __repr__(self) -> str:
        options = ", ".join(f"{name}={value!r}" for name, value in self._overrides.items())
        return f"<{type(self.pool).__name__}.with_options({options})>"

    def _merged(self, options: Mapping[str, Any]) -> dict[str, Any]:
        return {**self._overrides, **options}

    def map(self, function: Callable[..., T], *iterables: Iterable[Any], **options: Any) -> list[T]:
        """:meth:`AbstractWorkerPool.map` with these options."""
        return self.pool.map(function, *iterables, **self._merged(options))

    def imap(self, function: Callable[..., T], *iterables: Iterable[Any], **options: Any) -> Iterator[T]:
        """:meth:`AbstractWorkerPool.imap` with these options."""
        return self.pool.imap(function, *iterables, **self._merged(options))

    def uimap(self, function: Callable[..., T], *iterables: Iterable[Any], **options: Any) -> Iterator[T]:
        """:meth:`AbstractWorkerPool.uimap` with these options."""
        return self.pool.uimap(function, *iterables, **self._merged(options))

    def amap(self, function: Callable[..., T], *iterables: Iterable[Any], **options: Any) -> MapResult[T]:
        """:meth:`AbstractWorkerPool.amap` with these options."""
        return self.pool.amap(function, *iterables, **self._merged(options))

    def smap(self, function: Callable[..., T], iterable: Iterable[Iterable[Any]], **options: Any) -> list[T]:
        """:meth:`AbstractWorkerPool.smap` with these options."""
        return self.pool.smap(function, iterable, **self._merged(options))

    def ismap(
        self, function: Callable[..., T], iterable: Iterable[Iterable[Any]], **options: Any
    ) -> Iterator[T]:
        """:meth:`AbstractWorkerPool.ismap` with these options."""
        return self.pool.ismap(function, iterable, **self._merged(options))

    def asmap(
        self, function: Callable[..., T], iterable: Iterable[Iterable[Any]], **options: Any
    ) -> MapResult[T]:
        """:meth:`AbstractWorkerPool.asmap` with these options."""
        return self.pool.asmap(function, iterable, **self._merged(options))

    def pipe(self, function: Callable[..., T], /, *args: Any, **kwds: Any) -> T:
        """:meth:`AbstractWorkerPool.pipe` with these options (``kwds`` go to ``function``)."""
        return self.pool._call("pipe", function, args, kwds, self._overrides)

    def apipe(self, function: Callable[..., T], /, *args: Any, **kwds: Any) -> AsyncResult[T]:
        """:meth:`AbstractWorkerPool.apipe` with these options (``kwds`` go to ``function``)."""
        return self.pool._apply("apipe", function, args, kwds, self._overrides)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> AsyncResult[T]:
        """:meth:`AbstractWorkerPool.submit` with these options (``kwargs`` go to ``fn``)."""
        return self.pool._apply("submit", fn, args, kwargs, self._overrides)

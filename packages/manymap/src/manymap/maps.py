"""Map objects over any pool: ``Map``, ``Smap``, ``Imap``, ``Ismap``, ``Uimap``, ``Amap``, ``Asmap``.

A map object is a function: ``Map(ProcessPool, 4)(f, xs)`` is
``ProcessPool(4).map(f, xs)``. It holds the pool's *factory* (a class such as
:class:`~manymap.pools.local.ProcessPool`, ``multiprocessing.Pool``, or any
callable returning a pool) and its arguments, makes the pool at the first
call and reuses it until the pool is closed or cleared. A live pool object
may be given instead of a factory; it is then used as it is.

How the pool is called: a manymap (or pathos) pool by its own method names
(``map``, ``imap``, ``uimap``, ``amap``, ``smap``, ``ismap``, ``asmap``); a
pool with only the stdlib's names (``map``, ``imap``, ``imap_unordered``,
``map_async``, ``starmap``, ``starmap_async``) by those, several iterables
being zipped into a starmap since the stdlib maps take one iterable.

The flags follow ``pathos.maps``: ``close`` closes the pool after each call,
``join`` also waits for its workers (and implies ``close``), ``clear`` also
forgets the pool (and implies ``join``); a closed or cleared pool is replaced
by a new one at the next call. For the lazy maps the flags act once the
results have all been read, so that a closed pool never cuts a lazy map
short. Without flags the pool lives until :meth:`Map.close` /
:meth:`Map.join` / :meth:`Map.clear`, or ``with`` exits.

Map objects serialize (pickle, dill, :mod:`manymap.serialize`) as their
factory, arguments and flags, never as the pool they made, so a map object
can be a task's argument, or the task itself, in another map: nesting is a
call. A live manymap pool given to a map object ships as its configuration
too (every manymap pool pickles so): the far side builds its own pool.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, ClassVar

__all__ = ["Amap", "Asmap", "Imap", "Ismap", "Map", "Smap", "Uimap"]


class _Star:
    """``function(*item)``: a picklable star adapter for pools without a star method."""

    __slots__ = ("function",)

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self, item: Iterable[Any]) -> Any:
        return self.function(*item)

    def __reduce__(self) -> tuple[object, ...]:
        return (_Star, (self.function,))


def _is_factory(pool: object) -> bool:
    """A class, or a callable that is not itself a pool (``multiprocessing.Pool``)."""
    return isinstance(pool, type) or (callable(pool) and not hasattr(pool, "map"))


class Map:
    """``map(function, *iterables)`` on a pool, made lazily and reused: returns a list.

    Args:
        pool: a pool factory (a pool class such as ``ProcessPool``,
            ``multiprocessing.Pool``, any callable returning an object with a
            ``map`` method), a live pool, or ``None`` (or the builtin ``map``)
            for the builtin, serial map.
        *args: positional arguments for the factory (e.g. the number of workers).
        close: close the pool after each call (default ``False``).
        join: close it and wait for its workers after each call (default: ``clear``).
        clear: close, join and forget the pool after each call (default ``False``).
        **kwds: keyword arguments for the factory.

    Keyword arguments of a call go to the pool's method (``chunksize``,
    ``timeout``, ``retries``, ``progress`` on manymap pools).

    Example:
        >>> from manymap.maps import Map
        >>> from manymap.pools.local import ThreadPool
        >>> with Map(ThreadPool, 2) as squares:
        ...     squares(pow, [1, 2, 3], [2, 2, 2])
        [1, 4, 9]
    """

    #: (manymap/pathos method, stdlib method) used by this map object.
    _methods: ClassVar[tuple[str, str]] = ("map", "map")
    _star: ClassVar[bool] = False
    _lazy: ClassVar[bool] = False

    def __init__(
        self,
        pool: Any = None,
        *args: Any,
        close: bool | None = None,
        join: bool | None = None,
        clear: bool = False,
        **kwds: Any,
    ) -> None:
        self._clear = bool(clear)
        self._join = self._clear if join is None else bool(join)
        self._close = self._join if close is None else bool(close)
        if (self._clear and not self._join) or (self._join and not self._close):
            raise ValueError(
                "clear=True needs join and close, and join=True needs close (do not set them False)"
            )
        self.pool: Any = None if pool is map else pool
        if self.pool is not None and not _is_factory(self.pool) and (args or kwds):
            raise TypeError(f"{self.pool!r} is a live pool: give no arguments to make one")
        if self.pool is not None and not _is_factory(self.pool) and not hasattr(self.pool, "map"):
            raise TypeError(f"not a pool or a pool factory: {self.pool!r}")
        self.args = args
        self.kwds = kwds
        self._pool: Any = None
        self._spent = False  # the held pool is closed: the next call makes a new one
        self._lock = threading.Lock()

    # -------------------------------------------------------------- the pool

    @property
    def flags(self) -> dict[str, bool]:
        """The ``close`` / ``join`` / ``clear`` flags."""
        return {"close": self._close, "join": self._join, "clear": self._clear}

    def _get_pool(self) -> Any:
        with self._lock:
            if not _is_factory(self.pool):
                return self.pool
            if self._pool is None or self._spent:
                self._pool = self.pool(*self.args, **self.kwds)
                self._spent = False
            return self._pool

    def _held(self) -> Any:
        return self._pool if _is_factory(self.pool) else self.pool

    def close(self) -> None:
        """Close the pool to new work (the next call makes a new pool)."""
        pool = self._held()
        if pool is not None and hasattr(pool, "close"):
            pool.close()
            self._spent = True

    def join(self) -> None:
        """Wait for the workers of a closed pool to exit.

        Raises:
            ValueError: the pool is still running (as ``Pool.join`` does).
        """
        pool = self._held()
        if pool is not None and hasattr(pool, "join"):
            pool.join()

    def clear(self) -> None:
        """Stop the pool's workers now and forget the pool (the next call makes a new one)."""
        pool = self._held()
        if pool is None:
            return
        if hasattr(pool, "clear"):
            pool.clear()
        elif hasattr(pool, "terminate"):
            pool.terminate()
            if hasattr(pool, "join"):
                pool.join()
        if _is_factory(self.pool):
            self._pool = None
            self._spent = False

    def _after(self) -> None:
        if self._close:
            self.close()
        if self._join:
            self.join()
        if self._clear:
            self.clear()

    def __enter__(self) -> Map:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close and join the pool this map object made; terminate it on an exception."""
        if not _is_factory(self.pool) or self._pool is None:
            return
        if exc_type is not None:
            self.clear()
            return
        self.close()
        self.join()

    # ------------------------------------------------------------- the call

    def __call__(self, function: Callable[..., Any], *iterables: Iterable[Any], **kwds: Any) -> Any:
        """Map ``function`` over ``iterables`` on the pool (made at the first call)."""
        if self.pool is None:
            return self._builtin(function, iterables)
        pool = self._get_pool()
        ours, stdlib = self._methods
        if hasattr(pool, "uimap") or hasattr(pool, "amap"):
            call = self._native_call(pool, ours, function, iterables, kwds)
        else:
            call = self._stdlib_call(pool, stdlib, function, iterables, kwds)
        try:
            result = call()
        except BaseException:
            self._after()
            raise
        if self._lazy:
            return self._then_after(result)
        self._after()
        return result

    def _native_call(
        self,
        pool: Any,
        name: str,
        function: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        kwds: dict[str, Any],
    ) -> Callable[[], Any]:
        """The call on a manymap or pathos pool, whose maps take several iterables."""
        method = getattr(pool, name, None)
        if method is None and self._star:  # a pathos pool has no star methods
            method = getattr(pool, {"smap": "map", "ismap": "imap", "asmap": "amap"}[name], None)
            function = _Star(function)
        if method is None:
            raise TypeError(f"{type(self).__name__}: {pool!r} has no {name}() method")
        return lambda: method(function, *iterables, **kwds)

    def _stdlib_call(
        self,
        pool: Any,
        name: str,
        function: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        kwds: dict[str, Any],
    ) -> Callable[[], Any]:
        """The call on a pool with the stdlib's method names (one iterable per map)."""
        star = self._star or len(iterables) != 1
        one = self._star or len(iterables) == 1
        items: Iterable[Any] = iterables[0] if one else zip(*iterables, strict=False)
        if self._star and len(iterables) != 1:
            raise TypeError(f"{type(self).__name__} takes one iterable of argument tuples")
        if star:
            star_name = {"map": "starmap", "map_async": "starmap_async"}.get(name)
            if star_name is not None and hasattr(pool, star_name):
                method = getattr(pool, star_name)
                return lambda: method(function, items, **kwds)
            function = _Star(function)
        method = getattr(pool, name, None)
        if method is None:
            raise TypeError(
                f"{type(self).__name__}: {pool!r} has no {self._methods[0]}() nor {name}() method"
            )
        return lambda: method(function, items, **kwds)

    def _builtin(self, function: Callable[..., Any], iterables: tuple[Iterable[Any], ...]) -> Any:
        """The map without a pool: the builtin ``map`` (or ``starmap``), lazy or as a list."""
        results = itertools.starmap(function, *iterables) if self._star else map(function, *iterables)
        return results if self._lazy else list(results)

    def _then_after(self, iterator: Iterable[Any]) -> Iterator[Any]:
        """Yield the lazy results, then apply the flags (also when the reader stops early)."""
        try:
            yield from iterator
        finally:
            self._after()

    # ------------------------------------------------------- serialization

    def __getstate__(self) -> dict[str, Any]:
        """The factory, its arguments and the flags; never the live pool made from them."""
        return {
            "pool": self.pool,
            "args": self.args,
            "kwds": self.kwds,
            "close": self._close,
            "join": self._join,
            "clear": self._clear,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["pool"],
            *state["args"],
            close=state["close"],
            join=state["join"],
            clear=state["clear"],
            **state["kwds"],
        )

    def __repr__(self) -> str:
        pool = "builtins" if self.pool is None else getattr(self.pool, "__qualname__", repr(self.pool))
        args = ", ".join([*map(repr, self.args), *(f"{k}={v!r}" for k, v in self.kwds.items())])
        flags = ", ".join(name for name, on in self.flags.items() if on)
        return f"<{type(self).__name__} {pool}({args}){f' [{flags}]' if flags else ''}>"


class Smap(Map):
    """``function(*item)`` for every item of one iterable (``itertools.starmap``): returns a list.

    Pools without a star method get ``map`` of a star adapter.
    """

    _methods = ("smap", "map")
    _star = True


class Imap(Map):
    """The lazy, ordered map: returns an iterator of the results, in input order."""

    _methods = ("imap", "imap")
    _lazy = True


class Ismap(Map):
    """The lazy, ordered star map: an iterator of ``function(*item)``."""

    _methods = ("ismap", "imap")
    _star = True
    _lazy = True


class Uimap(Map):
    """The lazy, unordered map: an iterator of the results in the order they complete."""

    _methods = ("uimap", "imap_unordered")
    _lazy = True


class Amap(Map):
    """The asynchronous map: returns at once a result handle (``get(timeout)``, ``ready()``...).

    Without a pool the map runs serially on a
    :class:`~manymap.pools.local.SerialPool` so that the handle is the same kind.
    """

    _methods = ("amap", "map_async")

    def _builtin(self, function: Callable[..., Any], iterables: tuple[Iterable[Any], ...]) -> Any:
        from manymap.pools.local import SerialPool

        pool = SerialPool()
        try:
            return getattr(pool, self._methods[0])(function, *iterables)
        finally:
            pool.close()


class Asmap(Amap):
    """The asynchronous star map: a result handle for ``[function(*item) for item in iterable]``."""

    _methods = ("asmap", "map_async")
    _star = True

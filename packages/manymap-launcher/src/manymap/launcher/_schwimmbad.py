"""schwimmbad's pool surface, so code written for schwimmbad's pools runs unchanged.

schwimmbad (the pool interface of emcee and astropy users) asks a pool for
``size``, ``map(worker, tasks, callback=None)``, ``is_master()``,
``is_worker()``, ``wait()``, ``close()`` and ``with``. A manymap pool has
them all: :class:`SchwimmbadSurface` adds the first ones to
:class:`~manymap.launcher.AbstractWorkerPool`, and the pool's ``map`` takes
``callback=`` through :func:`map_with_callback`.

Every manymap pool lives in the process that made it, so it is always the
master: ``is_master()`` is true, ``is_worker()`` false and ``wait()`` (what
an MPI worker calls to serve tasks) returns at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from manymap.launcher._pool import AbstractWorkerPool

    T = TypeVar("T")

__all__ = ["SchwimmbadSurface", "map_with_callback"]


class SchwimmbadSurface:
    """The parts of schwimmbad's ``BasePool`` a manymap pool adds to its own."""

    @property
    def size(self) -> int:
        """The number of workers the pool spreads its tasks over (schwimmbad's ``size``)."""
        return self._capacity()

    @staticmethod
    def enabled() -> bool:
        """Whether the pool can be used here: always true (schwimmbad's ``enabled()``)."""
        return True

    def is_master(self) -> bool:
        """True: the process holding a manymap pool is the one that hands out the work."""
        return True

    def is_worker(self) -> bool:
        """False: a manymap pool's workers never run the caller's code."""
        return False

    def wait(self) -> None:
        """Return at once: only schwimmbad's MPI workers wait for work, and the
        process holding a manymap pool is the master (see :meth:`is_master`)."""

    def _capacity(self) -> int:
        raise NotImplementedError  # pragma: no cover - AbstractWorkerPool supplies it


def map_with_callback(
    pool: AbstractWorkerPool,
    function: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    callback: Callable[[T], object],
    options: dict[str, Any],
) -> list[T]:
    """``pool.map(function, *iterables, callback=callback, **options)``.

    ``callback(result)`` runs in the caller's thread for every result, in
    input order, as soon as that result and the ones before it are in; the
    list of all results is returned at the end. If a task fails, the
    callback has seen every result before it and the error is raised. If the
    callback raises, the tasks not yet started are cancelled and its error
    is raised.
    """
    if not callable(callback):
        raise TypeError(f"map() callback must be a callable taking one result, got {callback!r}")
    results = pool._lazy("map", function, iterables, options, star=len(iterables) > 1, ordered=True)
    collected: list[T] = []
    try:
        for value in results:
            callback(value)
            collected.append(value)
    finally:
        results.close()  # a no-op once every result is in
    return collected

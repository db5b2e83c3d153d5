"""``PoolExecutor``: a pool seen as a strict :class:`concurrent.futures.Executor`.

A manymap pool keeps pathos' ``map`` (a list, ``timeout`` per task), which is
not the ``map`` of :class:`concurrent.futures.Executor` (an iterator,
``timeout`` a deadline for the whole map). So the pool is not an
``Executor``; ``pool.executor`` is: a thin view over the same workers whose
every method keeps the stdlib's meaning.

- ``submit`` hands the call to the pool (its default options apply) and
  returns the pool's handle, a :class:`concurrent.futures.Future`.
- ``map`` submits every call at once, as the stdlib does, and returns an
  iterator that yields the results in order; past ``timeout`` seconds from
  the call it raises :class:`TimeoutError` and cancels the calls not yet
  started. ``chunksize`` sends that many calls to a worker at once (as
  ``ProcessPoolExecutor`` does); an error in a chunk is raised for the chunk.
- ``shutdown(wait, cancel_futures)`` shuts the pool down: the view and the
  pool share one lifecycle, so ``with pool.executor as executor:`` ends the
  pool's workers on exit, as ``with ProcessPoolExecutor() as executor:`` does.
- Work submitted after the shutdown raises :class:`ExecutorShutdownError`,
  a ``RuntimeError`` (the stdlib's error) that is also the pool's
  :class:`~manymap.launcher.PoolClosedError`.
- At interpreter exit, a pool that was handed out as an executor finishes
  the work submitted to it before the interpreter goes, as the stdlib
  executors do (an ``atexit`` hook shuts it down with ``wait=True``); a pool
  used only as a pool is terminated at exit, as pathos' pools are.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from manymap.launcher._errors import PoolClosedError

if TYPE_CHECKING:
    from manymap.launcher._pool import AbstractWorkerPool

__all__ = ["ExecutorShutdownError", "PoolExecutor"]

T = TypeVar("T")


class ExecutorShutdownError(PoolClosedError, RuntimeError):
    """Work was submitted to a :class:`PoolExecutor` whose pool is shut down.

    A ``RuntimeError``, as the stdlib executors raise, and a
    :class:`~manymap.launcher.PoolClosedError` (so also a ``ValueError``),
    as the pool itself raises.
    """


ExecutorShutdownError.__module__ = "manymap.launcher"  # tracebacks show where users import it from


class PoolExecutor(concurrent.futures.Executor):
    """A :class:`concurrent.futures.Executor` over the workers of a manymap pool.

    ``pool.executor`` returns one; ``PoolExecutor(pool)`` is the same. Code
    written for ``ThreadPoolExecutor`` / ``ProcessPoolExecutor`` runs
    unchanged on it: ``map`` returns an iterator and its ``timeout`` is a
    deadline for the whole map, futures work with
    :func:`concurrent.futures.wait`, :func:`~concurrent.futures.as_completed`
    and ``asyncio``'s ``loop.run_in_executor``.

    The view has no state of its own: shutting it down shuts the pool down,
    and the pool's default options (``timeout`` per task, ``retries``, ...)
    apply to what is submitted through it.

    Args:
        pool: the pool whose workers run the calls.
    """

    def __init__(self, pool: AbstractWorkerPool) -> None:
        self._pool = pool
        _finish_at_exit(pool)

    @property
    def pool(self) -> AbstractWorkerPool:
        """The pool whose workers run the calls."""
        return self._pool

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Schedule ``fn(*args, **kwargs)``; returns a :class:`concurrent.futures.Future`.

        Raises:
            ExecutorShutdownError: the executor (its pool) is shut down.
        """
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except PoolClosedError as error:
            raise self._shut("submit") from error.__cause__

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """``map(fn, *iterables)`` on the pool's workers, as :meth:`concurrent.futures.Executor.map`.

        Every call is submitted before this returns; the iterator yields the
        results in order.

        Args:
            fn: the callable, taking one item of each iterable.
            *iterables: the arguments; the map stops at the shortest.
            timeout: seconds from this call until every result must be in
                (``None``: no limit). Past it, the iterator raises
                :class:`TimeoutError` and the calls not yet started are
                cancelled.
            chunksize: calls sent to a worker at once.

        Raises:
            ValueError: ``chunksize`` is below 1.
            ExecutorShutdownError: the executor (its pool) is shut down.
        """
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be >= 1, got {chunksize!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        calls = zip(*iterables, strict=False)
        try:
            if chunksize == 1:
                futures: list[concurrent.futures.Future[Any]] = [
                    self._pool.submit(fn, *call) for call in calls
                ]
            else:
                futures = [
                    self._pool.asmap(fn, chunk, chunksize=len(chunk)) for chunk in _chunks(calls, chunksize)
                ]
        except PoolClosedError as error:
            raise self._shut("map") from error.__cause__
        results = _in_order(futures, deadline)
        return results if chunksize == 1 else itertools.chain.from_iterable(results)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the pool down, as :meth:`concurrent.futures.Executor.shutdown`.

        Args:
            wait: wait until the calls handed out are done and the workers exited.
            cancel_futures: cancel the calls that have not started.
        """
        self._pool.shutdown(wait, cancel_futures=cancel_futures)

    def __repr__(self) -> str:
        return f"<PoolExecutor of {self._pool!r}>"

    def _shut(self, method: str) -> ExecutorShutdownError:
        # chained to the reason of a broken pool, if it broke
        return ExecutorShutdownError(
            f"PoolExecutor.{method}(): cannot schedule new futures after shutdown of {self._pool!r}"
        )


_exiting: weakref.WeakSet[AbstractWorkerPool] = weakref.WeakSet()
_exit_lock = threading.Lock()
_hooked = False
_hook_pid = 0  # a forked child inherits the hook, not the pools' workers


def _finish_at_exit(pool: AbstractWorkerPool) -> None:
    """Shut ``pool`` down with ``wait=True`` at interpreter exit, as the stdlib executors.

    The hook is registered at the first executor view, after the pool
    packages' own exit handlers (which terminate their workers), so that
    ``atexit``, last in first out, runs it before them.
    """
    global _hooked, _hook_pid
    with _exit_lock:
        if _hook_pid != os.getpid():  # first view here, or the first in a forked child
            _exiting.clear()
            _hook_pid = os.getpid()
        _exiting.add(pool)
        if not _hooked:
            atexit.register(_shutdown_all)
            _hooked = True


def _shutdown_all() -> None:
    if _hook_pid != os.getpid():
        return  # a forked child: the pools it sees are its parent's
    for pool in list(_exiting):
        with contextlib.suppress(Exception):  # one broken pool must not keep the others' work
            pool.shutdown(wait=True)


def _chunks(calls: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := list(itertools.islice(calls, size)):
        yield chunk


def _in_order(futures: list[concurrent.futures.Future[Any]], deadline: float | None) -> Iterator[Any]:
    """The futures' results in order, within ``deadline``; cancels the rest when stopped.

    A generator (its first step runs at the first ``next``), so the caller
    has submitted everything before anything is awaited. A future is
    dropped as soon as its result is taken, so the iterator keeps no result
    alive.
    """
    futures.reverse()
    try:
        while futures:
            remaining = None if deadline is None else deadline - time.monotonic()
            yield _result(futures.pop(), remaining)  # no name holds the result while suspended
    finally:
        for future in futures:
            future.cancel()


def _result(future: concurrent.futures.Future[Any], timeout: float | None) -> Any:
    try:
        return future.result(timeout)
    finally:
        future.cancel()  # still pending only if its result timed out
        del future  # the future may hold the result's traceback cycle

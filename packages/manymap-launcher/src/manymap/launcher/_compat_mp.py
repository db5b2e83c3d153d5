"""``multiprocessing.Pool``'s methods on every manymap pool.

pathos' ``_ProcessPool`` is ``multiprocess.Pool``, and libraries document
``multiprocessing.Pool`` idioms (pymoo's ``StarmapParallelization(pool.starmap)``,
``apply_async`` with a ``callback`` that collects results), so every pool
also has ``apply``, ``apply_async``, ``map_async``, ``starmap``,
``starmap_async`` and ``imap_unordered`` with the stdlib's signatures. They
are the pool's own calls under the stdlib's names, returning manymap's
result handles (which have ``get(timeout)``, ``wait``, ``ready`` and
``successful`` as ``multiprocessing.pool.AsyncResult`` does), and take the
per-call options (``timeout``, ``retries``, ``progress``) as keywords too.

Callbacks, as in ``multiprocessing``, run on a thread of the pool (one per
pool, started when a callback is first due and gone once idle), never on
the thread that reads results from the workers, so a slow callback delays
only the callbacks after it. A handle is settled only after its callback
has returned, and ``join()`` waits for every callback due, so results
collected by callbacks are all there once ``get()`` or ``join()`` returns.
A callback that raises is reported with a ``RuntimeWarning`` and changes
nothing else: the handle keeps the task's outcome and the pool goes on.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping

from manymap.launcher._warnings import warn_user

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, Protocol, TypeVar

    from manymap.launcher._futures import AsyncResult, MapResult

    T = TypeVar("T")
    H = TypeVar("H", bound=AsyncResult[Any])
else:
    Protocol = object  # (the protocols here are the type checker's; at run time plain classes)

__all__ = ["CallbackThread", "MultiprocessingPoolMethods"]

_IDLE = 1.0  # seconds the callback thread waits for more before it exits
_WAIT_SLICE = 1.0  # seconds; every wait re-checks its condition at least this often
_callback_threads_lock = threading.Lock()


class _Pool(Protocol):
    """What the methods below use of :class:`~manymap.launcher.AbstractWorkerPool`."""

    def _apply(
        self,
        method: str,
        function: Callable[..., T],
        args: tuple[Any, ...],
        kwds: dict[str, Any],
        overrides: dict[str, Any],
    ) -> AsyncResult[T]: ...

    def _call(
        self,
        method: str,
        function: Callable[..., T],
        args: tuple[Any, ...],
        kwds: dict[str, Any],
        overrides: dict[str, Any],
    ) -> T: ...

    def _amap(
        self,
        method: str,
        function: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        options: dict[str, Any],
        *,
        star: bool | None = None,
    ) -> MapResult[T]: ...

    def _map(
        self,
        method: str,
        function: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        options: dict[str, Any],
        *,
        star: bool | None = None,
    ) -> list[T]: ...

    def _lazy(
        self,
        method: str,
        function: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        overrides: dict[str, Any],
        *,
        star: bool,
        ordered: bool,
    ) -> Iterator[Any]: ...

    def _options(self, overrides: dict[str, Any], method: str) -> Any: ...


class MultiprocessingPoolMethods:
    """Mixin of :class:`~manymap.launcher.AbstractWorkerPool`: ``multiprocessing.Pool``'s methods.

    See the module's notes: same signatures as the stdlib, manymap's handles
    and errors, callbacks on a thread of the pool.
    """

    def apply(
        self: _Pool,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] = {},
        **options: Any,
    ) -> T:
        """``func(*args, **kwds)`` on a worker, waiting for its result (``multiprocessing.Pool.apply``).

        Options: ``timeout``, ``retries``, ``progress``.
        """
        call_args, call_kwds = _arguments("apply", args, kwds)
        return self._call("apply", func, call_args, call_kwds, options)

    def apply_async(
        self: _Pool,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] = {},
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        **options: Any,
    ) -> AsyncResult[T]:
        """The asynchronous :meth:`apply` (``multiprocessing.Pool.apply_async``).

        ``callback(result)`` or ``error_callback(exception)`` runs on the
        pool's callback thread before the handle is settled.
        """
        call_args, call_kwds = _arguments("apply_async", args, kwds)
        _check_callbacks("apply_async", callback, error_callback)
        handle = self._apply("apply_async", func, call_args, call_kwds, options)
        return _with_callbacks(self, handle, callback, error_callback)

    def map_async(
        self: _Pool,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        **options: Any,
    ) -> MapResult[T]:
        """``multiprocessing.Pool.map_async``: :meth:`amap` of one iterable, with callbacks.

        ``callback(results)`` gets the whole list; ``error_callback`` the
        failure of the lowest failing task.
        """
        _check_callbacks("map_async", callback, error_callback)
        handle = self._amap("map_async", func, (iterable,), _sized(chunksize, options))
        return _with_callbacks(self, handle, callback, error_callback)

    def starmap(
        self: _Pool,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        **options: Any,
    ) -> list[T]:
        """``func(*item)`` for every item, as a list (``multiprocessing.Pool.starmap``)."""
        return self._map("starmap", func, (iterable,), _sized(chunksize, options), star=True)

    def starmap_async(
        self: _Pool,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        **options: Any,
    ) -> MapResult[T]:
        """The asynchronous :meth:`starmap` (``multiprocessing.Pool.starmap_async``)."""
        _check_callbacks("starmap_async", callback, error_callback)
        handle = self._amap("starmap_async", func, (iterable,), _sized(chunksize, options), star=True)
        return _with_callbacks(self, handle, callback, error_callback)

    def imap_unordered(
        self: _Pool,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        **options: Any,
    ) -> Iterator[T]:
        """Results as they complete (``multiprocessing.Pool.imap_unordered``; manymap's :meth:`uimap`).

        ``chunksize`` defaults to the pool's automatic choice (the stdlib's is 1).
        """
        return self._lazy(
            "imap_unordered", func, (iterable,), _sized(chunksize, options), star=False, ordered=False
        )

    def _join_callbacks(self) -> None:
        """Wait until every callback due has run (``join()`` calls it)."""
        thread: CallbackThread | None = getattr(self, "_callback_thread", None)
        if thread is not None:
            thread.drain()


class CallbackThread:
    """The thread of one pool that runs ``multiprocessing``-style callbacks, in order.

    It starts when a callback is due and exits after :data:`_IDLE` seconds
    without one; it holds no reference to the pool.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._reset()
        _all_callback_threads.add(self)

    def _reset(self) -> None:
        """No thread, nothing due. Also in a forked child: the parent's thread is not
        there, and its lock may have been held at the fork."""
        self._cond = threading.Condition()
        self._queue: deque[Callable[[], None]] = deque()
        self._pending = 0  # posted and not yet finished
        self._thread: threading.Thread | None = None

    def post(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the thread, after what was posted before."""
        with self._cond:
            self._queue.append(work)
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def drain(self) -> None:
        """Wait until everything posted has run (at once on the thread itself)."""
        with self._cond:
            if self._thread is threading.current_thread():
                return  # a callback that joins its own pool: the rest runs after it
            while self._pending:
                self._cond.wait(_WAIT_SLICE)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(_IDLE)
                if not self._queue:
                    self._thread = None
                    return
                work = self._queue.popleft()
            try:
                work()
            finally:
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()


_all_callback_threads: weakref.WeakSet[CallbackThread] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _callback_threads_lock
    _callback_threads_lock = threading.Lock()
    for thread in list(_all_callback_threads):
        thread._reset()


if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _callback_thread(pool: object) -> CallbackThread:
    thread: CallbackThread | None = getattr(pool, "_callback_thread", None)
    if thread is None:
        with _callback_threads_lock:
            thread = getattr(pool, "_callback_thread", None)
            if thread is None:
                thread = CallbackThread(f"manymap-callbacks-{id(pool):x}")
                pool._callback_thread = thread  # type: ignore[attr-defined]
    return thread


def _with_callbacks(
    pool: object,
    handle: H,
    callback: Callable[[Any], object] | None,
    error_callback: Callable[[BaseException], object] | None,
) -> H:
    """``handle`` itself without callbacks; else a handle of its type that follows it, settled on
    the callback thread once the callback has run (cancelling it cancels ``handle``)."""
    if callback is None and error_callback is None:
        return handle
    from manymap.launcher._futures import cancel_future  # loaded with the handle (import time)

    outer = type(handle)(source=handle)
    runner = _callback_thread(pool)

    def settle(done: AsyncResult[Any]) -> None:
        if done.cancelled():
            cancel_future(outer)  # now, so that cancel() returns with the handle cancelled
            return
        runner.post(lambda: _run_callback(done, outer, callback, error_callback))

    handle.add_done_callback(settle)  # type: ignore[arg-type]
    return outer


def _run_callback(
    done: AsyncResult[Any],
    outer: AsyncResult[Any],
    callback: Callable[[Any], object] | None,
    error_callback: Callable[[BaseException], object] | None,
) -> None:
    error = done.exception(0)
    chosen = callback if error is None else error_callback
    try:
        if chosen is not None:
            chosen(done.result(0) if error is None else error)
    except Exception as raised:  # a broken callback must not break the pool
        with contextlib.suppress(Exception):  # warnings turned into errors: nobody left to tell
            warn_user(f"callback {chosen!r} raised {raised!r}; the result is unaffected")
    finally:
        outer._deliver(done.result(0) if error is None else None, error)


def _arguments(
    method: str, args: Iterable[Any], kwds: Mapping[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(args, (str, bytes)) or not isinstance(args, Iterable):
        raise TypeError(
            f"{method}() args must be a tuple of positional arguments, got {args!r} (one argument x is (x,))"
        )
    if not isinstance(kwds, Mapping):
        raise TypeError(f"{method}() kwds must be a mapping of keyword arguments, got {kwds!r}")
    return tuple(args), dict(kwds)


def _check_callbacks(method: str, callback: object, error_callback: object) -> None:
    for name, value in (("callback", callback), ("error_callback", error_callback)):
        if value is not None and not callable(value):
            raise TypeError(f"{method}() {name} must be callable or None, got {value!r}")


def _sized(chunksize: int | None, options: dict[str, Any]) -> dict[str, Any]:
    """The per-call options, with the stdlib's positional ``chunksize`` when given."""
    return options if chunksize is None else {**options, "chunksize": chunksize}

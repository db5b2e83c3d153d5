"""A worker's cache of task functions, kept in step with what its pool knows it holds.

A pool sends a task function to a worker once, under a small key
(:meth:`manymap.serialize.PoolCodec.key`), and afterwards only the key. The
worker keeps what it was sent in a :class:`FunctionCache`; the pool keeps the
keys it sent to that worker and asks :func:`must_send` before each batch. Both
sides forget everything at the same point (a function arrives while
:data:`FUNCTION_CACHE` are held), so the pool knows what a worker holds
without being told.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from manymap.launcher.lowlevel import TaskFailure
from manymap.serialize._core import loads

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FUNCTION_CACHE", "FunctionCache", "must_send"]

#: Functions a worker holds at most; both sides clear their cache at this many, in step.
FUNCTION_CACHE = 64


def must_send(known: set[int], key: int) -> bool:
    """Whether a worker that was sent the keys ``known`` lacks ``key``.

    If it does, ``key`` is counted as sent (``known`` is cleared first when
    full, at the point where the worker's :class:`FunctionCache` clears).
    """
    if key in known:
        return False
    if len(known) >= FUNCTION_CACHE:
        known.clear()
    known.add(key)
    return True


class FunctionCache:
    """The task functions a worker was sent, by key (the worker's side of :func:`must_send`)."""

    def __init__(self, functions: Mapping[int, Callable[..., Any]] | None = None) -> None:
        """``functions``: what the worker holds from its start, by key (a forked
        worker inherits the function of the call that started it: its pool then
        counts those keys as sent)."""
        self._functions: dict[int, Callable[..., Any] | TaskFailure] = dict(functions or {})

    def store(self, key: int, payload: bytes | memoryview) -> None:
        """Load the function ``payload`` holds and keep it under ``key``; one that
        cannot be loaded is kept as its failure, reported with every task that needs it."""
        if len(self._functions) >= FUNCTION_CACHE:
            self._functions.clear()
        try:
            self._functions[key] = loads(payload)
        except Exception as error:
            self._functions[key] = TaskFailure.capture(error)

    def get(self, key: int) -> Callable[..., Any] | TaskFailure:
        """The function under ``key``, or the failure that stands for it."""
        function = self._functions.get(key)
        if function is None:
            return TaskFailure(RuntimeError(f"function {key} is not cached here"), "")
        return function

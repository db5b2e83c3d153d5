"""SerialPool's inline map: the builtin ``map``, with the pool's errors and stats.

A map on a :class:`~manymap.pools.local.SerialPool` with none of the options
that need the launcher's bookkeeping (no ``timeout``, no ``retries``, no
``progress``) runs here: a generator that reads one input item, calls the
task, records it in the pool's stats and yields its value, so an input and a
task that share state see each other exactly as under ``map(f, items)``, at
the cost of a plain loop. A task's exception is raised as every pool raises
it (its traceback chained, a note naming the task and the worker), and ends
the map, as in builtin ``map``. The other maps go through the launcher's
job, one item per batch (see ``_serial.py``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator

from manymap.launcher import PoolClosedError, ResultIterator
from manymap.launcher.lowlevel import TaskFailure, add_note, annotate_task_error

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from manymap.pools.local._serial import SerialPool

    T = TypeVar("T")
else:
    T = "T"  # (the generic base below needs no TypeVar at run time)

__all__ = ["InlineResults", "run_inline"]

_FLUSH = 1024  # tasks between updates of the pool's stats


def run_inline(
    pool: SerialPool, function: Callable[..., Any], source: Iterator[Any], *, star: bool
) -> Iterator[Any]:
    """Read, run and yield one task at a time in the consumer's thread (a generator).

    The loop is the builtin ``map`` (or ``itertools.starmap``) over a reader
    of the input that counts the items and stops once the pool is closed;
    the pool's stats are brought up to date every :data:`_FLUSH` tasks and
    when the map ends.
    """
    worker = f"serial[{threading.current_thread().name}]"
    clock = time.perf_counter
    read = 0  # items taken from the input
    recorded = 0  # tasks already in the pool's stats
    reading = False  # inside next(source): an exception now is the input's
    since = clock()

    def flush(failed: int = 0) -> None:
        nonlocal recorded, since
        now = clock()
        pool._record_inline(worker, tasks=read - recorded, failed=failed, busy=now - since)
        recorded, since = read, now

    def items() -> Iterator[Any]:
        nonlocal read, reading
        while True:
            reading = True
            if not pool._accepting():
                raise PoolClosedError(f"the pool was closed before task {read} was read from the input")
            try:
                item = next(source)
            except StopIteration:
                return
            reading = False
            read += 1
            if not read % _FLUSH:
                flush()
            yield item

    try:
        yield from (itertools.starmap(function, items()) if star else map(function, items()))
    except GeneratorExit:  # the consumer closed the iterator
        raise
    except BaseException as error:  # as on any pool: the task's error, annotated, ends the map
        if reading:  # the pool was closed, or the caller's input raised
            if not isinstance(error, PoolClosedError) or pool._accepting():
                add_note(error, f"manymap: reading input item {read} failed")
            raise
        flush(failed=1)
        failure = TaskFailure.capture(error)
        # The task's own exception, its traceback chained as the cause (as on every pool).
        raise annotate_task_error(  # noqa: B904
            failure.error, index=read - 1, worker=worker, traceback_text=failure.traceback
        )
    finally:
        if read > recorded:
            flush()


class InlineResults(ResultIterator[T]):
    """The lazy results of a SerialPool's ``imap`` family run inline: a
    :class:`~manymap.launcher.ResultIterator` over :func:`run_inline`."""

    def __init__(self, results: Iterator[T]) -> None:  # no job: the loop is the bookkeeping
        self._results = results

    def __next__(self) -> T:
        return next(self._results)

    def close(self) -> None:
        """Stop: nothing more is read or run."""
        close = getattr(self._results, "close", None)
        if close is not None:
            close()

    def __del__(self) -> None:
        pass  # the generator closes itself when collected

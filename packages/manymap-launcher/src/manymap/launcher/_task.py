"""What runs on the worker side: calling a batch of tasks and capturing failures.

A concrete pool's worker (a thread, a process, a remote server) receives a
function, a list of call items and the call convention, and runs
:func:`run_calls`. It returns every value plus a map from offset to
:class:`TaskFailure` for the calls that raised; the pool ships both back and
hands them to :meth:`manymap.launcher.lowlevel.Batch.finish`. A worker that receives
its batch over a wire runs it with :func:`run_loaded`, which also reports a
function or arguments that would not load. An exception never stops
the rest of the batch, and the worker itself survives it: ``SystemExit`` and
``KeyboardInterrupt`` raised by a task fail that task only.
"""

from __future__ import annotations

import collections
import itertools
import traceback
from collections.abc import Callable, Mapping, Sequence

from manymap.launcher._rebuild import portable_error

__all__ = ["TaskFailure", "run_calls", "run_loaded"]


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, NamedTuple

    class _Fields(NamedTuple):
        error: BaseException
        traceback: str

else:
    _Fields = collections.namedtuple("TaskFailure", ["error", "traceback"])


class TaskFailure(_Fields):
    """An exception raised by a task, with its traceback as text.

    The text travels with the exception because a traceback object cannot
    cross a process boundary; the caller chains it back as the cause. An
    exception that pickles but would not load on the far side (its
    ``__init__`` wants other arguments than it keeps) is pickled as a
    :class:`~manymap.launcher.RemoteTaskError` naming its type, message and
    traceback instead, so that only its own task fails.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled to cross to the caller: an exception that would not load
        # there travels as a RemoteTaskError (see _rebuild.py).
        return (TaskFailure, (portable_error(self.error, self.traceback), self.traceback))

    @classmethod
    def capture(cls, error: BaseException) -> TaskFailure:
        """Record ``error`` with its formatted traceback."""
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return cls(error.with_traceback(None), text)


def run_calls(
    function: Callable[..., Any],
    items: Sequence[Any],
    *,
    star: bool,
    kwargs: Mapping[str, Any] | None = None,
) -> tuple[list[Any], dict[int, TaskFailure]]:
    """Run ``function`` over ``items`` and capture each call's outcome.

    Args:
        function: the task function.
        items: one entry per task: the argument itself, or with ``star`` the
            tuple of positional arguments.
        star: call ``function(*item, **kwargs)`` instead of ``function(item)``.
        kwargs: keyword arguments for every call (only with ``star``).

    Returns:
        ``(values, failures)``: ``values[i]`` is call i's result (``None`` where
        it failed) and ``failures`` maps the offsets of failed calls to their
        :class:`TaskFailure`.
    """
    values: list[Any] = []
    failures: dict[int, TaskFailure] = {}
    start = 0
    while start < len(items):
        rest = items[start:] if start else items
        try:
            # list.extend keeps what it appended before an exception: the
            # failed call is the next offset, and the run resumes after it.
            if not star:
                values.extend(map(function, rest))
            elif kwargs:
                values.extend(function(*item, **kwargs) for item in rest)
            else:
                values.extend(itertools.starmap(function, rest))
        except BaseException as error:  # a task's SystemExit/KeyboardInterrupt fail that task only
            failures[len(values)] = TaskFailure.capture(error)
            values.append(None)
        start = len(values)
    return values, failures


def run_loaded(
    function: Callable[..., Any] | TaskFailure,
    load: Callable[[], tuple[Mapping[str, Any], Sequence[Any]]],
    *,
    star: bool,
) -> tuple[list[Any] | None, dict[int, TaskFailure]]:
    """Run a batch that came over a wire: :func:`run_calls` over what ``load()`` returns.

    Args:
        function: the task function, or the failure that stands for one that
            would not load (a worker's ``manymap.serialize.FunctionCache``).
        load: loads the batch's ``(kwargs, items)``.
        star: as for :func:`run_calls`.

    Returns:
        ``(values, failures)`` as :func:`run_calls`, or ``(None, {0: failure})``
        when the function or the arguments would not load: the one reason
        for all the batch's tasks.
    """
    if isinstance(function, TaskFailure):
        return None, {0: function}
    try:
        kwargs, items = load()
    except Exception as error:
        return None, {0: TaskFailure.capture(error)}
    return run_calls(function, items, star=star, kwargs=kwargs)

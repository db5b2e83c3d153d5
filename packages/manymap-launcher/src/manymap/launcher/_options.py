"""Per-call task options and their validation.

Every pool takes the same four options, as pool defaults in its constructor
and per call in ``map``/``imap``/``amap``/...: ``chunksize``, ``timeout``,
``retries`` and ``progress``. :class:`TaskOptions` holds one validated set;
:meth:`TaskOptions.merged` lays a call's options over the pool's defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from manymap.launcher._record import FrozenRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.launcher._events import TaskEvent

__all__ = ["Progress", "TaskOptions"]

#: What ``progress=`` accepts: off (``None``/``False``), a bar (``True``), or
#: a callable that receives every :class:`~manymap.launcher.TaskEvent`.
Progress = bool | None | Callable[["TaskEvent"], object]


class TaskOptions(FrozenRecord):
    """One validated set of per-call options.

    Attributes:
        chunksize: tasks handed to a worker at once; ``None`` picks one from
            the input length and the pool size. A ``timeout`` makes the
            automatic choice 1, so every task has its own deadline.
        timeout: seconds one task may run; past it the task fails with
            :class:`~manymap.launcher.TaskTimeoutError`. ``None``: no limit.
        retries: how many times a task whose worker was lost or which timed
            out is run again before it fails.
        progress: ``True`` draws a progress bar, a callable receives every
            task event, ``None``/``False`` does neither.
    """

    _fields = ("chunksize", "timeout", "retries", "progress")
    chunksize: int | None
    timeout: float | None
    retries: int
    progress: Progress

    def __init__(
        self,
        chunksize: int | None = None,
        timeout: float | None = None,
        retries: int = 0,
        progress: Progress = None,
    ) -> None:
        _check_chunksize(chunksize)
        _check_timeout(timeout)
        _check_retries(retries)
        _check_progress(progress)
        self._init(chunksize=chunksize, timeout=timeout, retries=retries, progress=progress)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in their documented order."""
        return cls._fields

    def merged(self, overrides: Mapping[str, Any], *, call: str | None = None) -> TaskOptions:
        """These options with ``overrides`` laid over them, validated.

        Args:
            overrides: option names and values.
            call: the call they were given to (``"ThreadPool.map()"``), for
                the error message.

        Raises:
            TypeError: an override names no option.
        """
        if not overrides:
            return self
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            plural = "s" if len(unknown) > 1 else ""
            who = f"{call} got an " if call else ""
            raise TypeError(
                f"{who}unexpected option{plural} {', '.join(map(repr, unknown))}; "
                f"the options are {', '.join(self.names())}"
            )
        return TaskOptions(**{**dict(zip(self._fields, self._values(), strict=True)), **overrides})


def _check_chunksize(value: object) -> None:
    if value is not None and (not _is_int(value) or value < 1):  # type: ignore[operator]
        raise ValueError(f"chunksize must be a positive integer or None, got {value!r}")


def _check_timeout(value: object) -> None:
    if value is None:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 and math.isfinite(value))
    ):
        raise ValueError(f"timeout must be a positive number of seconds or None, got {value!r}")


def _check_retries(value: object) -> None:
    if not _is_int(value) or value < 0:  # type: ignore[operator]
        raise ValueError(f"retries must be a non-negative integer, got {value!r}")


def _check_progress(value: object) -> None:
    if value is not None and not isinstance(value, bool) and not callable(value):
        raise TypeError(f"progress must be True, False, None or a callable taking a TaskEvent, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

"""Task events: what a pool reports of every task.

Every pool reports the life of every task through one stream of
:class:`TaskEvent` values: ``submitted`` when the task is read from its
input, ``started`` when a worker begins it, then ``finished`` or ``failed``,
and ``retried`` when a lost or timed-out attempt is queued again. The events
are produced by the launcher's bookkeeping (``_job.py``), never by a concrete
pool, so the stream is the same for every pool.

``progress=<callable>`` receives the events directly; ``progress=True``
feeds them to :func:`~manymap.launcher.progress_bar` (``_progress.py``, loaded
when a call first asks for a bar).
"""

from __future__ import annotations

import enum

from manymap.launcher._record import FrozenRecord

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # (the protocols here are the type checker's; at run time plain classes)

__all__ = ["EventKind", "ProgressListener", "TaskEvent"]


class EventKind(str, enum.Enum):
    """What happened to a task."""

    SUBMITTED = "submitted"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    RETRIED = "retried"

    def __str__(self) -> str:
        return self.value


class TaskEvent(FrozenRecord):
    """One thing that happened to one task.

    Attributes:
        kind: what happened.
        index: the task's position in its map (0 for ``pipe``).
        job: a number identifying the map call, unique within the process.
        attempt: 0 for the first run, 1 for the first retry, ...
        worker: the worker's id, once the task has one.
        duration: seconds the task ran, for ``finished`` and ``failed``.
        error: the exception, for ``failed`` and ``retried``.
    """

    _fields = ("kind", "index", "job", "attempt", "worker", "duration", "error")
    kind: EventKind
    index: int
    job: int
    attempt: int
    worker: str | None
    duration: float | None
    error: BaseException | None

    def __init__(
        self,
        kind: EventKind,
        index: int,
        job: int,
        attempt: int = 0,
        worker: str | None = None,
        duration: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        self._init(
            kind=kind, index=index, job=job, attempt=attempt, worker=worker, duration=duration, error=error
        )


class ProgressListener(Protocol):
    """What consumes task events: a callable, optionally with ``close()``."""

    def __call__(self, event: TaskEvent, /) -> object: ...

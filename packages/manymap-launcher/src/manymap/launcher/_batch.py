"""``Batch``: tasks of one job handed to one worker at once, and how the worker reports them.

A pool's scheduling core takes a batch (``_take_batch`` / ``_wait_batch``),
runs ``batch.function`` over ``batch.items`` and reports exactly one
outcome through the batch, which passes it on to its job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.launcher._job import Job
    from manymap.launcher._task import TaskFailure

__all__ = ["Batch"]


class Batch:
    """Tasks of one job handed to one worker at once.

    A pool's scheduling core runs ``batch.function`` over ``batch.items``
    (see :func:`manymap.launcher.lowlevel.run_calls`) and reports exactly one outcome:
    :meth:`finish` or :meth:`lose`. Reports for a batch that was already
    settled (say, timed out a moment before) are ignored.
    """

    __slots__ = ("attempt", "host", "indices", "items", "job", "payload", "settled", "started_at", "worker")

    def __init__(self, job: Job, indices: Sequence[int], items: list[Any], attempt: int = 0) -> None:
        self.job = job
        self.indices = indices
        self.items = items
        self.attempt = attempt
        self.payload: Any = None  # the pool's encoding of the items, see AbstractWorkerPool._encode
        self.worker: str | None = None
        self.host: str | None = None
        self.started_at: float | None = None
        self.settled = False

    @property
    def function(self) -> Callable[..., Any]:
        """The task function."""
        return self.job.function

    @property
    def star(self) -> bool:
        """Whether each item is a tuple of positional arguments."""
        return self.job.star

    @property
    def kwargs(self) -> Mapping[str, Any]:
        """Keyword arguments of every call (``pipe``/``submit`` only)."""
        return self.job.kwargs

    @property
    def timeout(self) -> float | None:
        """The per-task time limit, for cores that enforce it themselves."""
        return self.job.options.timeout

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        first, last = self.indices[0], self.indices[-1]
        span = f"task {first}" if len(self.indices) == 1 else f"tasks {first}..{last}"
        return f"<Batch job={self.job.id} {span} attempt={self.attempt}>"

    def start(self, worker: str, host: str | None = None) -> None:
        """Report that ``worker`` (on ``host``) has begun this batch."""
        self.job._start(self, worker, host)

    def finish(
        self,
        values: Sequence[Any],
        failures: Mapping[int, TaskFailure] | None = None,
        *,
        duration: float | None = None,
    ) -> None:
        """Report the outcome of every task of the batch.

        Args:
            values: one value per item, in order (anything where a task failed).
            failures: offsets of the tasks that raised, with their failure.
            duration: seconds the worker spent on the batch, if it measured it.
        """
        self.job._finish(self, values, failures or {}, duration)

    def lose(self, reason: str, *, exitcode: int | None = None, culprit: int | None = None) -> None:
        """Report that the worker running this batch died or was lost.

        Args:
            reason: what happened, e.g. ``"killed by signal SIGKILL"``.
            exitcode: the worker's exit code, negative for a signal.
            culprit: offset of the task that was running, when the core
                knows it: that task is charged with the loss (retried or
                failed), the others are re-queued as they were. Without it,
                a batch of one task is charged; a larger batch is re-queued
                task by task, uncharged, so that the next loss names its task.
        """
        self.job._lose(self, reason, exitcode, culprit)

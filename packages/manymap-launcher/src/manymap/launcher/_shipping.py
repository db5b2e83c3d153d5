"""Shipping batches to workers that are other processes: the manager's record of
each worker, the codec it serializes with, and a reply settling a batch.

:class:`ManagedWorkerPool` sends a batch to an idle worker in one way for
every such pool (``_send``): the batch gets a fresh *token*, the task
function goes along only if that worker lacks it (the :class:`BatchCodec`
knows, from the keys the :class:`ManagedWorker` record keeps, as the worker's
own cache clears at the same points), and the pool's ``_transmit`` writes
the message on whatever reaches the worker. The worker's reply names the
token; :meth:`ManagedWorker.settle` finishes the batch with the outcome it
carries, or ignores a reply that is stale. A batch that could not be loaded
or run at all comes back as one failure, copied to each of its tasks
(:func:`for_all`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from manymap.launcher._task import TaskFailure

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, Protocol

    from manymap.launcher._batch import Batch

    #: A batch's outcome as a worker reports it: ``(values, failures)``, or
    #: ``(None, {0: failure})`` when the batch could not be loaded or run at all.
    Outcome = tuple[Sequence[Any] | None, Mapping[int, TaskFailure]]
else:
    Protocol = object  # (the protocols here are the type checker's; at run time plain classes)

__all__ = ["BatchCodec", "ManagedWorker", "for_all"]


class BatchCodec(Protocol):
    """What a managed pool serializes with (``manymap.serialize.PoolCodec`` is one)."""

    def function(self, function: Callable[..., Any]) -> bytes:
        """The task function's payload (cached while the function stays the same)."""

    def key(self, payload: bytes) -> int:
        """The key a worker caches the function ``payload`` under."""

    def items(self, kwargs: Mapping[str, Any], items: Sequence[Any], first: int, star: bool) -> Any:
        """A batch's arguments, encoded; raises ``SerializationError`` naming the task."""

    def must_send(self, known: set[int], key: int) -> bool:
        """Whether a worker that was sent the keys ``known`` lacks ``key`` (then counted as sent)."""


class ManagedWorker:
    """The manager's record of one worker: the batch it runs and the functions it holds.

    A pool's own record subclasses it with how the worker is reached (a pipe
    and a process, a socket to a server).

    Attributes:
        name: the worker's name in task events and error messages.
        host: the host it runs on (``None``: this one).
        batch: the batch it runs (``None``: idle).
        token: the number of the last batch sent to it; its reply names it.
        known: the keys of the task functions it was sent and holds.
        loan: while a caller waits on this worker's reply itself, the
            descriptors it waits on (``None``: the manager handles its replies).
        waiter: the ``select.poll`` object such a caller waits with, made at the first loan.
    """

    __slots__ = ("batch", "host", "known", "loan", "name", "token", "waiter")

    def __init__(self, name: str, host: str | None = None) -> None:
        self.name = name
        self.host = host
        self.batch: Batch | None = None
        self.token = 0
        self.known: set[int] = set()
        self.loan: tuple[int, ...] | None = None
        self.waiter: Any = None

    def settle(self, token: int, outcome: Callable[[], Outcome], duration: float | None = None) -> bool:
        """Finish the batch the reply for ``token`` settles, with ``outcome()``.

        ``outcome`` loads what the reply carries; if it raises, every task of
        the batch fails with that. Returns False, doing nothing, for a stale
        reply (another token, or no batch running).
        """
        batch = self.release(token)
        if batch is None:
            return False
        self.finish(batch, outcome, duration)
        return True

    def release(self, token: int) -> Batch | None:
        """The first half of :meth:`settle`: free the worker of the batch the reply
        for ``token`` settles and return that batch (``None`` for a stale reply),
        so that the pool may send the worker its next batch before it loads the
        outcome of this one with :meth:`finish`."""
        batch = self.batch
        if batch is None or token != self.token:
            return None
        self.batch = None
        return batch

    @staticmethod
    def finish(batch: Batch, outcome: Callable[[], Outcome], duration: float | None = None) -> None:
        """The second half of :meth:`settle`: finish ``batch`` with ``outcome()``."""
        values: Sequence[Any] | None
        try:
            values, failures = outcome()
        except Exception as error:
            values, failures = None, {0: TaskFailure.capture(error)}
        if values is None:  # the batch could not be loaded or run at all
            values, failures = [None] * len(batch), for_all(failures[0], len(batch))
        batch.finish(values, failures, duration=duration)


def for_all(failure: TaskFailure, count: int) -> dict[int, TaskFailure]:
    """``failure`` for each of ``count`` tasks, each with an exception object of its
    own: the note a task's error gets (its index, its worker) is its own only."""
    return {offset: failure if offset == 0 else _copied(failure) for offset in range(count)}


def _copied(failure: TaskFailure) -> TaskFailure:
    import copy  # only a failed batch of several tasks needs it (import time)

    error = failure.error
    try:
        clone = copy.copy(error)
    except Exception:
        clone = RuntimeError(f"{type(error).__name__}: {error}")
    if clone is error:
        return failure
    clone.__notes__ = list(getattr(error, "__notes__", ()))  # type: ignore[attr-defined]
    return TaskFailure(clone, failure.traceback)

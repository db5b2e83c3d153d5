"""The error hierarchy shared by every manymap package.

Every error the framework raises on its own account subclasses
:class:`ManymapError`. Where a stdlib exception means the same thing, the
manymap error subclasses it too, so code written against the stdlib (or
against pathos) keeps catching what it caught before: a closed pool is a
``ValueError``, a timed-out wait is a ``TimeoutError`` and a
``multiprocessing.TimeoutError``, an object that cannot be shipped is a
``pickle.PicklingError``.

An exception raised *by a task* is not wrapped: the caller gets the task's
own exception object, with the worker-side traceback chained as its cause
(a :class:`RemoteTraceback`) and a note naming the task and the worker, see
:func:`annotate_task_error`.
"""

from __future__ import annotations

import multiprocessing
import pickle

__all__ = [
    "AuthenticationError",
    "ConnectionLostError",
    "HostKeyError",
    "ManymapError",
    "PoolClosedError",
    "RemoteTraceback",
    "ResultTimeoutError",
    "SerializationError",
    "TaskTimeoutError",
    "TunnelError",
    "WorkerLostError",
    "annotate_task_error",
]


class ManymapError(Exception):
    """Base class of every error manymap raises on its own account."""


class PoolClosedError(ManymapError, ValueError):
    """Work was handed to a pool after ``close()`` or ``terminate()``."""


class ResultTimeoutError(ManymapError, TimeoutError, multiprocessing.TimeoutError):
    """``get(timeout)`` on a result handle ran out of time; the work goes on."""


class WorkerLostError(ManymapError):
    """The worker running a task died (signal, ``os._exit``, OOM, lost host).

    Attributes:
        index: the task's index in its map (``None`` when unknown).
        worker: the id of the worker that was lost.
        exitcode: the worker's exit code, negative for a signal, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        index: int | None = None,
        worker: str | None = None,
        exitcode: int | None = None,
    ) -> None:
        super().__init__(message)
        self.index = index
        self.worker = worker
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_lost, (type(self), str(self), self.index, self.worker, self.exitcode))


def _rebuild_lost(
    cls: type[WorkerLostError], message: str, index: int | None, worker: str | None, exitcode: int | None
) -> WorkerLostError:
    return cls(message, index=index, worker=worker, exitcode=exitcode)


class TaskTimeoutError(ManymapError, TimeoutError):
    """A task ran past its per-task ``timeout``.

    Attributes:
        index: the task's index in its map.
        timeout: the limit, in seconds, that it exceeded.
    """

    def __init__(self, message: str, *, index: int | None = None, timeout: float | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.timeout = timeout

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_timeout, (type(self), str(self), self.index, self.timeout))


def _rebuild_timeout(
    cls: type[TaskTimeoutError], message: str, index: int | None, timeout: float | None
) -> TaskTimeoutError:
    return cls(message, index=index, timeout=timeout)


class SerializationError(ManymapError, pickle.PicklingError):
    """An object cannot be serialized; the text names the path that fails."""


class _RemoteError(ManymapError):
    """An ssh / RPC failure; the text always names the host and port."""

    def __init__(self, message: str, *, host: str | None = None, port: int | None = None) -> None:
        where = _where(host, port)
        super().__init__(f"{where}: {message}" if where else message)
        self.host = host
        self.port = port

    def __reduce__(self) -> tuple[object, ...]:
        # The text already names host and port; rebuild without prefixing it twice.
        return (_rebuild_remote, (type(self), str(self), self.host, self.port))


def _rebuild_remote(cls: type[_RemoteError], text: str, host: str | None, port: int | None) -> _RemoteError:
    error = cls.__new__(cls)
    ManymapError.__init__(error, text)
    error.host = host
    error.port = port
    return error


def _where(host: str | None, port: int | None) -> str:
    if host is None:
        return ""
    return f"{host}:{port}" if port is not None else host


class AuthenticationError(_RemoteError):
    """An ssh login or an RPC server's secret was refused."""


class HostKeyError(_RemoteError):
    """A host's ssh key is unknown or differs from the one in known_hosts."""


class ConnectionLostError(_RemoteError):
    """An established ssh or RPC connection dropped."""


class TunnelError(_RemoteError):
    """An ssh port forward could not be opened or has stopped working."""


class RemoteTraceback(Exception):
    """The worker-side traceback of a task's exception, chained as its cause.

    Its text is the traceback as the worker formatted it, so the caller's
    traceback shows where the task failed, then where it was re-raised.
    """

    def __init__(self, traceback_text: str) -> None:
        super().__init__(traceback_text)
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        return f'\n"""\n{self.traceback_text.rstrip()}\n"""'


def annotate_task_error(
    error: BaseException, *, index: int | None, worker: str | None, traceback_text: str | None = None
) -> BaseException:
    """Prepare a task's exception to be raised in the caller.

    Chains the worker-side traceback (when given) as the cause and adds a note
    naming the task index and the worker. Returns ``error`` itself.
    """
    if traceback_text:
        error.__cause__ = RemoteTraceback(traceback_text)
    what = "task" if index is None else f"task {index}"
    where = f" on worker {worker}" if worker else ""
    add_note(error, f"manymap: {what} failed{where}")
    return error


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``, also on Python 3.10 where it is missing."""
    adder = getattr(error, "add_note", None)
    if adder is not None:
        adder(note)
    else:  # pragma: no cover - Python 3.10
        notes = getattr(error, "__notes__", None)
        if notes is None:
            notes = []
            error.__notes__ = notes  # type: ignore[attr-defined]
        notes.append(note)

"""``AbstractLauncher``: the base of everything that launches an operation.

An ssh pipe (a remote command), a copier (a file transfer) and a tunnel (a
port forward) have the same life: configured at construction, started with
:meth:`~AbstractLauncher.launch`, waited on with
:meth:`~AbstractLauncher.response`, stopped with :meth:`~AbstractLauncher.kill`.
This is pathos' ``AbstractPipeConnection`` with a context manager, timeouts
on every wait, and no shell strings.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from manymap.launcher._errors import ResultTimeoutError

__all__ = ["AbstractLauncher"]

R = TypeVar("R")
if TYPE_CHECKING:  # a string bound compiles its text: the process's first compile() costs about 1 ms
    L = TypeVar("L", bound="AbstractLauncher[Any]")


class AbstractLauncher(abc.ABC, Generic[R]):
    """Launches one operation and owns it until it ends or is killed.

    Subclasses take their configuration (command, paths, ports) in their
    constructor, and name the type ``R`` of the operation's result
    (``class Pipe(AbstractLauncher[CommandResult])``). Using a launcher as a
    context manager launches nothing by itself; leaving the block kills the
    operation if it is still running.

    Args:
        name: a label for messages and ``repr`` (defaults to the class name).
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__

    @abc.abstractmethod
    def launch(self) -> None:
        """Start the operation. Raises if it cannot be started."""

    @abc.abstractmethod
    def response(self, timeout: float | None = None) -> R:
        """Wait at most ``timeout`` seconds for the operation to end; return its result.

        Raises:
            manymap.launcher.ResultTimeoutError: it did not end in time.
        """

    def run(self, timeout: float | None = None) -> R:
        """Launch, wait at most ``timeout`` seconds and return the result; kill it if it overruns.

        Raises:
            manymap.launcher.ResultTimeoutError: it did not end in time (and was killed).
        """
        self.launch()
        try:
            return self.response(timeout)
        except ResultTimeoutError:
            self.kill()
            raise

    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the operation was launched and has not ended."""

    @abc.abstractmethod
    def pid(self) -> int | None:
        """The id of the process carrying the operation (``None`` before launch)."""

    @abc.abstractmethod
    def kill(self) -> None:
        """Stop the operation and release what it holds; harmless if it has ended."""

    def __enter__(self: L) -> L:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.running():
            self.kill()

    def __repr__(self) -> str:
        state = "running" if self.running() else "idle"
        return f"<{type(self).__name__} {self.name!r} {state}>"

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
from typing import Any, TypeVar

__all__ = ["AbstractLauncher"]

L = TypeVar("L", bound="AbstractLauncher")


class AbstractLauncher(abc.ABC):
    """Launches one operation and owns it until it ends or is killed.

    Subclasses take their configuration (command, paths, ports) in their
    constructor. Using a launcher as a context manager launches nothing by
    itself; leaving the block kills the operation if it is still running.

    Args:
        name: a label for messages and ``repr`` (defaults to the class name).
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name or type(self).__name__

    @abc.abstractmethod
    def launch(self) -> None:
        """Start the operation. Raises if it cannot be started."""

    @abc.abstractmethod
    def response(self, timeout: float | None = None) -> Any:
        """Wait at most ``timeout`` seconds for the operation to end; return its result.

        Raises:
            manymap.launcher.ResultTimeoutError: it did not end in time.
        """

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

"""Task events and the progress bars that consume them.

Every pool reports the life of every task through one stream of
:class:`TaskEvent` values: ``submitted`` when the task is read from its
input, ``started`` when a worker begins it, then ``finished`` or ``failed``,
and ``retried`` when a lost or timed-out attempt is queued again. The events
are produced by the launcher's bookkeeping (``_job.py``), never by a concrete
pool, so the stream is the same for every pool.

``progress=<callable>`` receives the events directly; ``progress=True``
feeds them to :func:`progress_bar`, a tqdm bar when tqdm is installed and a
plain text bar on stderr otherwise.
"""

from __future__ import annotations

import enum
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, Protocol

__all__ = ["EventKind", "ProgressListener", "TaskEvent", "TextProgressBar", "progress_bar"]


class EventKind(str, enum.Enum):
    """What happened to a task."""

    SUBMITTED = "submitted"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    RETRIED = "retried"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class TaskEvent:
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

    kind: EventKind
    index: int
    job: int
    attempt: int = 0
    worker: str | None = None
    duration: float | None = None
    error: BaseException | None = None


class ProgressListener(Protocol):
    """What consumes task events: a callable, optionally with ``close()``."""

    def __call__(self, event: TaskEvent, /) -> object: ...


class TextProgressBar:
    """A dependency-free progress bar drawn on a text stream.

    It counts each task once, when it finishes or fails, and redraws at most
    ten times a second. With an unknown total it shows a count.
    """

    width = 30

    def __init__(self, total: int | None, *, description: str = "", stream: IO[str] | None = None) -> None:
        self.total = total
        self.description = description
        self.done = 0
        self.failed = 0
        self._stream = stream if stream is not None else sys.stderr
        self._lock = threading.Lock()
        self._drawn_at = 0.0
        self._started = time.monotonic()
        self._closed = False

    def __call__(self, event: TaskEvent) -> None:
        if event.kind not in (EventKind.FINISHED, EventKind.FAILED):
            return
        with self._lock:
            self.done += 1
            self.failed += event.kind is EventKind.FAILED
            now = time.monotonic()
            if now - self._drawn_at >= 0.1 or self.done == self.total:
                self._draw(now)

    def close(self) -> None:
        """Draw the final state and end the line."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._draw(time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def render(self, now: float | None = None) -> str:
        """The bar's current text, without the leading carriage return."""
        elapsed = (now if now is not None else time.monotonic()) - self._started
        prefix = f"{self.description}: " if self.description else ""
        failed = f", {self.failed} failed" if self.failed else ""
        if self.total:
            filled = self.width * self.done // self.total
            bar = "#" * filled + "-" * (self.width - filled)
            return f"{prefix}[{bar}] {self.done}/{self.total}{failed} {elapsed:.1f}s"
        return f"{prefix}{self.done} tasks{failed} {elapsed:.1f}s"

    def _draw(self, now: float) -> None:
        self._drawn_at = now
        self._stream.write("\r" + self.render(now))
        self._stream.flush()


class _TqdmBar:
    """Feeds task events to a tqdm bar."""

    def __init__(self, tqdm: Callable[..., Any], total: int | None, description: str) -> None:
        self._bar = tqdm(total=total, desc=description or None, unit="task", leave=True)
        self._lock = threading.Lock()

    def __call__(self, event: TaskEvent) -> None:
        if event.kind in (EventKind.FINISHED, EventKind.FAILED):
            with self._lock:
                self._bar.update(1)

    def close(self) -> None:
        with self._lock:
            self._bar.close()


def progress_bar(total: int | None, description: str = "") -> ProgressListener:
    """A progress bar for ``total`` tasks (``None``: unknown).

    A tqdm bar when tqdm is installed (``pip install manymap-launcher[progress]``),
    else a :class:`TextProgressBar` on stderr.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return TextProgressBar(total, description=description)
    return _TqdmBar(tqdm, total, description)

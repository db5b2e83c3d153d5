"""Progress bars: what ``progress=True`` feeds a call's task events to.

:func:`progress_bar` gives a tqdm bar when tqdm is installed and a plain
:class:`TextProgressBar` on stderr otherwise. Loaded when a call first asks
for a bar (or the names are first read from ``manymap.launcher``): a plain
``map`` never draws one.
"""

from __future__ import annotations

import abc
import io
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import IO, Any, Protocol

from manymap.launcher._events import EventKind, ProgressListener, TaskEvent

__all__ = ["TextProgressBar", "progress_bar"]


class _Pacer:
    """When a bar redraws: at every whole percent of the total, and at least every 0.1 s
    while events come (a first draw at once), whichever comes first."""

    interval = 0.1

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.drawn_at: float | None = None
        self.drawn_percent = -1

    def due(self, done: int, now: float) -> bool:
        if self.drawn_at is None or now - self.drawn_at >= self.interval:
            return True
        return bool(self.total) and done * 100 // self.total != self.drawn_percent  # type: ignore[operator]

    def drew(self, done: int, now: float) -> None:
        self.drawn_at = now
        self.drawn_percent = done * 100 // self.total if self.total else -1


class _Ticker:
    """Redraws a bar on a terminal every 0.1 s while no task reports (long tasks still move).

    A daemon thread, started at the bar's first event, holding the bar only
    weakly: it ends when the bar is closed or dropped.
    """

    def __init__(self, bar: _Tickable) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(weakref.ref(bar), self._stopped), name="manymap-progress", daemon=True
        )
        self._thread.start()

    @staticmethod
    def _run(ref: weakref.ref[_Tickable], stopped: threading.Event) -> None:
        while not stopped.wait(_Pacer.interval):
            bar = ref()
            if bar is None:
                return
            bar._tick()
            del bar

    def stop(self) -> None:
        self._stopped.set()


class _Tickable(Protocol):
    def _tick(self) -> None: ...


class _PacedBar(abc.ABC):
    """What both bars share: each task counted once, when it finishes or fails, under a
    lock; a draw when the pacer says; a ticker while on a terminal; one close."""

    def __init__(self, total: int | None, *, tty: bool) -> None:
        self.done = 0
        self.failed = 0
        self._tty = tty
        self._lock = threading.Lock()
        self._pacer = _Pacer(total)
        self._closed = False
        self._ticker: _Ticker | None = None

    def __call__(self, event: TaskEvent) -> None:
        with self._lock:
            if self._closed:
                return
            if event.kind in (EventKind.FINISHED, EventKind.FAILED):
                self.done += 1
                self.failed += event.kind is EventKind.FAILED
            self._draw_if_due(time.monotonic())
            if self._ticker is None and self._tty:
                self._ticker = _Ticker(self)

    def _tick(self) -> None:
        with self._lock:
            if not self._closed:
                self._draw_if_due(time.monotonic())

    def close(self) -> None:
        """Draw the final state and end the bar."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._ticker is not None:
                self._ticker.stop()
            self._finish()

    def _draw_if_due(self, now: float) -> None:
        if self._pacer.due(self.done, now):
            self._draw(now)
            self._pacer.drew(self.done, now)

    @abc.abstractmethod
    def _draw(self, now: float) -> None:
        """Show the counts now (under the lock)."""

    @abc.abstractmethod
    def _finish(self) -> None:
        """Show the final counts and end the bar (under the lock, once)."""


class TextProgressBar(_PacedBar):
    """A dependency-free progress bar drawn on a text stream.

    It counts each task once, when it finishes or fails. It redraws at every
    whole percent and at least every 0.1 s (on a terminal, also while no task
    reports, so that the elapsed time moves), and fits the terminal: each
    draw reads the stream's width (``shutil.get_terminal_size`` when the
    stream is not a terminal), shrinks the bar, then the label, to stay
    within it, and clears what a longer line left behind. With an
    unknown total it shows a count.

    Attributes:
        draws: how many times the bar was drawn.
    """

    width = 30  # the widest the bar itself gets, in characters

    def __init__(self, total: int | None, *, description: str = "", stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        super().__init__(total, tty=_isatty(self._stream))
        self.total = total
        self.description = description
        self.draws = 0
        self._drawn_length = 0
        self._started = time.monotonic()

    def _finish(self) -> None:
        self._draw(time.monotonic())
        self._stream.write("\n")
        self._stream.flush()

    def render(self, now: float | None = None, columns: int | None = None) -> str:
        """The bar's current text, without the leading carriage return.

        Args:
            now: the ``time.monotonic()`` to show the elapsed time at.
            columns: the terminal's width; the text is at most ``columns - 1``
                characters (``None``: no limit).
        """
        elapsed = (now if now is not None else time.monotonic()) - self._started
        failed = f", {self.failed} failed" if self.failed else ""
        limit = max(1, columns - 1) if columns else None  # the last column would wrap the line
        name = self.description
        if not self.total:
            return _fit(name, f"{self.done} tasks{failed} {elapsed:.1f}s", limit)
        counts = f" {self.done}/{self.total}{failed} {elapsed:.1f}s"
        room = self.width
        if limit is not None:
            label = len(name) + 2 if name else 0
            room = min(room, limit - label - len(counts) - 2)
            if room < 8:  # narrow: the label gives way (down to 8 characters) before the bar does
                room = min(self.width, limit - min(label, 10) - len(counts) - 2)
        if room < 5:
            return _fit(name, counts.lstrip(), limit)
        filled = room * self.done // self.total
        return _fit(name, "[" + "#" * filled + "-" * (room - filled) + "]" + counts, limit)

    def _draw(self, now: float) -> None:
        columns = _columns(self._stream)
        text = self.render(now, columns)
        # Clear what a longer earlier draw left: to the end of the line on a terminal, else blanks.
        blanks = " " * max(0, min(self._drawn_length, columns - 1) - len(text))
        tail = "\x1b[K" if self._tty else blanks
        self._stream.write("\r" + text + tail)
        self._stream.flush()
        self._drawn_length = len(text)
        self.draws += 1


def _fit(name: str, body: str, limit: int | None) -> str:
    """``"name: body"`` in at most ``limit`` characters, cutting the name first, then the body."""
    text = f"{name}: {body}" if name else body
    if limit is None or len(text) <= limit:
        return text
    keep = limit - len(body) - 2
    if name and keep >= 3:
        return f"{name[:keep]}: {body}"
    return body[:limit]


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _columns(stream: IO[str]) -> int:
    """The width of the terminal ``stream`` writes to, read now (it may have been resized)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        import shutil  # (it loads the compression modules: only when a bar needs it)

        return shutil.get_terminal_size().columns


class _TqdmBar(_PacedBar):
    """Feeds task events to a tqdm bar, paced like :class:`TextProgressBar`."""

    def __init__(self, tqdm: Callable[..., Any], total: int | None, description: str) -> None:
        super().__init__(total, tty=_isatty(sys.stderr))
        self._bar = tqdm(
            total=total,
            desc=description or None,
            unit="task",
            leave=True,
            dynamic_ncols=True,  # re-read the terminal's width at each draw
        )
        self._columns: int | None = None

    def _draw(self, now: float) -> None:
        self._fit()
        self._bar.n = self.done
        self._bar.refresh()

    def _fit(self) -> None:
        """After the terminal narrowed, clear the line and make tqdm forget its longer one:
        it would pad the next draw to the old length, past the new right margin."""
        columns = _columns(sys.stderr) if self._tty else None
        if columns is not None and self._columns is not None and columns < self._columns:
            self._bar.fp.write("\r\x1b[K")
            self._bar.sp = self._bar.status_printer(self._bar.fp)
        self._columns = columns

    def _finish(self) -> None:
        self._fit()
        self._bar.n = self.done
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

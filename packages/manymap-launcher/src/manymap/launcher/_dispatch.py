"""What a pool with a manager thread needs: a doorbell and direct dispatch.

``ProcessPool`` and ``manymap.pools.rpc.ParallelPool`` each run one manager
thread that waits on its workers' channels at once. Two pieces are the same
for both and live here:

- :class:`Doorbell`, a self-pipe: other threads ring it (work queued, a
  timeout, close) to wake the manager out of its ``select``;
- :func:`dispatch_now`: a caller that queued work hands it to an idle worker
  from its own thread when the manager is not busy, one thread hand-off less
  per call, with Ctrl-C held until the batch is taken and sent
  (:func:`interrupts_deferred`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

__all__ = ["Doorbell", "dispatch_now", "interrupts_deferred"]

# The C module behind ``signal``. Its functions skip the enum conversions of
# ``signal.signal``/``getsignal``, which raise and catch a ValueError for a
# handler that is a function: several microseconds per call, three calls per
# direct dispatch.
_raw_signal: Any = sys.modules.get("_signal", signal)


class Doorbell:
    """A non-blocking self-pipe: :meth:`ring` from anywhere, select on :meth:`fileno`."""

    def __init__(self) -> None:
        self.fds = os.pipe()
        for fd in self.fds:
            os.set_blocking(fd, False)
        self._closed = False

    def fileno(self) -> int:
        """The end to wait on."""
        return self.fds[0]

    def ring(self) -> None:
        """Wake the waiter; a full pipe already has a ring pending, a closed one a gone pool."""
        if not self._closed:
            with contextlib.suppress(OSError):
                os.write(self.fds[1], b"\0")

    def drain(self) -> None:
        """Take every pending ring."""
        try:
            while os.read(self.fds[0], 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close both ends (once)."""
        if not self._closed:
            self._closed = True
            for fd in self.fds:
                os.close(fd)


def dispatch_now(lock: threading.Lock, dispatch: Callable[[], None]) -> bool:
    """Run ``dispatch`` in this thread if ``lock`` (the manager's) is free.

    Returns False, doing nothing, when the manager holds it: ring its doorbell.
    """
    if not lock.acquire(blocking=False):
        return False
    try:
        with interrupts_deferred():  # a batch is taken and sent, or neither
            dispatch()
    finally:
        lock.release()
    return True


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that arrives in the block until the block has run.

    Python raises ``KeyboardInterrupt`` between any two bytecodes of the main
    thread; in the middle of taking and sending a batch that would lose it.
    """
    handler = _raw_signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or not callable(handler):
        yield
        return
    held: list[FrameType | None] = []
    _raw_signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    try:
        yield
    finally:
        _raw_signal.signal(signal.SIGINT, handler)
        if held:
            handler(signal.SIGINT, held[0])

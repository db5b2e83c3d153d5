"""``Condition``: a ``threading.Condition`` whose notify costs nothing when nobody waits.

The pool's bookkeeping notifies after every change (a batch settled, a job
complete, a loan ended), but a thread waits on those conditions only now and
then (a lazy map's consumer, a thread pool's idle worker, a closing pool).
``threading.Condition.notify_all`` checks that the lock is held and walks its
waiters even when there are none: about a microsecond, several times per
``pipe``. This one looks first.
"""

from __future__ import annotations

import threading

__all__ = ["Condition"]


class Condition(threading.Condition):
    """A ``threading.Condition`` that skips a notify nobody waits for (the lock held, as always)."""

    def notify(self, n: int = 1) -> None:
        if self._waiters:  # type: ignore[attr-defined]  # (threading.Condition's own list)
            super().notify(n)

    def notify_all(self) -> None:
        if self._waiters:  # type: ignore[attr-defined]
            super().notify(len(self._waiters))  # type: ignore[attr-defined]

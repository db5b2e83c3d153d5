"""A pool's lifecycle: one state, the reason it broke, and whether workers are up.

::

    NEW --first call, or with--> RUNNING --close()--> CLOSED --join()--+
     ^                              |  \\--terminate()/broken--> TERMINATED
     +---------clear() / restart() from CLOSED or TERMINATED ----------+

A failed start (``_start_workers`` raised) breaks the pool: TERMINATED with
the error as its reason, so every later call raises ``PoolClosedError``
from it. Only :class:`~manymap.launcher.AbstractWorkerPool` changes the
state, under the pool's lock; its subclasses read it.
"""

from __future__ import annotations

import enum

__all__ = ["Lifecycle", "PoolState"]


class PoolState(enum.Enum):
    """Where a pool is in its life."""

    NEW = "new"  # no workers yet: they start at the first call, or when a with block enters
    RUNNING = "running"
    CLOSED = "closed"  # no new work; the workers drain what was handed out
    TERMINATED = "terminated"  # stopped at once, or broken (see Lifecycle.broken)

    def __str__(self) -> str:
        return self.value


class Lifecycle:
    """The lifecycle state of one pool (guarded by the pool's lock)."""

    __slots__ = ("_state", "accepting", "broken", "workers_up")

    def __init__(self) -> None:
        #: Whether the pool takes new work: a plain attribute, kept with ``state``,
        #: because a serial map reads it once per task.
        self.accepting = True
        self.state = PoolState.NEW
        self.broken: BaseException | None = None  # why a TERMINATED pool broke, if it did
        self.workers_up = False  # _start_workers ran and _join_workers has not

    @property
    def state(self) -> PoolState:
        """Where the pool is in its life."""
        return self._state

    @state.setter
    def state(self, state: PoolState) -> None:
        self._state = state
        self.accepting = state is PoolState.NEW or state is PoolState.RUNNING

    @property
    def running(self) -> bool:
        """Whether the pool is started and open."""
        return self.state is PoolState.RUNNING

    @property
    def closed(self) -> bool:
        """Whether ``close()`` ran (and not ``terminate()``)."""
        return self.state is PoolState.CLOSED

    @property
    def terminated(self) -> bool:
        """Whether the pool was terminated or broke."""
        return self.state is PoolState.TERMINATED

    def begin(self) -> bool:
        """NEW -> RUNNING; False if the pool was not new (nothing to start)."""
        if self.state is not PoolState.NEW:
            return False
        self.state = PoolState.RUNNING
        return True

    def close(self) -> bool:
        """-> CLOSED; False if it was already closed or terminated."""
        if not self.accepting:
            return False
        self.state = PoolState.CLOSED
        return True

    def terminate(self, reason: BaseException | None = None) -> bool:
        """-> TERMINATED (broken by ``reason`` if given); False if it already was."""
        if self.state is PoolState.TERMINATED:
            return False
        self.state = PoolState.TERMINATED
        if reason is not None:
            self.broken = reason
        return True

    def reset(self) -> None:
        """-> NEW, forgetting a breakage (``clear()``)."""
        self.state = PoolState.NEW
        self.broken = None

    def why_closed(self) -> str:
        """What a refused call says about the pool: its state, or how it broke."""
        return f"broken ({self.broken!r})" if self.broken is not None else str(self.state)

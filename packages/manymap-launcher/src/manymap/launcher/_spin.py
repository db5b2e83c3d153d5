"""``spin``: look for something for a moment without sleeping, before a wait that sleeps.

On a virtual machine a thread or process that went to sleep takes 20 to 30 µs
to be woken: more than a small task of a ``pipe`` in a loop. A waiter that
expects its message soon (a worker after its reply, a caller of ``pipe``, a
server relaying a job) first looks for it without sleeping, for :data:`SPIN`
seconds: 200 µs, as the kernel's own halt polling. Only then does it sleep.
A worker that has just replied waits longer, :data:`WORKER_SPIN`: its next
task comes once the caller has taken the reply, gone back to its own code and
made its next call, which takes longer than a reply takes to come (on a slow
virtual machine a ``pipe`` caller's turn took 150 to 250 µs, and a fifth of
its workers' 200 µs spins ran out first: ``pipe`` is 9% faster with 600 µs).

Between two looks it yields the processor (``sched_yield``): at once back
where no other process waits for this processor, but on a busy machine, where
the peer it waits for may share its processor, the peer runs instead of
waiting out the spin (a ``pipe`` with every other processor taken went from
440 to 180 µs a call).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["SPIN", "WORKER_SPIN", "spin"]


#: Seconds a waiter that expects its message soon looks for it without sleeping.
SPIN = 200e-6
#: Seconds a worker that has just replied looks for its next task without sleeping.
WORKER_SPIN = 600e-6

_yield: Callable[[], None] = getattr(os, "sched_yield", lambda: None)  # (not on every platform)


def spin(look: Callable[[], T], seconds: float = SPIN) -> T:
    """``look()`` again and again until it returns something true or ``seconds`` have
    passed; its last result (``look`` must not block: a poll with a zero timeout)."""
    found = look()
    if found:
        return found
    end = time.perf_counter() + seconds
    while not found and time.perf_counter() < end:
        _yield()
        found = look()
    return found

"""An importable module whose closures use module-level process-bound state.

Spawned workers import it by name (the tests' directory is on ``sys.path``,
see conftest.py) and run its closures on their own copy of its globals.
"""

from __future__ import annotations

import cProfile
import os
import threading
from collections.abc import Callable

LOCK = threading.Lock()
PROFILE = cProfile.Profile()
SCALE = 1
CALLS: list[int] = []


def make_counter(k: int) -> Callable[[int], tuple[int, int, int]]:
    """A closure over ``k`` using the module's lock, profile and globals."""

    def count(x: int) -> tuple[int, int, int]:
        with LOCK:
            PROFILE.enable()
            try:
                CALLS.append(x)
            finally:
                PROFILE.disable()
            return x * k * SCALE, os.getpid(), len(CALLS)

    return count

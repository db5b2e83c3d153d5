"""An importable module whose nested functions, closures and lambdas use module globals.

Not a test file: the tests of module globals put this directory on
``sys.path`` (and on ``PYTHONPATH`` for the processes they start) and import
it by its plain name, as users import their own modules.
"""

from __future__ import annotations

import contextvars
import cProfile
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

PROFILE = cProfile.Profile()
LOCK = threading.Lock()
CURRENT = contextvars.ContextVar("CURRENT", default="module default")
QUIET = np.errstate(divide="ignore", invalid="ignore")
SCALE = 1
CALLS: list[int] = []


def make_profiled() -> Callable[[int], int]:
    """A nested function that profiles itself with the module's Profile."""

    def profiled(n: int) -> int:
        PROFILE.enable()
        try:
            return sum(range(n)) * SCALE
        finally:
            PROFILE.disable()

    return profiled


def make_locked(k: int) -> Callable[[int], int]:
    """A closure over ``k`` that takes the module's lock and records its call."""

    def locked(x: int) -> int:
        with LOCK:
            CALLS.append(x)
            return x * k * SCALE

    return locked


def make_quiet_divide() -> Callable[[Any, Any], list[float]]:
    """A nested function using numpy's error state (a ContextVar) through a module global."""

    def quiet_divide(a: Any, b: Any) -> list[float]:
        with QUIET:
            result: list[float] = (np.asarray(a, dtype=float) / np.asarray(b, dtype=float)).tolist()
        return result

    return quiet_divide


def make_current() -> Callable[[], str]:
    """A nested function reading a module-level ContextVar."""

    def current() -> str:
        return f"{CURRENT.get()} x{SCALE}"

    return current


def make_globals_probe() -> Callable[[], dict[str, Any]]:
    """A nested function that returns the globals it runs with."""

    def probe() -> dict[str, Any]:
        return globals()

    return probe


def make_class() -> type:
    """A class defined in a function: by value, its methods on the module's globals."""

    class Counter:
        def __init__(self, start: int) -> None:
            self.value = start

        def bump(self) -> int:
            with LOCK:
                self.value += SCALE
                return self.value

    return Counter


square_lambda = lambda x: x * x * SCALE  # noqa: E731 - a module-level lambda goes by value
"""A module-level lambda: by value, its globals by reference."""

"""Task functions for tests whose workers are spawned: they import this module by name."""

from __future__ import annotations

from typing import Any

from manymap.pools.local import ProcessPool

_configured: list[str] = []


def inner_process_map(x: int) -> list[int]:
    """A task that runs a process pool of its own."""
    with ProcessPool(2) as inner:
        return inner.map(abs, range(-x, 0))


def configure(value: str) -> None:
    """A worker initializer."""
    _configured.append(value)


def configured(_: Any) -> list[str]:
    """What the initializer left in this worker."""
    return list(_configured)

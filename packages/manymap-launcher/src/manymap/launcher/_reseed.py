"""``reseed``: a forked worker's own random streams.

A process forked without ``exec`` starts with a copy of its parent's random
generators: ``random``'s (which reseeds itself after ``os.fork``) and
numpy's global ``RandomState`` (which does not). Two workers forked from one
parent would draw the same "random" numbers from numpy, silently: a Monte
Carlo map would repeat its samples. A worker calls :func:`reseed` once, as
it starts, before it runs a task.
"""

from __future__ import annotations

import os
import sys

__all__ = ["reseed"]


def reseed() -> None:
    """Seed ``random`` and numpy's global generator afresh from the OS, those this
    process has loaded (a module loaded later seeds itself, and numpy's
    generator exists only once ``numpy.random`` is loaded: it is not loaded here)."""
    random = sys.modules.get("random")
    if random is not None:
        random.seed()
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed(int.from_bytes(os.urandom(4), "little"))

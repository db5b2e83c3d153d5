"""Random-number helpers for parallel code (pathos' ``random_seed`` / ``random_state``).

Every ProcessPool worker reseeds ``random`` (and numpy's global generator,
when numpy is loaded) from the OS as it starts, so forked workers never
share a stream. These helpers seed or fetch a generator explicitly.
"""

from __future__ import annotations

import os
import time
from types import ModuleType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["random_seed", "random_state"]


def random_seed(seed: Any = None) -> None:
    """Seed ``random`` and, when numpy is installed, ``numpy.random`` with ``seed``."""
    import random  # loaded by the first call, not by the package (import time)

    random.seed(seed)
    try:
        import numpy
    except ImportError:
        return
    numpy.random.seed(None if seed is None else hash(seed) % 2**32)


def random_state(module: str | ModuleType = "random", new: bool = False, seed: Any = "!") -> Any:
    """A random generator of ``module`` (``"random"``, ``"numpy"`` or ``"numpy.random"``).

    Args:
        module: the module, or its name.
        new: return a new generator object (``random.Random`` /
            ``numpy.random.RandomState``) instead of the module's global one.
        seed: ``"!"`` leaves the generator as it is; ``"*"`` seeds it from
            the process id and the clock, so every worker gets its own
            stream; anything else (``None`` included) is passed to ``seed()``.

    Returns:
        The generator (the module itself for the global one).
    """
    import importlib  # loaded by the first call, not by the package (import time)

    if isinstance(module, str):
        module = importlib.import_module("numpy.random" if module == "numpy" else module)
    elif module.__name__ == "numpy":
        module = importlib.import_module("numpy.random")
    generator: Any = module
    if new:
        factory = getattr(module, "RandomState", None) or module.Random
        generator = factory()
    if seed == "!":
        return generator
    if seed == "*":
        seed = (os.getpid() * 1_000_003 + time.time_ns()) % 2**32
    generator.seed(seed)
    return generator

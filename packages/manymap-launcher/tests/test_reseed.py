"""``reseed``: forked children of one parent draw their own random numbers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable

import numpy.random

from manymap.launcher.lowlevel import reseed


def draws_of_forked_children(draw: Callable[[], float], *, reseeding: bool) -> list[float]:
    """What two children forked from this process draw first (each reseeding first or not)."""
    read, write = os.pipe()
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                if reseeding:
                    reseed()
                os.write(write, f"{draw()!r}\n".encode())
            finally:
                os._exit(0)
        children.append(pid)
    os.close(write)
    for pid in children:
        os.waitpid(pid, 0)
    with os.fdopen(read) as lines:
        return [float(line) for line in lines]


def test_forked_children_share_numpys_global_stream_unless_they_reseed() -> None:
    numpy.random.random()  # the parent's generator exists, as in a script that seeded it
    first, second = draws_of_forked_children(numpy.random.random, reseeding=False)
    assert first == second  # numpy does not reseed after a fork: why reseed exists
    first, second = draws_of_forked_children(numpy.random.random, reseeding=True)
    assert first != second


def test_random_draws_apart_after_reseed() -> None:
    first, second = draws_of_forked_children(random.random, reseeding=True)
    assert first != second


def test_reseed_does_not_load_numpy_random() -> None:
    """A worker that never draws from numpy's generator does not pay for its import
    (numpy loads ``numpy.random`` when first named)."""
    code = (
        "import sys, numpy\n"
        "from manymap.launcher.lowlevel import reseed\n"
        "reseed()\n"
        "print('numpy.random' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"

"""A program written for schwimmbad's pools, the way schwimmbad's docs write one.

It takes a pool (schwimmbad's ``MultiPool`` in its author's mind, or what
``schwimmbad.choose_pool`` returns), maps a callable worker over tasks with
a ``callback`` that writes each result to a file in the master, splits work
into ``pool.size`` batches, and closes the pool. (``is_master()`` /
``wait()`` belong to ``MPIPool`` programs: ``MultiPool`` has neither, the
conformance suite checks them apart.) The conformance suite runs :func:`main`
unchanged on every manymap pool; manymap-pools-local's tests run it on
schwimmbad's own ``SerialPool`` and ``MultiPool`` too, which proves it is
schwimmbad code and not manymap code. :func:`expected` is the serial answer.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

__all__ = ["Worker", "expected", "main", "make_tasks", "sum_batch"]


class Worker:
    """A callable worker with a ``callback`` that records results in the master."""

    def __init__(self, output_path: str | Path) -> None:
        self.output_path = str(output_path)

    def work(self, a: int, b: int) -> int:
        """The task: ``a**2 + b**2``."""
        return a**2 + b**2

    def callback(self, result: int) -> None:
        """Append ``result`` to the output file (runs in the master only)."""
        with open(self.output_path, "a", encoding="utf-8") as output:
            output.write(f"{result}\n")

    def __call__(self, task: tuple[int, int]) -> int:
        a, b = task
        return self.work(a, b)


def sum_batch(batch: list[tuple[int, int]]) -> int:
    """A batched task: the sum of ``a**2 + b**2`` over a batch."""
    return sum(a**2 + b**2 for a, b in batch)


def make_tasks(count: int = 300) -> list[tuple[int, int]]:
    """The same pairs of integers every time."""
    rng = random.Random(1234)
    return [(rng.randrange(1000), rng.randrange(1000)) for _ in range(count)]


def main(pool: Any, output_path: str | Path) -> tuple[list[int], int]:
    """Run the program on ``pool`` and close it; returns the results and their total."""
    worker = Worker(output_path)
    tasks = make_tasks()
    results = list(pool.map(worker, tasks, callback=worker.callback))

    n_batches = max(pool.size, 1)
    batches = [tasks[i::n_batches] for i in range(n_batches)]
    total = sum(pool.map(sum_batch, batches))

    pool.close()
    return results, total


def expected(output_path: str | Path) -> tuple[list[int], int]:
    """What :func:`main` returns and writes, computed serially with the builtin ``map``."""
    worker = Worker(output_path)
    tasks = make_tasks()
    results = list(map(worker, tasks))
    for result in results:
        worker.callback(result)
    return results, sum_batch(tasks)

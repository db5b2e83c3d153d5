"""How many tasks go to a worker at once: the batch-size policy of every pool.

A call's ``chunksize`` is taken as given. Without one: one task per batch
with a ``timeout`` (the clock runs per task); otherwise the stdlib's choice,
four batches per worker, until the function's earlier tasks show that they
are cheap. Then batches grow to about ``batch_seconds`` of work each (still
at least one per worker), so that a map of cheap tasks is not a string of
round trips. A lazy map of unknown length (``imap`` over a generator) takes
at most :data:`LAZY_BATCH_CAP` tasks per automatic batch.

A pool whose round trips cost milliseconds (an engine pool) tapers the
automatic batches of a map whose input is known (:func:`batch_sizes`):
the last ones are smaller, so that its workers end close together rather
than one batch apart. Only where a batch may be long (:func:`tapers`): a
batch of known-cheap tasks ends soon enough.
"""

from __future__ import annotations

import math

__all__ = ["LAZY_BATCH_CAP", "TAPER_SECONDS", "batch_sizes", "choose_chunksize", "read_ahead", "tapers"]

LAZY_BATCH_CAP = 128  # the most tasks an automatic imap batch takes
TAPER_SECONDS = 0.05  # a batch known to take less is not worth tapering


def choose_chunksize(
    *,
    chunksize: int | None,
    timeout: float | None,
    length: int | None,
    workers: int,
    cost: float | None,
    batch_seconds: float,
) -> int:
    """Tasks per batch.

    Args:
        chunksize: the call's own choice, if any.
        timeout: the call's per-task timeout, if any.
        length: the number of tasks, if known.
        workers: the workers the batches are spread over.
        cost: seconds one task of this function took so far, if known.
        batch_seconds: seconds of work a batch of known-cheap tasks aims at.
    """
    if chunksize is not None:
        return chunksize
    if timeout is not None:
        return 1
    size = math.ceil(length / (4 * workers)) if length else 1
    if cost is not None and size * cost < batch_seconds:
        fitting = math.ceil(batch_seconds / max(cost, 1e-9))
        if not length:
            return min(LAZY_BATCH_CAP, fitting)
        rounds = math.ceil(length / (min(fitting, length) * workers))  # every worker gets as many
        size = math.ceil(length / (rounds * workers))
    return max(1, size)


def batch_sizes(length: int, chunksize: int, taper: int = 0) -> list[int]:
    """The sizes of the batches that ``length`` tasks are cut into: ``chunksize``
    each (the last one what is left), or with ``taper`` (a number of workers)
    guided: no batch takes more than ``1 / (2 * taper)`` of the tasks not cut
    yet, nor fewer than a quarter of ``chunksize`` (and 2). 64 tasks of
    ``chunksize`` 8 over 2 workers: 8, 8, 8, 8, 8, 6, 5, 4, 3, 2, 2, 2."""
    if not taper:
        return [min(chunksize, length - offset) for offset in range(0, length, chunksize)]
    floor = max(2, chunksize // 4)
    sizes = []
    left = length
    while left > 0:
        size = min(chunksize, max(floor, math.ceil(left / (2 * taper))), left)
        sizes.append(size)
        left -= size
    return sizes


def tapers(chunksize: int, cost: float | None) -> bool:
    """Whether batches of ``chunksize`` tasks of ``cost`` seconds each (``None``:
    not known yet) are worth tapering: they may last :data:`TAPER_SECONDS` or more."""
    return cost is None or chunksize * cost >= TAPER_SECONDS


def read_ahead(chunksize: int, nodes: int) -> int:
    """How many tasks a lazy map reads ahead of its consumer: enough to keep
    every one of ``nodes`` workers busy from the call on."""
    return chunksize * max(8, 4 * nodes)

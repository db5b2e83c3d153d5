"""``ReferencePool``: the pool that proves the conformance suite.

It is :class:`~manymap.launcher.lowlevel.ThreadWorkerPool` as it stands, the smallest
core written only against the scheduling hooks of
:class:`~manymap.launcher.AbstractWorkerPool`. Use
``manymap.pools.local.ThreadPool`` in real code.
"""

from __future__ import annotations

from manymap.launcher._threads import ThreadWorkerPool

__all__ = ["ReferencePool"]


class ReferencePool(ThreadWorkerPool):
    """A minimal thread pool over the launcher's scheduling core."""

"""``ThreadPool``: worker threads of this process.

The launcher's :class:`~manymap.launcher.lowlevel.ThreadWorkerPool` core, under its
pathos name. Threads share the interpreter: they help with I/O-bound tasks
and with code that releases the GIL (numpy, compression, ...). A task over
its ``timeout`` is reported at once and its thread replaced, but a thread
cannot be killed, so it runs the task to its end in the background.
"""

from __future__ import annotations

from manymap.launcher.lowlevel import ThreadWorkerPool

__all__ = ["ThreadPool"]


class ThreadPool(ThreadWorkerPool):
    """A pool of worker threads (pathos' ``ThreadPool``).

    Args:
        nodes: number of threads (default: the number of cores); aliases
            ``nthreads``, ``processes`` (the stdlib's name).
        initializer: called as ``initializer(*initargs)`` in each new thread.
        initargs: arguments of ``initializer``.
        **options: default task options (``chunksize``, ``timeout``,
            ``retries``, ``progress``).
    """

    node_aliases = ("nthreads", "processes")

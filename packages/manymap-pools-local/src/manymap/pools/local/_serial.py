"""``SerialPool``: the pool contract, run in the caller's thread.

For debugging and for the serial end of "one code base from serial to
distributed": tasks run one after another, in the thread that asks, at the
moment the work is queued (so ``amap`` returns a finished result and ``imap``
runs a window ahead of its consumer). A per-task ``timeout`` is reported
once the task has returned; nothing can interrupt it.
"""

from __future__ import annotations

import threading

from manymap.launcher import AbstractWorkerPool, run_calls

__all__ = ["SerialPool"]


class SerialPool(AbstractWorkerPool):
    """Runs every task in the calling thread, in order.

    Args:
        nodes: accepted for a uniform constructor; always 1.
        **options: default task options (``chunksize``, ``timeout``,
            ``retries``, ``progress``).
    """

    node_aliases = ()

    def __init__(self, nodes: int | None = None, **options: object) -> None:
        super().__init__(1, **options)  # type: ignore[arg-type]
        self._running = threading.local()

    def _default_nodes(self) -> int:
        return 1

    def _start_workers(self) -> None:
        pass

    def _stop_workers(self, *, kill: bool) -> None:
        pass

    def _join_workers(self) -> None:
        pass

    def _resize(self, nodes: int) -> None:
        pass  # a serial pool has one worker, the caller, whatever it is called

    def _wake(self) -> None:
        if getattr(self._running, "active", False):
            return  # a task of this pool queued more work: the loop below runs it
        self._running.active = True
        worker = f"serial[{threading.current_thread().name}]"
        try:
            while (batch := self._take_batch()) is not None:
                batch.start(worker)
                values, failures = run_calls(
                    batch.function, batch.items, star=batch.star, kwargs=batch.kwargs
                )
                batch.finish(values, failures)
        finally:
            self._running.active = False

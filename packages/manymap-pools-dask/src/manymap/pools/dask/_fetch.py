"""Fetching what Dask futures hold, off Dask's threads and off the manager.

A Dask future's done-callback runs on one thread that Dask shares between
every client of the process, and fetching a result is a round trip that can
wait for ever (a result whose worker died is recomputed, and a task pinned to
a dead worker never is). So the callbacks only hand the future to a
:class:`Fetcher`: a few threads of the pool's own that fetch with a time
limit and put what they got into the pool's inbox. They hold the inbox,
never the pool.
"""

from __future__ import annotations

import concurrent.futures
import contextlib

from manymap.launcher.lowlevel import EngineInbox, EngineWorker

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FETCH_TIMEOUT", "Fetcher"]

FETCH_TIMEOUT = 60.0  # seconds a result may take to arrive once its task is done
_THREADS = 4


class Fetcher:
    """Fetches finished futures' outcomes into ``inbox`` (see the module's text)."""

    def __init__(self, inbox: EngineInbox, record: Any) -> None:
        self._inbox = inbox
        self._record = record  # (address, pid, host, threads) -> EngineWorker
        self._threads = concurrent.futures.ThreadPoolExecutor(
            _THREADS, thread_name_prefix="manymap-dask-fetch"
        )
        self._closed = False
        #: Tokens whose task Dask reported finished. Kept apart from the future's
        #: status, which a failed fetch turns back to pending (Dask reschedules it).
        self.finished: set[int] = set()
        #: Tokens whose outcome the worker handed over (``_worker._hand_over``):
        #: nothing to fetch.
        self.handed: set[int] = set()

    def task_done(self, token: int, future: Any) -> None:
        """Done-callback of an engine task (Dask's callback thread): fetch it,
        unless its outcome was handed over."""
        if token in self.handed:
            self.handed.discard(token)
            return
        if future.status == "finished":
            self.finished.add(token)
        self._submit(self._fetch_task, token, future)

    def probe_done(self, address: str, future: Any) -> None:
        """Done-callback of a probe of a new worker: fetch who it is."""
        self._submit(self._fetch_probe, address, future)

    def close(self) -> None:
        """Stop fetching; waits for the fetches under way (the client is closed
        first, which cancels what they wait for)."""
        self._closed = True
        self._threads.shutdown(wait=True, cancel_futures=True)

    def _submit(self, *call: Any) -> None:
        if not self._closed:
            with contextlib.suppress(RuntimeError):  # shut down meanwhile
                self._threads.submit(*call)

    def _fetch_task(self, token: int, future: Any) -> None:
        status = future.status
        if status == "finished":
            try:
                result = future.result(timeout=FETCH_TIMEOUT)
            except Exception as error:
                self._inbox.put("lost", token, f"its result could not be fetched ({error!r})")
                return
            self._inbox.put("done", token, result)
        elif status == "error":
            try:
                failure = future.exception(timeout=FETCH_TIMEOUT)
            except Exception as other:
                failure = other
            if type(failure).__name__ == "KilledWorker":
                self._inbox.put("lost", token, f"its Dask worker died ({failure})")
            else:
                self._inbox.put("done", token, ("error", failure))
        else:  # cancelled or lost: the scheduler dropped it
            self._inbox.put("cancelled", token)

    def _fetch_probe(self, address: str, future: Any) -> None:
        if future.status != "finished":
            return
        try:
            pid, host, threads = future.result(timeout=FETCH_TIMEOUT)
        except Exception:  # the worker went again: its removal is reported on its own
            return
        worker: EngineWorker = self._record(address, pid, host, threads)
        self._inbox.put("joined", worker)

"""Sending the pool's batches to the scheduler now, not at the end of Dask's interval.

Dask batches the small messages of a client's connection to the scheduler
(``BatchedSend``): it sends at most once every 10 ms. That is right for a
flood of tiny messages, and costs a pool up to 10 ms on each batch it hands
out, since it sends a few messages at a time and then waits for their
outcome. :func:`send_soon` has the stream send what it holds at once.
"""

from __future__ import annotations

import contextlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["send_soon"]


def send_soon(client: Any) -> None:
    """From any thread: have ``client``'s stream to the scheduler send what it
    holds, once the messages queued before this call are in it (its loop runs
    callbacks in the order they came)."""
    with contextlib.suppress(Exception):  # a client closing meanwhile: nothing to hurry
        client.loop.add_callback(_send_now, client)


def _send_now(client: Any) -> None:
    # On the client's loop. A BatchedSend sends once its deadline is cleared and it is woken.
    with contextlib.suppress(AttributeError):
        stream = client.scheduler_comm
        if stream.buffer:
            stream.next_deadline = None
            stream.waker.set()

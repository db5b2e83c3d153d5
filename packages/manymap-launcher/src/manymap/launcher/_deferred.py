"""What the launcher imports only when a call first needs it, never at import time.

A plain ``map`` never awaits a result, so ``asyncio`` (which brings ``ssl``
and costs more to import than the rest of the launcher's imports together)
is imported the first time a handle is awaited. Each deferred import is one
function here, named for what the caller needs, so call sites stay typed and
every deferred import of the package is in this one place.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    import asyncio
    import concurrent.futures
    from typing import TypeVar

    T = TypeVar("T")

__all__ = ["wrap_future"]


def wrap_future(future: concurrent.futures.Future[T]) -> asyncio.Future[T]:
    """``asyncio.wrap_future(future)``, importing ``asyncio`` on first use."""
    import asyncio

    wrapped: asyncio.Future[T] = asyncio.wrap_future(future)
    return wrapped

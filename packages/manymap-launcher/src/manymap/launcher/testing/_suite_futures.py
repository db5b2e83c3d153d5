"""Conformance: ``concurrent.futures`` and ``asyncio`` on every pool.

Part of :class:`~manymap.launcher.testing.PoolConformance` (which inherits
these tests): ``submit`` returns futures, ``shutdown`` (with
``cancel_futures``), done-callbacks, conversion of result handles to
futures, and awaiting results (errors included) in ``asyncio``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any

import pytest

from manymap.launcher import (
    AbstractWorkerPool,
    AsyncResult,
    PoolClosedError,
)
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._base import WAIT
from manymap.launcher.testing._suite_part import SuitePart

__all__ = ["FutureConformance"]


class FutureConformance(SuitePart):
    """Futures and asyncio, as tests (see the module)."""

    # ----------------------------------------------- futures and asyncio

    def test_submit_returns_futures(self, pool: AbstractWorkerPool) -> None:
        futures = [pool.submit(tasks.square, x) for x in range(10)]
        assert all(isinstance(f, concurrent.futures.Future) for f in futures)
        _, not_done = concurrent.futures.wait(futures, timeout=WAIT)
        assert not not_done
        assert sorted(f.result() for f in concurrent.futures.as_completed(futures, timeout=WAIT)) == [
            x * x for x in range(10)
        ]
        assert pool.submit(tasks.describe, 1, k=2).result(WAIT) == ((1,), {"k": 2})

    def test_executor_shutdown(self) -> None:
        pool = self.make_pool(self.nodes)
        future = pool.submit(tasks.square, 4)
        pool.shutdown(wait=True)
        assert future.result(0) == 16
        with pytest.raises(PoolClosedError):
            pool.submit(tasks.square, 1)

    def test_executor_shutdown_cancels_futures(self) -> None:
        pool = self.make_pool(1)
        futures = [pool.submit(tasks.sleep_then, x, 0.2) for x in range(10)]
        pool.shutdown(wait=True, cancel_futures=True)
        assert any(f.cancelled() for f in futures) is self.concurrent
        for future in futures:
            assert future.cancelled() or future.result(0) in range(10)

    def test_done_callbacks(self, pool: AbstractWorkerPool) -> None:
        seen: list[Any] = []
        arrived = threading.Event()

        def callback(result: concurrent.futures.Future[Any]) -> None:
            seen.append(result.result())
            arrived.set()

        pool.amap(tasks.square, range(4)).add_done_callback(callback)
        assert arrived.wait(WAIT)
        assert seen == [[0, 1, 4, 9]]

    def test_future_conversion(self, pool: AbstractWorkerPool) -> None:
        result = pool.apipe(tasks.square, 5)
        future = result.as_future()
        assert isinstance(future, concurrent.futures.Future)
        assert future.result(WAIT) == 25
        with concurrent.futures.ThreadPoolExecutor(1) as other:
            wrapped = AsyncResult.from_future(other.submit(tasks.square, 6))
            assert wrapped.get(WAIT) == 36
            assert wrapped.successful()

    def test_asyncio(self, pool: AbstractWorkerPool) -> None:
        async def main() -> tuple[Any, ...]:
            loop = asyncio.get_running_loop()
            return await asyncio.wait_for(
                asyncio.gather(
                    pool.amap(tasks.square, range(5)),
                    pool.apipe(tasks.describe, 1, k=2),
                    loop.run_in_executor(pool, tasks.square, 7),  # type: ignore[arg-type]  # needs only submit()
                ),
                WAIT,
            )

        mapped, piped, executed = asyncio.run(main())
        assert mapped == [0, 1, 4, 9, 16]
        assert piped == ((1,), {"k": 2})
        assert executed == 49

    def test_asyncio_error(self, pool: AbstractWorkerPool) -> None:
        async def main() -> Any:
            return await asyncio.wait_for(pool.apipe(tasks.fail_on, 3), WAIT)

        with pytest.raises(ValueError, match="bad value 3"):
            asyncio.run(main())

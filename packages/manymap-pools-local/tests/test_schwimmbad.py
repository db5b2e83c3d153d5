"""Code written for schwimmbad's pools runs unchanged on every local manymap pool.

The program (``manymap.launcher.testing._schwimmbad_example``) is first run on
schwimmbad's own ``SerialPool`` and ``MultiPool``, which proves that it is
schwimmbad code, then on each manymap pool; every run gives the serial answer.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import schwimmbad

from manymap.launcher.testing import _schwimmbad_example as example
from manymap.pools.local import ProcessPool, SerialPool, ThreadPool

POOLS: dict[str, Callable[[], Any]] = {
    "schwimmbad.SerialPool": schwimmbad.SerialPool,
    "schwimmbad.MultiPool": lambda: schwimmbad.MultiPool(2),
    "SerialPool": SerialPool,
    "ThreadPool": lambda: ThreadPool(2),
    "ProcessPool": lambda: ProcessPool(2),
}


@pytest.mark.parametrize("name", POOLS)
def test_schwimmbad_program(name: str, tmp_path: Path) -> None:
    expected = example.expected(tmp_path / "serial.txt")
    pool = POOLS[name]()
    try:
        assert example.main(pool, tmp_path / "pooled.txt") == expected
    finally:
        if hasattr(pool, "join"):  # schwimmbad's SerialPool has neither
            pool.terminate()
            pool.join()
    assert (tmp_path / "pooled.txt").read_text() == (tmp_path / "serial.txt").read_text()


@pytest.mark.parametrize("name", ["ThreadPool", "ProcessPool"])
def test_choose_pool_style_code(name: str) -> None:
    # schwimmbad's pools are used through their common surface; so are manymap's
    pool = POOLS[name]()
    with pool:
        assert pool.is_master()
        assert not pool.is_worker()
        assert pool.size == 2
        assert pool.enabled()
        pool.wait()
        seen: list[int] = []
        assert pool.map(abs, [-1, -2, 3], callback=seen.append) == [1, 2, 3]
        assert seen == [1, 2, 3]

"""Code written for schwimmbad's pools, run unchanged on manymap pools.

The reference is the same code on schwimmbad's own ``SerialPool``. Each demo closes
the pool it is given, so each run gets a fresh pool (``new_pool``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import client_code
from client_support import require

TASKS = client_code.schwimmbad_tasks(200, seed=3)


def test_schwimmbad_demo_main(new_pool: Callable[[], Any]) -> None:
    schwimmbad = require("schwimmbad")
    serial = client_code.schwimmbad_main(schwimmbad.SerialPool(), TASKS)
    assert client_code.schwimmbad_main(new_pool(), TASKS) == serial


def test_schwimmbad_worker_class_with_a_callback(new_pool: Callable[[], Any], tmp_path: Path) -> None:
    """``pool.map(worker, tasks, callback=worker.callback)``: the callback runs here, once per result."""
    schwimmbad = require("schwimmbad")
    serial_file, pool_file = tmp_path / "serial.txt", tmp_path / "pool.txt"
    serial = client_code.schwimmbad_callback_main(schwimmbad.SerialPool(), str(serial_file), 64)
    results = client_code.schwimmbad_callback_main(new_pool(), str(pool_file), 64)
    assert results == serial
    # schwimmbad's pools call back as results arrive: the same lines, maybe in another order
    assert sorted(pool_file.read_text().splitlines()) == sorted(serial_file.read_text().splitlines())
    assert len(serial_file.read_text().splitlines()) == 64


def test_schwimmbad_mpi_idiom(new_pool: Callable[[], Any]) -> None:
    """``if not pool.is_master(): pool.wait(); sys.exit(0)``, then the master maps."""
    schwimmbad = require("schwimmbad")
    serial = client_code.schwimmbad_mpi_style_main(schwimmbad.SerialPool(), TASKS)
    assert client_code.schwimmbad_mpi_style_main(new_pool(), TASKS) == serial


def test_schwimmbad_size_splits_the_work(new_pool: Callable[[], Any]) -> None:
    """Code that reads ``pool.size`` (the number of workers) to batch its tasks."""
    pool = new_pool()
    try:
        assert isinstance(pool.size, int)
        assert pool.size >= 0  # schwimmbad's SerialPool says 0
        n_batches = max(pool.size, 1)
        batches = [TASKS[i::n_batches] for i in range(n_batches)]
        worker = client_code.worker  # a cell of the lambda below: no global of this test module
        sums = pool.map(lambda batch: sum(worker(t) for t in batch), batches)
    finally:
        pool.close()
    # the same batches summed serially: floating-point sums depend on their order
    assert sums == [sum(client_code.worker(t) for t in batch) for batch in batches]

"""What the real-client tests share: the policy for missing clients and how each kind of pool is made."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HERE = Path(__file__).parent

REQUIRE_ENV = "MANYMAP_REQUIRE_CLIENTS"
WORKERS = 2
POOL_KINDS = ["serial", "thread", "process", "parallel", "parallel-ssh"]


def require(module: str) -> ModuleType:
    """Import a client library; skip loudly without it, or fail when ``MANYMAP_REQUIRE_CLIENTS=1``.

    ``nox -s integration`` installs every client and sets the variable, so there a missing
    client is a failure, never a skip.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if os.environ.get(REQUIRE_ENV, "") == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but the client {module!r} cannot be imported: {error}")
        pytest.skip(f"CLIENT LIBRARY MISSING (nox -s integration installs it): {module}: {error}")


def make_pool(kind: str, request: pytest.FixtureRequest) -> Any:
    """A new pool of ``kind`` with :data:`WORKERS` workers."""
    from manymap.pools.local import ProcessPool, SerialPool, ThreadPool
    from manymap.pools.rpc import ParallelPool

    if kind == "serial":
        return SerialPool()
    if kind == "thread":
        return ThreadPool(WORKERS)
    if kind == "process":
        return ProcessPool(WORKERS)
    if kind == "parallel":
        return ParallelPool(WORKERS)
    if kind == "parallel-ssh":
        from manymap.hosts import Host

        sshd = request.getfixturevalue("sshd")
        host = Host(
            name="clients-sshd",
            ssh=sshd.alias,
            ssh_config=str(sshd.ssh_config),
            python=sys.executable,
            workers=WORKERS,
            env={"PYTHONPATH": str(HERE)},
        )
        return ParallelPool(0, servers=[host])
    raise ValueError(f"no pool kind {kind!r}")


def end(pool: Any) -> None:
    """Stop a pool whatever state a test left it in (closed, broken or still open)."""
    pool.terminate()
    pool.join()

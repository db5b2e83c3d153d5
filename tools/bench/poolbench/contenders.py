"""The contenders: each library's pool behind one small interface (make, map, call, close, kill).

A factory registered with ``@contender(key)`` returns a :class:`Contender`, or
raises :class:`Unavailable` with a reason (library missing, no sshd). Factories
import their library lazily, so a missing one costs nothing.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolbench.config import SERIAL

Pool = Any
MapFn = Callable[[Pool, Callable[..., Any], list[Any]], list[Any]]
CallFn = Callable[[Pool, Callable[..., Any], Any], Any]


class Unavailable(Exception):
    """A contender that cannot run here (library missing, no sshd, ...); the reason is shown."""


@dataclass
class Contender:
    key: str
    label: str  # markdown, for the table
    short: str  # plain text, for the chart
    make: Callable[[int], Pool]  # workers -> a started pool
    map: MapFn  # the library's map with its default chunking (see the notes)
    call: CallFn  # one synchronous call: pipe / apply / submit().result()
    close: Callable[[Pool], None]  # close and join (what `with` does)
    kill: Callable[[Pool], None]  # terminate after a hang or an error
    versions: dict[str, str] = field(default_factory=dict)


#: key -> factory, in table order. Factories import their library lazily.
CONTENDERS: dict[str, Callable[[], Contender]] = {}


def contender(key: str) -> Callable[[Callable[[], Contender]], Callable[[], Contender]]:
    """Register a contender factory under ``key`` (the name ``--contenders`` takes)."""

    def register(factory: Callable[[], Contender]) -> Callable[[], Contender]:
        CONTENDERS[key] = factory
        return factory

    return register


def stdlib_chunksize(items: int, workers: int) -> int:
    """The chunksize ``multiprocessing.Pool.map`` picks for ``items`` items."""
    chunksize, extra = divmod(items, workers * 4)
    return chunksize + 1 if extra else chunksize


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _import(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise Unavailable(f"cannot import {module}: {exc}") from exc


def _executor_map(pool: Pool, fn: Callable[..., Any], items: list[Any]) -> list[Any]:
    return list(pool.map(fn, items, chunksize=stdlib_chunksize(len(items), pool._max_workers)))


def _submit(pool: Pool, fn: Callable[..., Any], arg: Any) -> Any:
    return pool.submit(fn, arg).result()


def _pathos_like_map(pool: Pool, fn: Callable[..., Any], items: list[Any]) -> list[Any]:
    # Their ``map`` returns a list already, as the stdlib Pool's does: copying it would time
    # the benchmark's own work (100,000 references, and the copy's memory touched first).
    result = pool.map(fn, items)
    return result if type(result) is list else list(result)


def _pipe(pool: Pool, fn: Callable[..., Any], arg: Any) -> Any:
    return pool.pipe(fn, arg)


def _close_join(pool: Pool) -> None:
    pool.close()
    pool.join()


@contender("stdlib")
def _stdlib() -> Contender:
    import multiprocessing

    def kill(pool: Pool) -> None:
        pool.terminate()
        pool.join()

    return Contender(
        key="stdlib",
        label="`multiprocessing.Pool`",
        short="multiprocessing.Pool",
        make=lambda n: multiprocessing.Pool(n),
        map=lambda pool, fn, items: pool.map(fn, items),
        call=lambda pool, fn, arg: pool.apply(fn, (arg,)),
        close=_close_join,
        kill=kill,
    )


@contender("futures")
def _futures() -> Contender:
    import concurrent.futures

    def kill(pool: Pool) -> None:
        processes = list((pool._processes or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()

    return Contender(
        key="futures",
        label="`concurrent.futures.ProcessPoolExecutor`",
        short="concurrent.futures PPE",
        make=lambda n: concurrent.futures.ProcessPoolExecutor(n),
        map=_executor_map,
        call=_submit,
        close=lambda pool: pool.shutdown(wait=True),
        kill=kill,
    )


@contender("loky")
def _loky() -> Contender:
    loky = _import("loky")
    return Contender(
        key="loky",
        label="loky `ProcessPoolExecutor`",
        short="loky",
        make=lambda n: loky.ProcessPoolExecutor(max_workers=n),
        map=_executor_map,
        call=_submit,
        close=lambda pool: pool.shutdown(wait=True),
        kill=lambda pool: pool.shutdown(wait=False, kill_workers=True),
        versions={"loky": version("loky")},
    )


def _pathos(key: str, cls: str) -> Contender:
    pools = _import("pathos.pools")
    pool_class = getattr(pools, cls)

    def close(pool: Pool) -> None:
        try:
            _close_join(pool)
        finally:
            pool.clear()  # pathos caches pools globally: drop it so the next one is fresh

    def kill(pool: Pool) -> None:
        try:
            pool.terminate()
        finally:
            pool.clear()

    return Contender(
        key=key,
        label=f"pathos `{cls}`",
        short=f"pathos {cls}",
        make=lambda n: pool_class(nodes=n),
        map=_pathos_like_map,
        call=_pipe,
        close=close,
        kill=kill,
        versions={name: version(name) for name in ("pathos", "multiprocess", "dill")},
    )


@contender("pathos-process")
def _pathos_process() -> Contender:
    return _pathos("pathos-process", "ProcessPool")


@contender("pathos-thread")
def _pathos_thread() -> Contender:
    return _pathos("pathos-thread", "ThreadPool")


def _manymap(key: str, cls: str) -> Contender:
    local = _import("manymap.pools.local")
    pool_class = getattr(local, cls)
    return Contender(
        key=key,
        label=f"manymap `{cls}`",
        short=f"manymap {cls}",
        make=(lambda n: pool_class()) if cls == "SerialPool" else (lambda n: pool_class(n)),
        map=_pathos_like_map,
        call=_pipe,
        close=_close_join,
        kill=lambda pool: pool.terminate(),
        versions={
            name: version(name) for name in ("manymap-pools-local", "manymap-launcher", "manymap-serialize")
        },
    )


@contender("manymap-process")
def _manymap_process() -> Contender:
    return _manymap("manymap-process", "ProcessPool")


@contender("manymap-thread")
def _manymap_thread() -> Contender:
    return _manymap("manymap-thread", "ThreadPool")


@contender(SERIAL)
def _manymap_serial() -> Contender:
    return _manymap(SERIAL, "SerialPool")


# manymap-pools-rpc (issue 6): ParallelPool with local ppft workers, ParallelPool on a
# manymap-server reached through an ssh tunnel to this machine, and pathos' ParallelPool.

_RPC_VERSIONS = ("manymap-pools-rpc", "manymap-launcher", "manymap-serialize", "ppft")


def _manymap_parallel_pool(key: str, label: str, short: str, make: Callable[[int], Pool]) -> Contender:
    return Contender(
        key=key,
        label=label,
        short=short,
        make=make,
        map=_pathos_like_map,
        call=_pipe,
        close=_close_join,
        kill=lambda pool: pool.terminate(),
        versions={name: version(name) for name in _RPC_VERSIONS},
    )


@contender("manymap-parallel")
def _manymap_parallel() -> Contender:
    rpc = _import("manymap.pools.rpc")
    return _manymap_parallel_pool(
        "manymap-parallel", "manymap `ParallelPool`", "manymap ParallelPool", lambda n: rpc.ParallelPool(n)
    )


_SSH_HOST: list[tuple[str, str | None]] = []  # (host, ssh_config) of the ssh contender, found once


def _ssh_host() -> tuple[str, str | None]:
    """The ssh host of ``manymap-parallel-ssh``: ``$MANYMAP_BENCH_SSH_HOST`` (with
    ``$MANYMAP_BENCH_SSH_CONFIG``), else a private sshd on 127.0.0.1 from the
    monorepo's test fixtures (tools/testhosts), stopped at exit."""
    if _SSH_HOST:
        return _SSH_HOST[0]
    host = os.environ.get("MANYMAP_BENCH_SSH_HOST")
    if host:
        _SSH_HOST.append((host, os.environ.get("MANYMAP_BENCH_SSH_CONFIG")))
        return _SSH_HOST[0]
    testhosts = _import("manymap_testhosts")
    import atexit
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="manymap-bench-sshd-"))
    try:
        server = testhosts.SSHServer(directory / "sshd", testhosts.Keyring(directory / "keys"))
        server.start()
    except Exception as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise Unavailable(f"no sshd to tunnel through: {exc}") from exc

    def stop() -> None:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    _SSH_HOST.append((server.alias, str(server.ssh_config)))
    return _SSH_HOST[0]


@contender("manymap-parallel-ssh")
def _manymap_parallel_ssh() -> Contender:
    rpc = _import("manymap.pools.rpc")
    host, ssh_config = _ssh_host()

    def make(n: int) -> Pool:
        return rpc.ParallelPool(
            0, servers=[host], ssh_config=ssh_config, python=sys.executable, server_workers=n
        )

    return _manymap_parallel_pool(
        "manymap-parallel-ssh",
        "manymap `ParallelPool` (server over an ssh tunnel)",
        "manymap ParallelPool via ssh",
        make,
    )


@contender("manymap-parallel-mixed")
def _manymap_parallel_mixed() -> Contender:
    rpc = _import("manymap.pools.rpc")
    host, ssh_config = _ssh_host()

    def make(n: int) -> Pool:
        remote = max(1, n // 2)
        return rpc.ParallelPool(
            n - remote, servers=[host], ssh_config=ssh_config, python=sys.executable, server_workers=remote
        )

    return _manymap_parallel_pool(
        "manymap-parallel-mixed",
        "manymap `ParallelPool` (half local, half over an ssh tunnel)",
        "manymap ParallelPool local+ssh",
        make,
    )


@contender("pathos-parallel")
def _pathos_parallel() -> Contender:
    return _pathos("pathos-parallel", "ParallelPool")


# manymap-pools-dask (issue 14): DaskPool on its embedded LocalCluster, beside Dask's own
# client.map (one Dask task per item) on a bare LocalCluster of the same shape.

_DASK_VERSIONS = ("manymap-pools-dask", "dask", "distributed")


class DaskClient:
    """A bare ``LocalCluster`` of ``n`` single-threaded worker processes on 127.0.0.1 and its ``Client``."""

    def __init__(self, n: int) -> None:
        import distributed

        self.cluster = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        )
        self.client = distributed.Client(self.cluster, set_as_default=False)

    def map(self, fn: Callable[..., Any], items: list[Any]) -> list[Any]:
        return list(self.client.gather(self.client.map(fn, items, pure=False)))

    def call(self, fn: Callable[..., Any], arg: Any) -> Any:
        return self.client.submit(fn, arg, pure=False).result()

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


@contender("manymap-dask")
def _manymap_dask() -> Contender:
    dask_pools = _import("manymap.pools.dask")
    return Contender(
        key="manymap-dask",
        label="manymap `DaskPool` (embedded LocalCluster)",
        short="manymap DaskPool",
        make=lambda n: dask_pools.DaskPool(n),
        map=_pathos_like_map,
        call=_pipe,
        close=_close_join,
        kill=lambda pool: pool.terminate(),
        versions={name: version(name) for name in _DASK_VERSIONS},
    )


@contender("dask")
def _dask() -> Contender:
    _import("distributed")
    return Contender(
        key="dask",
        label="Dask `client.map` (a task per item, bare LocalCluster)",
        short="Dask client.map",
        make=DaskClient,
        map=lambda pool, fn, items: pool.map(fn, items),
        call=lambda pool, fn, arg: pool.call(fn, arg),
        close=lambda pool: pool.close(),
        kill=lambda pool: pool.close(),
        versions={name: version(name) for name in _DASK_VERSIONS},
    )

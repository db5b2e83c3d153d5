"""Benchmark manymap's local pools against multiprocessing, concurrent.futures, loky and pathos.

Usage: ``python tools/bench/bench_pools.py [--quick] [--repeat N] [--only W,...]
[--contenders C,...] [--timeout SECONDS] [--docs | --no-docs]``
(``nox -s bench`` runs it with numpy, dill, loky, pathos and matplotlib
installed; ``nox -s bench -- pools --quick`` runs this script alone).

Contenders, each with 2 workers: ``multiprocessing.Pool`` (the reference:
every figure is also given as a ratio to it), ``concurrent.futures``'
``ProcessPoolExecutor``, loky's ``ProcessPoolExecutor``, pathos'
``ProcessPool`` and ``ThreadPool``, and manymap's ``ProcessPool``,
``ThreadPool`` and ``SerialPool`` (the serial baseline of the cpu workload);
then the ParallelPool rows of manymap-pools-rpc: manymap's with local ppft
workers, manymap's on a manymap-server through an ssh tunnel (when an sshd can
be had), and pathos'. Each library runs with its own default start method.

Workloads: ``tiny`` (``map`` of ``x*x`` over 100,000 ints: per-task
overhead), ``cpu`` (64 tasks of about 25 ms of pure-Python CPU: parallel
efficiency, against serial time / cores), ``payload`` (40 float64 arrays of
8 MB, returned doubled: bulk data), ``latency`` (300 sequential single calls:
round trip) and ``closure`` (a lambda capturing a local, over 1,000 items;
the ratio there is to the stdlib Pool mapping the picklable equivalent,
``functools.partial(scale, k=k)``, which every contender also runs).

How it measures. For every round, workload and contender a fresh pool is
created and warmed up (workers started, numpy imported, one small map), and
only the workload's call is timed, with the garbage collector off; then the
pool is closed and joined and the result checked. Within a round the
contenders take turns (starting one further along each round), so a noisy
machine skews them alike; each figure is the median over ``--repeat`` rounds
(default 5; tiny and closure, which last milliseconds, are timed 3 times per
round on the same pool; latency gets 3 rounds per repeat).
Every phase runs under a watchdog: a pool that does not return within
``--timeout`` seconds is interrupted (SIGALRM in the main thread, then its new
child processes are killed) and recorded as "hung"; an exception is recorded
as "fails". Either way the run goes on with the next contender.

It prints a markdown table and the targets of the issue as PASS / MISS lines,
writes ``$MANYMAP_BENCH_DIR/pools.json`` (raw samples, medians, ratios,
machine, versions, date) and ``pools.png`` (default ``build/bench/``). After a
full run (no ``--only``, ``--contenders`` or ``--quick``; ``--docs`` forces it,
``--no-docs`` prevents it) it also copies the chart to
``docs/assets/bench-pools.png`` and rewrites the "Pools" section of
``docs/benchmarks.md``, leaving the rest of the page alone.

Adding contenders (e.g. the ParallelPool rows of manymap-pools-rpc): write a
factory decorated with ``@contender(key)`` that returns a :class:`Contender`
(or raises :class:`Unavailable` with a reason when its set-up, such as an
sshd, is missing), and add its targets to ``TARGETS``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
DOCS_CHART = ROOT / "docs" / "assets" / "bench-pools.png"
DOCS_BEGIN = "<!-- bench-pools: begin (written by tools/bench/bench_pools.py; edits here are overwritten) -->"
DOCS_END = "<!-- bench-pools: end -->"
DOCS_PLACEHOLDER = re.compile(r"No results are recorded on this page yet:.*?benchmarks land\.\n", re.DOTALL)

WORKERS = 2
TINY_ITEMS = 100_000
CPU_TASKS = 64
CPU_TASK_SECONDS = 0.025
PAYLOAD_ARRAYS = 40
PAYLOAD_ELEMENTS = 1_000_000  # float64: 8 MB per array
LATENCY_CALLS = 300
CLOSURE_ITEMS = 1_000
CLOSURE_FACTOR = 3
SHORT_INNER = 3  # tiny and closure last milliseconds: timed 3 times per round and pool
LATENCY_ROUNDS = 3  # latency: 3 rounds per --repeat, each on a fresh pool (see the notes)
REFERENCE = "stdlib"  # the contender every figure is divided by
SERIAL = "manymap-serial"  # the serial baseline of the cpu workload
CLOSE_TIMEOUT = 20.0  # seconds for close + join, and for killing a hung pool
NUDGE = 2.0  # seconds between the watchdog's interrupts of an overdue phase
QUIET = 0.05  # a sample is "quiet" when other processes used less than this share of the machine


# --- the tasks (module level: the stdlib pools pickle them by reference) -------------------------------


def square(x: int) -> int:
    return x * x


def spin(n: int) -> int:
    """Pure-Python CPU work, about ``n`` loop iterations."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def double(array: Any) -> Any:
    return array * 2


def scale(x: int, k: int) -> int:
    return x * k


def make_closure(k: int) -> Callable[[int], int]:
    """A lambda that captures a local: what stdlib pickle cannot ship."""
    return lambda x: x * k


# --- contenders ----------------------------------------------------------------------------------------

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


def _version(dist: str) -> str:
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
    return list(pool.map(fn, items))


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
        versions={"loky": _version("loky")},
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
        versions={name: _version(name) for name in ("pathos", "multiprocess", "dill")},
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
            name: _version(name) for name in ("manymap-pools-local", "manymap-launcher", "manymap-serialize")
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
        versions={name: _version(name) for name in _RPC_VERSIONS},
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


# --- workloads -----------------------------------------------------------------------------------------


@dataclass
class Series:
    """One timed call of a workload; a workload has one or more (closure: lambda and partial)."""

    name: str
    run: Callable[[Contender, Pool], Any]
    check: Callable[[Any], None]
    per: int = 1  # the figure shown is the median divided by this (per call, per item)
    inner: int = 1  # timed calls per round (each one a sample): more for the short ones
    unit: str = ""  # "per call", "per item" or "" (the whole call)
    reference: tuple[str, str] | None = None  # (series, contender) the ratios are to; default REFERENCE


@dataclass
class Workload:
    name: str
    title: str  # column title in the table
    warm: Callable[[Contender, Pool], None]
    series: list[Series]
    rounds: int = 1  # rounds per --repeat: more for the cheap ones whose figure varies from pool to pool


def _expect(expected: Sequence[Any]) -> Callable[[Any], None]:
    def check(result: Any) -> None:
        if list(result) != list(expected):
            raise AssertionError("wrong result")

    return check


def _warm(c: Contender, pool: Pool) -> None:
    """Start every worker and run a first map and a first call (pathos gets this one warm-up too)."""
    if c.map(pool, square, list(range(8 * WORKERS))) != [x * x for x in range(8 * WORKERS)]:
        raise AssertionError("wrong result in the warm-up")
    c.call(pool, square, 3)


def make_workloads(spin_n: int) -> dict[str, Workload]:
    tiny_items = list(range(TINY_ITEMS))
    closure_items = list(range(CLOSURE_ITEMS))
    cpu_items = [spin_n] * CPU_TASKS
    spin_result = spin(spin_n)
    arrays: list[Any] = []

    def payload_arrays() -> list[Any]:
        if not arrays:  # made on first use only: 320 MB
            import numpy as np

            arrays.extend(np.random.default_rng(i).random(PAYLOAD_ELEMENTS) for i in range(PAYLOAD_ARRAYS))
        return arrays

    def warm_payload(c: Contender, pool: Pool) -> None:
        import numpy as np

        _warm(c, pool)
        c.map(pool, double, [np.ones(1000) for _ in range(4 * WORKERS)])

    def check_payload(result: Any) -> None:
        result = list(result)
        if len(result) != PAYLOAD_ARRAYS:
            raise AssertionError(f"{len(result)} arrays back, not {PAYLOAD_ARRAYS}")
        for array, out in zip(arrays, result, strict=True):
            if out.shape != array.shape or out.dtype != array.dtype:
                raise AssertionError("wrong array shape or dtype")
            for index in (0, PAYLOAD_ELEMENTS // 2, -1):
                if out[index] != array[index] * 2:
                    raise AssertionError("wrong array content")

    def warm_closure(c: Contender, pool: Pool) -> None:
        _warm(c, pool)
        c.map(pool, functools.partial(scale, k=2), list(range(4 * WORKERS)))

    return {
        "tiny": Workload(
            "tiny",
            f"tiny: map x*x, {TINY_ITEMS:,} ints",
            _warm,
            [
                Series(
                    "tiny",
                    lambda c, pool: c.map(pool, square, tiny_items),
                    _expect([x * x for x in tiny_items]),
                    inner=SHORT_INNER,
                )
            ],
        ),
        "cpu": Workload(
            "cpu",
            f"cpu: {CPU_TASKS} x {CPU_TASK_SECONDS * 1e3:.0f} ms",
            _warm,
            [Series("cpu", lambda c, pool: c.map(pool, spin, cpu_items), _expect([spin_result] * CPU_TASKS))],
        ),
        "payload": Workload(
            "payload",
            f"payload: {PAYLOAD_ARRAYS} x 8 MB arrays",
            warm_payload,
            [Series("payload", lambda c, pool: c.map(pool, double, payload_arrays()), check_payload)],
        ),
        "latency": Workload(
            "latency",
            f"latency: {LATENCY_CALLS} single calls",
            _warm,
            [
                Series(
                    "latency",
                    lambda c, pool: [c.call(pool, square, i) for i in range(LATENCY_CALLS)],
                    _expect([i * i for i in range(LATENCY_CALLS)]),
                    per=LATENCY_CALLS,
                    unit="per call",
                )
            ],
            rounds=LATENCY_ROUNDS,
        ),
        "closure": Workload(
            "closure",
            f"closure: lambda, {CLOSURE_ITEMS:,} items",
            warm_closure,
            [
                Series(
                    "closure",
                    lambda c, pool: c.map(pool, make_closure(CLOSURE_FACTOR), closure_items),
                    _expect([x * CLOSURE_FACTOR for x in closure_items]),
                    per=CLOSURE_ITEMS,
                    unit="per item",
                    inner=SHORT_INNER,
                    reference=("closure-partial", REFERENCE),
                ),
                Series(
                    "closure-partial",
                    lambda c, pool: c.map(pool, functools.partial(scale, k=CLOSURE_FACTOR), closure_items),
                    _expect([x * CLOSURE_FACTOR for x in closure_items]),
                    per=CLOSURE_ITEMS,
                    unit="per item",
                    inner=SHORT_INNER,
                ),
            ],
        ),
    }


# --- measuring -----------------------------------------------------------------------------------------


class Hung(BaseException):
    """Raised in the main thread by the watchdog: the phase overran its timeout.

    A BaseException, so that library code catching ``Exception`` lets it through.
    """


class Watchdog:
    """Interrupts the main thread when a guarded phase overruns.

    On the deadline it sends SIGALRM to the main thread (whose handler raises
    :class:`Hung`, interrupting a blocking wait), again every ``NUDGE``
    seconds; from the third try on it also SIGKILLs the child processes that
    appeared since the phase began, which unblocks a wait on a pipe.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0
        self._active: int | None = None  # the guard in force; set to None by the main thread only
        self._overdue: int | None = None  # the guard the watchdog found overdue
        self._deadline = 0.0
        self._nudges = 0
        self._children: set[int] = set()
        self._main = threading.main_thread().ident
        signal.signal(signal.SIGALRM, self._on_alarm)
        threading.Thread(target=self._watch, name="bench-watchdog", daemon=True).start()

    def _on_alarm(self, signum: int, frame: object) -> None:
        # Runs in the main thread, between two bytecodes. Hung is raised again at
        # every nudge until the guarded block is left: clean-up code on the way
        # out (a library's ``finally``) can hang as well, say on a lock that the
        # first Hung left taken.
        if self._active is not None and self._active == self._overdue:
            raise Hung

    @contextlib.contextmanager
    def guard(self, seconds: float, children: set[int]) -> Iterator[None]:
        with self._cond:
            self._generation += 1
            self._deadline = time.monotonic() + seconds
            self._nudges = 0
            self._children = children
            self._active = self._generation
            self._cond.notify()
        try:
            yield
        finally:
            self._active = None

    def _watch(self) -> None:
        with self._cond:
            while True:
                active = self._active
                if active is None:
                    self._cond.wait(NUDGE)
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._overdue = active
                self._nudges += 1
                if self._nudges >= 3:
                    kill_new_children(self._children)
                if self._main is not None:
                    signal.pthread_kill(self._main, signal.SIGALRM)
                self._deadline = time.monotonic() + NUDGE


def children() -> set[int]:
    """The pids of this process's direct children (Linux /proc; empty elsewhere)."""
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        for task in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError), open(f"/proc/self/task/{task}/children") as f:
                pids.update(int(pid) for pid in f.read().split())
    return pids


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def _helper(pid: int) -> bool:
    """A library's long-lived helper process (resource tracker, forkserver), not a worker."""
    return any(word in _cmdline(pid) for word in ("resource_tracker", "semaphore_tracker", "forkserver"))


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine has used, those of this process and its children) (Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
        ours = 0
        for pid in ("self", *map(str, children())):
            with contextlib.suppress(OSError, IndexError, ValueError), open(f"/proc/{pid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
                ours += int(stat[11]) + int(stat[12])  # utime, stime
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return busy / tick, ours / tick


def other_load(
    before: tuple[float, float] | None, after: tuple[float, float] | None, wall: float
) -> float | None:
    """The share of the machine's cores that other processes used over ``wall`` seconds."""
    if before is None or after is None or wall <= 0.05:  # too short for 10 ms ticks
        return None
    others = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, others / (wall * (os.cpu_count() or 1)))


def kill_new_children(before: set[int]) -> None:
    for pid in children() - before:
        if not _helper(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def leftovers(before: set[int], wait: float = 2.0) -> list[str]:
    """Child processes started since ``before`` still there ``wait`` s after close + join."""
    deadline = time.monotonic() + wait
    while True:
        left = sorted(pid for pid in children() - before if not _helper(pid))
        if not left or time.monotonic() >= deadline:
            return [f"pid {pid} ({'zombie' if _state(pid) == 'Z' else 'running'})" for pid in left]
        time.sleep(0.05)


@dataclass
class Measurement:
    samples: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | fails | hung | n/a
    detail: str = ""
    notes: list[str] = field(default_factory=list)
    others: list[float | None] = field(default_factory=list)  # other processes' share, per sample

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.status == "ok" and self.samples else None

    def fail(self, status: str, detail: str) -> None:
        if self.status == "ok":
            self.status, self.detail = status, detail


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def measure_round(
    c: Contender,
    workload: Workload,
    todo: list[Series],
    results: dict[str, dict[str, Measurement]],
    watchdog: Watchdog,
    timeout: float,
    round_no: int,
) -> None:
    """Create and warm a pool, time each series in ``todo`` once, close it, check the results."""
    before = children()
    pool: Pool = None
    phase = "pool creation and warm-up"
    current: list[Series] = todo  # who a failure of the current phase is charged to
    timed: list[tuple[Series, Any, float, float | None]] = []
    try:
        with watchdog.guard(timeout, before):
            pool = c.make(WORKERS)
            workload.warm(c, pool)
        failed: set[str] = set()
        schedule = [sr for i in range(max(sr.inner for sr in todo)) for sr in todo if i < sr.inner]
        for series in schedule:
            if series.name in failed:
                continue
            phase, current = "the timed call", [series]
            gc.collect()
            try:
                with watchdog.guard(timeout, before):
                    gc.disable()
                    cpu_before = cpu_seconds()
                    start = time.perf_counter()
                    out = series.run(c, pool)
                    elapsed = time.perf_counter() - start
                    others = other_load(cpu_before, cpu_seconds(), elapsed)
            except Exception as exc:  # this series fails; the pool may still serve the next
                results[series.name][c.key].fail("fails", _describe(exc))
                failed.add(series.name)
                continue
            finally:
                gc.enable()
            timed.append((series, out, elapsed, others))
            del out
        phase, current = "close and join", todo
        with watchdog.guard(CLOSE_TIMEOUT, before):
            c.close(pool)
        pool = None
        left = leftovers(before)
        for series, out, elapsed, others in timed:
            m = results[series.name][c.key]
            try:
                series.check(out)
            except Exception as exc:
                m.fail("fails", f"round {round_no}: {_describe(exc)}")
                continue
            m.samples.append(elapsed)
            m.others.append(others)
            if left:
                m.notes.append(f"round {round_no}: after close + join: {', '.join(left)}")
    except Hung:
        limit = CLOSE_TIMEOUT if phase == "close and join" else timeout
        for series in current:
            results[series.name][c.key].fail(
                "hung", f"round {round_no}: {phase} did not return in {limit:.0f} s"
            )
    except Exception as exc:
        for series in current:
            results[series.name][c.key].fail("fails", f"round {round_no}, {phase}: {_describe(exc)}")
    finally:
        timed.clear()
        if pool is not None:
            abandon(c, pool, before, watchdog)
        gc.collect()


def abandon(c: Contender, pool: Pool, before: set[int], watchdog: Watchdog) -> None:
    """Terminate a pool that hung or failed; if that fails too, kill its processes."""
    with contextlib.suppress(Hung, Exception), watchdog.guard(CLOSE_TIMEOUT, before):
        c.kill(pool)
    kill_new_children(before)


def calibrate_spin(seconds: float) -> int:
    """The ``n`` for which ``spin(n)`` takes about ``seconds`` here (best of 5)."""
    n = 10_000
    while True:
        best = min(_time(spin, n) for _ in range(3))
        if best >= 0.005:
            break
        n *= 2
    n = round(n * seconds / best)
    best = min(_time(spin, n) for _ in range(5))
    return round(n * seconds / best)


def _time(fn: Callable[[int], object], arg: int) -> float:
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


# --- summary, targets, output --------------------------------------------------------------------------


@dataclass
class Summary:
    workloads: list[Workload]
    contenders: list[Contender]
    results: dict[str, dict[str, Measurement]]  # series -> contender -> measurement
    series: dict[str, Series]

    def median(self, series: str, key: str) -> float | None:
        m = self.results.get(series, {}).get(key)
        return m.median if m else None

    def figure(self, series: str, key: str) -> float | None:
        """The median divided by the series' ``per`` (per call, per item)."""
        median = self.median(series, key)
        return None if median is None else median / self.series[series].per

    def ratio(self, series: str, key: str) -> float | None:
        ref_series, ref_key = self.series[series].reference or (series, REFERENCE)
        value, ref = self.figure(series, key), self.figure(ref_series, ref_key)
        return None if value is None or not ref else value / ref

    def ideal(self) -> float | None:
        """cpu: serial time / cores (the cores the workers can use)."""
        serial = self.median("cpu", SERIAL)
        return None if serial is None else serial / min(WORKERS, os.cpu_count() or 1)

    def quiet_samples(self, series: str, key: str) -> list[float]:
        """The samples taken while other processes used under ``QUIET`` of the machine."""
        m = self.results.get(series, {}).get(key)
        if m is None or m.status != "ok":
            return []
        return [
            t for t, share in zip(m.samples, m.others, strict=True) if share is not None and share < QUIET
        ]

    def other_load(self, workload: str) -> list[float]:
        """Other processes' share of the machine in every timed call of ``workload``."""
        return [
            share
            for name, by_key in self.results.items()
            if name.split("-")[0] == workload
            for m in by_key.values()
            for share in m.others
            if share is not None
        ]

    def over_ideal(self, key: str) -> float | None:
        value, ideal = self.median("cpu", key), self.ideal()
        return None if value is None or not ideal else value / ideal


@dataclass
class Target:
    contender: str
    workload: str
    text: str  # what the issue asks
    check: Callable[[Summary], tuple[bool, str] | None]  # (met, figures), or None: cannot tell
    needs: tuple[str, ...] = ()  # other workloads it needs; skipped when one is not run


def _target_tiny(s: Summary) -> tuple[bool, str] | None:
    ratio = s.ratio("tiny", "manymap-process")
    return None if ratio is None else (ratio <= 1.0, f"{ratio:.2f}x the stdlib Pool")


def _target_cpu(s: Summary) -> tuple[bool, str] | None:
    over, ideal = s.over_ideal("manymap-process"), s.ideal()
    if over is None or ideal is None:
        return None
    return (
        over <= 1.05,
        f"{over:.3f}x serial / cores ({_fmt(s.median('cpu', 'manymap-process'))} vs {_fmt(ideal)})",
    )


def _target_payload(s: Summary) -> tuple[bool, str] | None:
    ratio = s.ratio("payload", "manymap-process")
    return None if ratio is None else (ratio <= 0.5, f"{ratio:.2f}x the stdlib Pool")


def _target_latency(s: Summary) -> tuple[bool, str] | None:
    mine, theirs = s.figure("latency", "manymap-process"), s.figure("latency", "futures")
    if mine is None or theirs is None:
        return None
    return mine <= theirs, f"{_fmt(mine)} vs {_fmt(theirs)} per call ({mine / theirs:.2f}x)"


def _target_closure(s: Summary) -> tuple[bool, str] | None:
    closure, tiny = s.figure("closure", "manymap-process"), s.figure("tiny", "manymap-process")
    if closure is None or tiny is None:
        return None
    tiny /= TINY_ITEMS
    return closure <= 1.5 * tiny, f"{_fmt(closure)} vs {_fmt(tiny)} per item ({closure / tiny:.2f}x)"


#: The issues' targets. ParallelPool's (issue 6) go here with its contenders:
#: tiny at most 3x the stdlib Pool, latency under 1 ms per pipe through the
#: tunnel, cpu within 10% of serial time / cores.
TARGETS: list[Target] = [
    Target("manymap-process", "tiny", "tiny at most 1.0x the stdlib Pool", _target_tiny),
    Target("manymap-process", "cpu", "cpu within 5% of serial time / cores", _target_cpu),
    Target("manymap-process", "payload", "payload at most 0.5x the stdlib Pool", _target_payload),
    Target("manymap-process", "latency", "latency no worse than ProcessPoolExecutor", _target_latency),
    Target(
        "manymap-process",
        "closure",
        "closure per item at most 1.5x tiny per item",
        _target_closure,
        needs=("tiny",),
    ),
]


def _target_parallel_tiny(s: Summary) -> tuple[bool, str] | None:
    ratio = s.ratio("tiny", "manymap-parallel")
    return None if ratio is None else (ratio <= 3.0, f"{ratio:.2f}x the stdlib Pool")


def _target_parallel_latency(s: Summary) -> tuple[bool, str] | None:
    latency = s.figure("latency", "manymap-parallel-ssh")
    return None if latency is None else (latency < 0.001, f"{_fmt(latency)} per call")


def _target_parallel_cpu(key: str) -> Callable[[Summary], tuple[bool, str] | None]:
    def check(s: Summary) -> tuple[bool, str] | None:
        over, ideal = s.over_ideal(key), s.ideal()
        if over is None or ideal is None:
            return None
        return over <= 1.10, f"{over:.3f}x serial / cores ({_fmt(s.median('cpu', key))} vs {_fmt(ideal)})"

    return check


TARGETS += [
    Target("manymap-parallel", "tiny", "tiny at most 3x the stdlib Pool", _target_parallel_tiny),
    Target(
        "manymap-parallel-ssh",
        "latency",
        "latency under 1 ms per pipe through the tunnel",
        _target_parallel_latency,
    ),
    Target(
        "manymap-parallel",
        "cpu",
        "cpu within 10% of serial time / cores",
        _target_parallel_cpu("manymap-parallel"),
    ),
    Target(
        "manymap-parallel-mixed",
        "cpu",
        "cpu within 10% of serial time / cores over local plus remote workers",
        _target_parallel_cpu("manymap-parallel-mixed"),
    ),
]


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs" if seconds < 1e-4 else f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _ratio(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def _cell(s: Summary, series: str, key: str) -> str:
    m = s.results[series].get(key)
    if m is None:
        return "—"
    if m.status != "ok" or not m.samples:
        partial = s.figure("closure-partial", key) if series == "closure" else None
        if partial is not None:  # show the figure the closure ratios are taken to
            return f"{m.status} (partial: {_fmt(partial)})"
        return m.status if m.status != "ok" else "—"
    return f"{_fmt(s.figure(series, key))} · {_ratio(s.ratio(series, key))}"


def table(s: Summary) -> list[str]:
    names = [w.name for w in s.workloads]
    header = ["contender"]
    for w in s.workloads:
        unit = w.series[0].unit
        header.append(f"{w.title}{f' ({unit})' if unit else ''}")
        if w.name == "cpu":
            header.append("cpu ÷ ideal")
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for c in s.contenders:
        row = [c.label]
        for name in names:
            row.append(_cell(s, name, c.key))
            if name == "cpu":
                over = s.over_ideal(c.key)
                row.append(_ratio(over) if over is not None else "—")
        lines.append("| " + " | ".join(row) + " |")
    if "cpu" in names:
        ideal = s.ideal()
        ideal_ratio = (
            None if ideal is None or not s.median("cpu", REFERENCE) else ideal / s.median("cpu", REFERENCE)
        )
        row = [f"ideal: serial ÷ {min(WORKERS, os.cpu_count() or 1)} cores"]
        for name in names:
            row.append(f"{_fmt(ideal)} · {_ratio(ideal_ratio)}" if name == "cpu" and ideal else "")
            if name == "cpu":
                row.append("1.00x" if ideal else "")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def notes(s: Summary, repeat: int) -> list[str]:
    names = {w.name for w in s.workloads}
    out = [
        f"Each cell: the median of {repeat} round{'s' if repeat != 1 else ''} (tiny and closure: "
        f"{SHORT_INNER} timed calls per round; latency: {LATENCY_ROUNDS * repeat} rounds) · its ratio "
        "to the `multiprocessing.Pool` of the same run (lower is better). "
        f"Every pool has {WORKERS} workers and its library's default start method; it is created and "
        "warmed up outside the timed region (workers started, one small map and one call), and only "
        "the workload's call is timed.",
        "`map` is each library's own with its default chunking: `multiprocessing.Pool.map`, pathos and "
        "manymap pick their chunksize automatically; `ProcessPoolExecutor.map` (stdlib and loky) has "
        "no automatic choice, so it is given the stdlib Pool's (items / (4 x workers), rounded up: "
        f"{stdlib_chunksize(TINY_ITEMS, WORKERS)} for tiny).",
    ]
    if "cpu" in names:
        out.append(
            "cpu ÷ ideal: the cpu time over serial time (manymap `SerialPool`) / cores; the threads "
            "hold the GIL, so 2x is their expected figure. Other load on the machine slows the pools, "
            "which need every core, more than the one-core serial baseline (see the load average)."
        )
    if "latency" in names:
        out.append(
            "latency: `pipe` for pathos and manymap, `apply` for `multiprocessing.Pool`, "
            "`submit(...).result()` for the executors; per call. A pool's round trip time varies "
            "several-fold from one pool to the next on this shared machine (where the scheduler puts "
            f"its threads), so latency gets {LATENCY_ROUNDS} rounds per repeat, each on a fresh pool."
        )
    if "closure" in names:
        out.append(
            "closure: `lambda x: x * k` with `k` a local of the enclosing function, per item; the ratio "
            "there is to the stdlib Pool mapping its picklable equivalent `functools.partial(scale, k=k)` "
            '(every contender runs it too: see the JSON). "fails": stdlib pickle cannot ship a lambda.'
        )
    out.append('"hung": no answer within the timeout; the pool was killed and the run went on.')
    load = [
        f"{w.name} {statistics.median(shares):.0%} / {max(shares):.0%}"
        for w in s.workloads
        for shares in [s.other_load(w.name)]
        if shares
    ]
    if load:
        out.append(
            "Other processes' use of the machine during the timed calls (share of all cores, median / "
            f"max over the samples): {', '.join(load)}. Above a few percent the figures, cpu's first, "
            "are less reliable."
        )
    return out


def info_lines(s: Summary) -> list[str]:
    """Figures that explain the targets (not targets themselves)."""
    key = "manymap-process"
    lines = []
    quiet, quiet_serial = s.quiet_samples("cpu", key), s.quiet_samples("cpu", SERIAL)
    if quiet and quiet_serial:
        mine = statistics.median(quiet)
        ideal = statistics.median(quiet_serial) / min(WORKERS, os.cpu_count() or 1)
        lines.append(
            f"INFO  manymap ProcessPool cpu on the quiet samples only (other processes under {QUIET:.0%} "
            f"of the machine): {_fmt(mine)} (n={len(quiet)}) vs serial / cores {_fmt(ideal)} "
            f"(n={len(quiet_serial)}): {mine / ideal:.3f}x"
        )
    closure, partial = s.figure("closure", key), s.figure("closure-partial", key)
    tiny = s.figure("tiny", key)
    if closure is not None and partial is not None:
        lines.append(
            f"INFO  manymap ProcessPool closure: lambda {_fmt(closure)} vs partial {_fmt(partial)} per item "
            f"over the same {CLOSURE_ITEMS:,} items ({closure / partial:.2f}x: the cost of the closure "
            "by value)"
            + (
                f"; partial per item is {partial / (tiny / TINY_ITEMS):.1f}x tiny per item (the map's fixed "
                f"cost spread over {CLOSURE_ITEMS:,} items instead of {TINY_ITEMS:,})"
                if tiny
                else ""
            )
        )
    return lines


def target_lines(s: Summary, keys: set[str], workloads: set[str]) -> list[str]:
    lines = []
    for target in TARGETS:
        if target.contender not in keys or not {target.workload, *target.needs} <= workloads:
            continue
        label = next(c.short for c in s.contenders if c.key == target.contender)
        verdict = target.check(s)
        if verdict is None:
            m = s.results.get(target.workload, {}).get(target.contender)
            why = f"{m.status}: {m.detail}" if m and m.status != "ok" else "a figure it needs is missing"
            lines.append(f"MISS  {label}: {target.text} — cannot tell ({why})")
        else:
            met, figures = verdict
            lines.append(f"{'PASS' if met else 'MISS'}  {label}: {target.text} — {figures}")
    return lines + (info_lines(s) if "manymap-process" in keys else [])


def chart(s: Summary, path: Path, repeat: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w.name for w in s.workloads]
    contenders = s.contenders
    width = 0.8 / max(1, len(contenders))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.9 * len(workloads) + 3.0), 5.4), dpi=120)
    colors = plt.get_cmap("tab20")  # more contenders than tab10 has colours
    values = [s.ratio(w, c.key) for w in workloads for c in contenders if s.ratio(w, c.key) is not None]
    low = min([*values, 0.5]) / 2
    for j, c in enumerate(contenders):
        for i, w in enumerate(workloads):
            x = i - 0.4 + width * (j + 0.5)
            ratio = s.ratio(w, c.key)
            if ratio is not None:
                ax.bar(x, ratio, width, color=colors(j % 20), label=c.short if i == 0 else None)
                ax.text(x, ratio * 1.05, _ratio(ratio), ha="center", va="bottom", fontsize=5.5, rotation=90)
            else:
                if i == 0:
                    ax.bar(x, 0, width, color=colors(j % 20), label=c.short)
                m = s.results[w].get(c.key)
                mark = m.status if m is not None and m.status != "ok" else "n/a"
                ax.text(x, low * 1.1, mark, ha="center", va="bottom", fontsize=6, rotation=90, color="0.3")
    ideal = s.ideal()
    ref = s.median("cpu", REFERENCE)
    if "cpu" in workloads and ideal and ref:
        i = workloads.index("cpu")
        ax.hlines(ideal / ref, i - 0.45, i + 0.45, colors="k", linestyles="dashed", linewidth=1)
        ax.text(i + 0.45, ideal / ref, " ideal", va="center", fontsize=7)
    ax.axhline(1.0, color="0.4", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylim(low, max([*values, 2.0]) * 2.5)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(
        [
            w.title.replace(": ", "\n", 1)
            + ("\n(to the stdlib Pool's partial)" if w.series[0].reference else "")
            for w in s.workloads
        ],
        fontsize=8,
    )
    ax.set_ylabel("time / multiprocessing.Pool's (log scale, lower is better)")
    ax.set_title(
        f"Pools, {WORKERS} workers, median of {repeat} round{'s' if repeat != 1 else ''} "
        f"({datetime.date.today().isoformat()})",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_docs(markdown: str, chart_path: Path) -> None:
    """Copy the chart into docs/assets and put ``markdown`` between the markers of docs/benchmarks.md."""
    DOCS_CHART.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(chart_path, DOCS_CHART)
    section = f"{DOCS_BEGIN}\n{markdown.rstrip()}\n{DOCS_END}\n"
    page = DOCS_PAGE.read_text() if DOCS_PAGE.exists() else "# Benchmarks\n"
    if DOCS_BEGIN in page and DOCS_END in page:
        head, rest = page.split(DOCS_BEGIN, 1)
        tail = rest.split(DOCS_END, 1)[1].lstrip("\n")
        page = head + section + ("\n" + tail if tail else "")
    elif DOCS_PLACEHOLDER.search(page):
        page = DOCS_PLACEHOLDER.sub(lambda _: section, page, count=1)
    else:
        page = page.rstrip("\n") + "\n\n" + section
    DOCS_PAGE.write_text(page)


def docs_section(s: Summary, repeat: int, body: list[str], machine: str) -> str:
    return "\n".join(
        [
            "### Pools",
            "",
            "```console",
            "nox -s bench            # every benchmark",
            "nox -s bench -- pools   # this one (add --quick, --only tiny,cpu, --contenders ...)",
            "```",
            "",
            f"Measured {datetime.date.today().isoformat()} by `tools/bench/bench_pools.py` on {machine}.",
            "",
            *body,
            "",
            "![Pools: time relative to multiprocessing.Pool, log scale](assets/bench-pools.png)",
        ]
    )


# --- main ----------------------------------------------------------------------------------------------


def _names(text: str | None, known: Sequence[str], what: str) -> list[str] | None:
    if text is None:
        return None
    chosen: list[str] = []
    for name in (part.strip().lower() for part in text.split(",") if part.strip()):
        matches = [k for k in known if k == name] or [k for k in known if k.startswith(name + "-")]
        if not matches:
            raise SystemExit(f"unknown {what} {name!r}; choose from {', '.join(known)}")
        chosen += [k for k in matches if k not in chosen]
    return chosen


def main(argv: list[str] | None = None) -> int:
    global WORKERS
    workload_names = ["tiny", "cpu", "payload", "latency", "closure"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="rounds, median taken (default 5, min 3)")
    parser.add_argument("--quick", action="store_true", help="one round: a smoke check, not a result")
    parser.add_argument("--only", help=f"workloads, comma-separated: {','.join(workload_names)}")
    parser.add_argument(
        "--contenders",
        help=f"comma-separated, a prefix such as 'manymap' takes all of its kind: {','.join(CONTENDERS)} "
        f"({REFERENCE} always runs: it is the reference; {SERIAL} too for cpu)",
    )
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"workers per pool (default {WORKERS})")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per phase before 'hung' (30)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default $MANYMAP_BENCH_DIR/pools.json)"
    )
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument(
        "--docs", action="store_true", default=None, help="update docs/ even after a partial run"
    )
    docs.add_argument("--no-docs", dest="docs", action="store_false", help="leave docs/ alone")
    args = parser.parse_args(argv)
    WORKERS = max(1, args.workers)
    repeat = 1 if args.quick else max(3, args.repeat)
    selected = _names(args.only, workload_names, "workload") or workload_names
    selected = [name for name in workload_names if name in selected]
    keys = _names(args.contenders, list(CONTENDERS), "contender") or list(CONTENDERS)
    keys += [REFERENCE] if REFERENCE not in keys else []
    keys += [SERIAL] if "cpu" in selected and SERIAL not in keys else []
    keys = [key for key in CONTENDERS if key in keys]
    full = args.only is None and args.contenders is None and not args.quick and WORKERS == 2
    out = args.out or Path(os.environ.get("MANYMAP_BENCH_DIR", ROOT / "build" / "bench")) / "pools.json"

    contenders: list[Contender] = []
    unavailable: dict[str, str] = {}
    for key in keys:
        try:
            contenders.append(CONTENDERS[key]())
        except Unavailable as exc:
            unavailable[key] = str(exc)
            print(f"skipping {key}: {exc}", file=sys.stderr)
    if not any(c.key == REFERENCE for c in contenders):
        raise SystemExit("the reference, multiprocessing.Pool, cannot run")

    spin_n = calibrate_spin(CPU_TASK_SECONDS) if "cpu" in selected else 0
    all_workloads = make_workloads(spin_n)
    workloads = [all_workloads[name] for name in selected]
    series = {sr.name: sr for w in workloads for sr in w.series}
    results = {name: {c.key: Measurement() for c in contenders} for name in series}
    watchdog = Watchdog()
    started = time.monotonic()
    load = [os.getloadavg()[0]]
    for workload in workloads:
        rounds = repeat * workload.rounds
        for round_no in range(1, rounds + 1):
            shift = (round_no - 1) % len(contenders)
            for c in contenders[shift:] + contenders[:shift]:
                todo = [sr for sr in workload.series if results[sr.name][c.key].status == "ok"]
                if todo:
                    measure_round(c, workload, todo, results, watchdog, args.timeout, round_no)
            status = ", ".join(
                f"{c.key} {_fmt(m.samples[-1]) if m.status == 'ok' and m.samples else m.status}"
                for c in contenders
                for m in [results[workload.series[0].name][c.key]]
            )
            print(
                f"[{workload.name} {round_no}/{rounds}, {time.monotonic() - started:.0f} s] {status}",
                file=sys.stderr,
            )

    load.append(os.getloadavg()[0])
    summary = Summary(workloads, contenders, results, series)
    cpus = os.cpu_count()
    machine = (
        f"{cpus} cores (load average {load[0]:.2f} at the start, {load[1]:.2f} at the end), "
        f"Python {platform.python_version()}, {platform.platform(terse=True)}; "
        + ", ".join(
            f"{name} {_version(name)}"
            for name in ("manymap-pools-local", "loky", "pathos", "multiprocess", "dill", "numpy")
        )
    )
    body = [
        *table(summary),
        "",
        *(f"- {line}" for line in notes(summary, repeat)),
    ]
    if unavailable:
        body.append("- not run: " + "; ".join(f"{key} ({why})" for key, why in unavailable.items()))
    problems = [
        f"{c.key} {name}: {m.status} — {m.detail}"
        for name, by_key in results.items()
        for c in contenders
        for m in [by_key[c.key]]
        if m.status != "ok"
    ]
    problems += [
        f"{c.key} {name}: {note}"
        for name, by_key in results.items()
        for c in contenders
        for note in by_key[c.key].notes
    ]
    if problems:
        body.append("- failures, hangs and processes left behind:")
        body += [f"    - {line}" for line in problems]
    targets = target_lines(summary, {c.key for c in contenders}, set(selected))
    if targets:
        body += [
            "",
            "Targets (issue 4: manymap-pools-local; issue 6: manymap-pools-rpc):",
            "",
            "```text",
            *targets,
            "```",
        ]

    print(f"## Pools, {WORKERS} workers, median of {repeat} round{'s' if repeat != 1 else ''}\n")
    print(f"{machine}\n")
    print("\n".join(body))
    if args.quick:
        print("\n(--quick: one round, for a smoke check; not a result)")

    png = out.with_suffix(".png")
    chart(summary, png, repeat)
    report = {
        "benchmark": "manymap local pools",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python "
        + " ".join([str(Path(sys.argv[0])), *(argv if argv is not None else sys.argv[1:])]),
        "cpu_count": cpus,
        "load_average_1min": {"start": load[0], "end": load[1]},
        "workers": WORKERS,
        "python": sys.version,
        "platform": platform.platform(),
        "versions": {
            name: _version(name)
            for name in (
                "manymap-pools-local",
                "manymap-launcher",
                "manymap-serialize",
                "loky",
                "pathos",
                "multiprocess",
                "dill",
                "numpy",
                "matplotlib",
            )
        },
        "repeat": repeat,
        "quick": args.quick,
        "timeout_seconds": args.timeout,
        "timed_region": "the workload's call only; pools are created and warmed up outside it",
        "parameters": {
            "tiny_items": TINY_ITEMS,
            "cpu_tasks": CPU_TASKS,
            "cpu_task_seconds_target": CPU_TASK_SECONDS,
            "cpu_spin_n": spin_n,
            "payload_arrays": PAYLOAD_ARRAYS,
            "payload_array_bytes": PAYLOAD_ELEMENTS * 8,
            "latency_calls": LATENCY_CALLS,
            "closure_items": CLOSURE_ITEMS,
            "executor_chunksizes": {
                "tiny": stdlib_chunksize(TINY_ITEMS, WORKERS),
                "cpu": stdlib_chunksize(CPU_TASKS, WORKERS),
                "payload": stdlib_chunksize(PAYLOAD_ARRAYS, WORKERS),
                "closure": stdlib_chunksize(CLOSURE_ITEMS, WORKERS),
            },
        },
        "contenders": {c.key: {"label": c.short, "versions": c.versions} for c in contenders},
        "unavailable": unavailable,
        "cpu_ideal_seconds": summary.ideal(),
        "series": {
            name: {
                "unit": series[name].unit or "whole call",
                "per": series[name].per,
                "timed_calls_per_round": series[name].inner,
                "rounds": repeat * next(w.rounds for w in workloads if series[name] in w.series),
                "reference": list(series[name].reference or (name, REFERENCE)),
                "by_contender": {
                    c.key: {
                        "status": m.status,
                        "detail": m.detail,
                        "notes": m.notes,
                        "samples_seconds": m.samples,
                        "samples_other_load": m.others,
                        "median_seconds": m.median,
                        "figure_seconds": summary.figure(name, c.key),
                        "ratio_to_reference": summary.ratio(name, c.key),
                        **({"ratio_to_ideal": summary.over_ideal(c.key)} if name == "cpu" else {}),
                    }
                    for c in contenders
                    for m in [by_key[c.key]]
                },
            }
            for name, by_key in results.items()
        },
        "targets": targets,
        "markdown": "\n".join(body),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out} and {png}")
    if args.docs or (args.docs is None and full):
        write_docs(docs_section(summary, repeat, body, machine), png)
        print(f"updated {DOCS_PAGE.relative_to(ROOT)} and {DOCS_CHART.relative_to(ROOT)}")
    elif args.docs is None:
        print("docs/ left alone: only a full run (no --quick, --only or --contenders) updates it")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``manymap demo``: why manymap exists, measured on this machine.

Three parts, each printed from what just ran, nothing claimed:

1. a CPU-bound map, sized (by timing one task) to take about ``--seconds`` on
   the builtin ``map``, then on every pool, with the speed-up of each;
2. a closure, given first to the standard library's process pools (their
   real error is shown) and then to manymap's ``ProcessPool``;
3. a task that SIGKILLs its own worker on its first attempt: without
   retries the map fails with ``WorkerLostError`` (not a hang), with
   ``retries=1`` it completes.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from manymap._pools import KNOWN_POOLS, announced_pools, load_pool
from manymap.launcher import EventKind, TaskEvent

__all__ = ["demo", "demo_task", "kill_own_worker_once"]

_STDLIB_WAIT = 60.0  # seconds a stdlib pool may take to give its answer


def demo_task(n: int) -> int:
    """The demo's task: a checksum of the squares of ``range(n)`` (pure Python, CPU-bound)."""
    total = 0
    for i in range(n):
        total = (total + i * i) % 1_000_000_007
    return total


def kill_own_worker_once(marker_dir: str, victim: int, x: int) -> int:
    """``x * x``; but task ``victim`` first SIGKILLs the process running it (once: a marker remembers)."""
    marker = os.path.join(marker_dir, f"killed-{x}")
    if x == victim and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def usable_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _size_for(seconds: float, tasks: int) -> int:
    """The ``demo_task`` size that makes ``tasks`` of them take about ``seconds`` here."""
    probe = 20_000
    while True:
        start = time.perf_counter()
        demo_task(probe)
        took = time.perf_counter() - start
        if took >= 0.02 or probe >= 10_000_000:
            break
        probe *= 4
    return max(1_000, int(probe * seconds / tasks / took))


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        middle = [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:], strict=True)]
        cells = [row[0].ljust(widths[0]), *middle]
        print("  " + "  ".join([*cells, row[-1]]).rstrip())


def _why(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class _Demo:
    def __init__(self, tasks: int, size: int | None, seconds: float, workers: int) -> None:
        self.tasks = tasks
        self.size = size
        self.seconds = seconds
        self.workers = workers
        self.ok = True

    def run(self) -> int:
        print(
            f"manymap demo: measured on this machine ({usable_cores()} usable cores, "
            f"Python {sys.version.split()[0]}), {self.workers} workers per pool"
        )
        self.speed()
        self.closure()
        self.killed_worker()
        print()
        print("every part worked as shown" if self.ok else "some part FAILED (see above)")
        return 0 if self.ok else 1

    # ------------------------------------------------------------ 1. speed

    def speed(self) -> None:
        from manymap.pools.local import ProcessPool, SerialPool, ThreadPool

        size = self.size or _size_for(self.seconds, self.tasks)
        inputs = [size + i for i in range(self.tasks)]
        print()
        print(
            f"1. A CPU-bound map: {self.tasks} tasks of pure-Python arithmetic (demo_task, n={size}); "
            "times include starting the pool's workers"
        )
        start = time.perf_counter()
        reference = list(map(demo_task, inputs))
        base = time.perf_counter() - start
        header = ("pool", "workers", "seconds", "speed-up", "result")
        rows: list[tuple[str, ...]] = [header, ("builtin map", "1", f"{base:.2f}", "1.00x", "reference")]

        def run(name: str, nodes: int, make: Callable[[], Any], note: str = "") -> None:
            start = time.perf_counter()
            try:
                with make() as pool:
                    result = pool.map(demo_task, inputs, timeout=300)
            except Exception as exc:  # a failing pool is a row of the table, then exit status 1
                self.ok = False
                rows.append((name, str(nodes), "-", "-", f"FAILED: {_why(exc)}"))
                return
            took = time.perf_counter() - start
            good = result == reference
            self.ok = self.ok and good
            verdict = ("ok" if good else "WRONG RESULT") + (f" ({note})" if note else "")
            rows.append((name, str(nodes), f"{took:.2f}", f"{base / took:.2f}x", verdict))

        run("SerialPool", 1, SerialPool)
        run("ThreadPool", self.workers, lambda: ThreadPool(self.workers), "threads share one GIL")
        run("ProcessPool", self.workers, lambda: ProcessPool(self.workers))
        # A local manymap-server on 127.0.0.1, reached through the pool as a remote one would be.
        from manymap.core import serve
        from manymap.pools.rpc import ParallelPool

        try:
            server = serve(workers=self.workers, timeout=60)
        except Exception as exc:
            self.ok = False
            rows.append(("ParallelPool", str(self.workers), "-", "-", f"FAILED to start: {_why(exc)}"))
        else:
            with server:
                run(
                    "ParallelPool",
                    self.workers,
                    lambda: ParallelPool(0, servers=[server.address], secret=server.secret),
                    "via a local manymap-server",
                )
        if "dask" in announced_pools():
            try:
                dask_pool = load_pool("dask")
            except LookupError as exc:
                self.ok = False
                rows.append(("DaskPool", str(self.workers), "-", "-", f"FAILED to load: {_why(exc)}"))
            else:
                run(
                    "DaskPool", self.workers, lambda: dask_pool(self.workers), "an embedded Dask LocalCluster"
                )
        else:
            rows.append(("DaskPool", "-", "-", "-", f"not installed: {KNOWN_POOLS['dask'][1]}"))
        _table(rows)
        cores = usable_cores()
        best = min(self.workers, cores)
        load = f"; load average now {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
        print(
            f"  (at best {best}x: {self.workers} workers on {cores} usable cores{load}; busy cores give less)"
        )

    # ---------------------------------------------------------- 2. closure

    def closure(self) -> None:
        from manymap.pools.local import ProcessPool

        factor = 3
        scale = lambda x: x * factor  # noqa: E731 - a closure over a local, as users write them
        inputs = list(range(8))
        expected = [x * factor for x in inputs]
        print()
        print("2. A closure (lambda x: x * factor, factor a local variable) on process pools")
        rows: list[tuple[str, ...]] = [("pool", "result")]

        def stdlib(name: str, call: Callable[[], list[int]]) -> None:
            try:
                result = call()
            except Exception as exc:
                rows.append((name, f"cannot ship it: {_why(exc)}"))
            else:
                rows.append((name, "ok" if result == expected else f"WRONG RESULT {result}"))

        def with_mp() -> list[int]:
            with multiprocessing.Pool(min(2, self.workers)) as pool:
                return pool.map_async(scale, inputs).get(_STDLIB_WAIT)

        def with_executor() -> list[int]:
            with concurrent.futures.ProcessPoolExecutor(min(2, self.workers)) as executor:
                return list(executor.map(scale, inputs, timeout=_STDLIB_WAIT))

        stdlib("multiprocessing.Pool.map", with_mp)
        stdlib("concurrent.futures.ProcessPoolExecutor", with_executor)
        try:
            with ProcessPool(self.workers) as pool:
                result = pool.map(scale, inputs, timeout=60)
        except Exception as exc:
            self.ok = False
            rows.append(("manymap ProcessPool.map", f"FAILED: {_why(exc)}"))
        else:
            good = result == expected
            self.ok = self.ok and good
            rows.append(("manymap ProcessPool.map", f"ok {result}" if good else f"WRONG RESULT {result}"))
        _table(rows)

    # ---------------------------------------------------- 3. killed worker

    def killed_worker(self) -> None:
        inputs = list(range(8))
        victim = 5
        print()
        print(f"3. Task {victim} of {len(inputs)} SIGKILLs its own worker process on its first attempt")
        rows: list[tuple[str, ...]] = [("call", "seconds", "result")]
        for retries in (0, 1):
            rows.append(self._kill_run(inputs, victim, retries))
        _table(rows)

    def _kill_run(self, inputs: list[int], victim: int, retries: int) -> tuple[str, str, str]:
        from manymap.launcher import WorkerLostError
        from manymap.pools.local import ProcessPool

        retried: list[int] = []

        def count(event: TaskEvent) -> None:
            if event.kind is EventKind.RETRIED:
                retried.append(event.index)

        call = f"ProcessPool.map(..., retries={retries})"
        options: dict[str, Any] = {"chunksize": 1, "retries": retries, "progress": count, "timeout": 60}
        with tempfile.TemporaryDirectory(prefix="manymap-demo-") as markers:
            task = functools.partial(kill_own_worker_once, markers, victim)
            start = time.perf_counter()
            try:
                with ProcessPool(self.workers) as pool:
                    result = pool.map(task, inputs, **options)
            except WorkerLostError as exc:
                took = f"{time.perf_counter() - start:.2f}"
                if retries == 0:  # what should happen: an error naming the task, not a hang
                    return call, took, f"raised {_why(exc)}"
                self.ok = False
                return call, took, f"FAILED: {_why(exc)}"
            except Exception as exc:
                self.ok = False
                return call, "-", f"FAILED: {_why(exc)}"
        took = f"{time.perf_counter() - start:.2f}"
        good = retries > 0 and result == [x * x for x in inputs]
        self.ok = self.ok and good
        if not good:
            return call, took, f"UNEXPECTED: {result}"
        return call, took, f"all {len(result)} results right, task {victim} retried {len(retried)} time(s)"


def demo(tasks: int, size: int | None, seconds: float, workers: int | None) -> int:
    """Run ``manymap demo``; returns its exit status (1 if a part did not work as it should)."""
    return _Demo(tasks, size, seconds, workers or max(1, min(4, usable_cores()))).run()

"""Measuring one round: a fresh pool, warmed, the workload timed, closed, checked, under a watchdog.

Also the process bookkeeping it needs (this process's children, the CPU the
rest of the machine used meanwhile, what a pool left behind).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from poolbench import config
from poolbench.config import CLOSE_TIMEOUT, NUDGE
from poolbench.contenders import Contender, Pool
from poolbench.workloads import Series, Workload


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
            pool = c.make(config.WORKERS)
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

"""Time from fault to error (or recovery) for each row of the fault table (docs/faults.md).

Usage: ``python tools/bench/bench_faults.py [--quick] [--repeat N] [--pools P,...]
[--rows R,...]`` (``nox -s bench -- faults`` runs it alone, with tools/testhosts
installed for the ssh rows).

Each row triggers its real fault ``--repeat`` times (default 5) on every pool
it applies to and records the seconds from the fault to what the caller sees:

- ``kill``: a worker is SIGKILLed mid-task -> ``WorkerLostError``;
- ``children``: the task has children (``os.fork()``, a forked
  ``multiprocessing.Process``, a ``subprocess``) and its worker is SIGKILLed ->
  the error, and -> every one of those processes gone;
- ``timeout``: a task with the same children runs past ``timeout=1`` ->
  ``TaskTimeoutError`` (seconds after the deadline, counted from the submit, so
  an upper bound), and -> the worker and its children gone (from the error);
  on a ThreadPool: the error, and leaving ``with`` (the thread is abandoned);
- ``retries``: a task SIGKILLs its worker once, ``retries=1`` -> the full
  result (from the kill, the task's marker file's mtime);
- ``dropped``: a pool dropped without ``close()`` (``del`` + ``gc.collect()``)
  -> its workers gone;
- ``owner``: the owner process (a real subprocess with a busy worker whose
  task has a child) is SIGKILLed -> its workers and that child gone;
- ``frozen`` (ParallelPool with a manymap-server on 127.0.0.1, default
  ``server_timeout``): the server is SIGSTOPped mid-map with a local worker
  beside it -> the map complete; alone -> ``WorkerLostError``; a map with
  ``timeout=3`` on the frozen server -> ``TaskTimeoutError``, then the time of
  the next map;
- ``fake``: a listener that knows no secret -> ``AuthenticationError``.

Pools (``--pools``): ``fork``, ``spawn``, ``forkserver`` (ProcessPool),
``thread`` (ThreadPool: the timeout row only), ``parallel`` (ParallelPool with
local workers), ``ssh`` (ParallelPool whose workers are on a manymap-server
started over ssh through the private sshd of tools/testhosts, started as
``bench_pools.py`` does). ``--quick``: 2 runs, pools fork, thread, parallel
and ssh.

Every wait is bounded; a run that fails or hangs is recorded as such and the
row moves on. Processes are stopped by pid, only those this script started
(stopped ones get SIGCONT first). It prints a markdown table and writes
``$MANYMAP_BENCH_DIR/faults.json`` (default ``build/bench/``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_pools import Unavailable, _helper, _ssh_host

from manymap.launcher import AuthenticationError, EventKind, TaskEvent, TaskTimeoutError, WorkerLostError
from manymap.launcher.testing import _fault_tasks as faults
from manymap.launcher.testing import _tasks as tasks
from manymap.pools.local import ProcessPool, ThreadPool
from manymap.pools.rpc import ParallelPool
from manymap.pools.rpc import _wire as wire

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # seconds any single wait may take before the run counts as hung
GONE = 20.0  # seconds processes that must die may take
POLL = 0.005  # seconds between two looks at /proc
TIMEOUT = 1.0  # the per-task timeout of the timeout row
FROZEN_TIMEOUT = 3.0  # the map timeout on a frozen server
KINDS = ["fork", "process", "subprocess"]
PROCESS_POOLS = ("fork", "spawn", "forkserver")
ALL_POOLS = (*PROCESS_POOLS, "thread", "parallel", "ssh")
QUICK_POOLS = ("fork", "thread", "parallel", "ssh")
ROWS = ("kill", "children", "timeout", "retries", "dropped", "owner", "frozen", "fake")
LABELS = {
    "fork": "ProcessPool (fork)",
    "spawn": "ProcessPool (spawn)",
    "forkserver": "ProcessPool (forkserver)",
    "thread": "ThreadPool",
    "parallel": "ParallelPool (local)",
    "ssh": "ParallelPool (ssh)",
    "server": "ParallelPool + 127.0.0.1 server",
}

_release = threading.Event()  # lets the ThreadPool's runaway tasks end once timed


class Failed(Exception):
    """A run that did not end as the row promises."""


# --- processes -----------------------------------------------------------------------------------------


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid``."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{current}/task"):
                with (
                    contextlib.suppress(OSError, ValueError),
                    open(f"/proc/{current}/task/{tid}/children") as f,
                ):
                    for kid in (int(k) for k in f.read().split()):
                        if kid not in found and alive(kid):
                            found.add(kid)
                            pending.append(kid)
    return found


def new_processes(before: set[int]) -> set[int]:
    """Our descendants started since ``before``, without multiprocessing's helpers."""
    return {pid for pid in descendants(os.getpid()) - before if not _helper(pid)}


def wait_gone(pids: set[int], since: float) -> float:
    """Seconds from ``since`` until every one of ``pids`` is gone (bounded by GONE)."""
    deadline = time.monotonic() + GONE
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise Failed(f"still alive {GONE:.0f} s later: {sorted(p for p in pids if alive(p))}")
        time.sleep(POLL)
    return time.monotonic() - since


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise Failed(f"{what} not within {timeout:.0f} s")
        time.sleep(POLL)


def stop(pids: set[int]) -> None:
    """SIGCONT then SIGKILL what is left of ``pids`` (processes this script started)."""
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGKILL)


def read_record(path: Path) -> dict[str, Any]:
    wait_until(path.exists, "the task's record")
    info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return info


# --- pools -----------------------------------------------------------------------------------------------


def make_pool(kind: str, nodes: int = 2) -> Any:
    if kind in PROCESS_POOLS:
        return ProcessPool(nodes, context=kind)
    if kind == "thread":
        return ThreadPool(nodes)
    if kind == "parallel":
        return ParallelPool(nodes)
    if kind == "ssh":
        host, config = _ssh_host()
        return ParallelPool(0, servers=[host], ssh_config=config, python=sys.executable, server_workers=nodes)
    raise ValueError(kind)


def pool_source(kind: str) -> str:
    """Statements that create the same ``pool`` in the owner subprocess."""
    if kind in PROCESS_POOLS:
        return f"from manymap.pools.local import ProcessPool\npool = ProcessPool(2, context={kind!r})"
    if kind == "parallel":
        return "from manymap.pools.rpc import ParallelPool\npool = ParallelPool(2)"
    host, config = _ssh_host()
    return (
        "from manymap.pools.rpc import ParallelPool\n"
        f"pool = ParallelPool(0, servers=[{host!r}], ssh_config={config!r}, python={sys.executable!r}, "
        "server_workers=2)"
    )


@contextlib.contextmanager
def pool_of(kind: str) -> Iterator[Any]:
    """A warmed-up pool, terminated at the end, and what it started killed."""
    before = descendants(os.getpid())
    pool = make_pool(kind)
    try:
        if pool.map(tasks.square, range(4)) != [0, 1, 4, 9]:
            raise Failed("the warm-up map is wrong")
        yield pool
    finally:
        with contextlib.suppress(Exception):
            pool.terminate()
            pool.join()
        stop(new_processes(before))


def worker_pids(pool: Any, kind: str, before: set[int]) -> set[int]:
    """The pool's worker processes (and, over ssh, the server they belong to)."""
    ran = {pid for _, pid, _ in pool.map(tasks.where, range(16), chunksize=1)} - {os.getpid()}
    pids = ran | new_processes(before)
    if kind == "ssh":
        pids |= {parent(pid) for pid in ran} - {0, 1, os.getpid()}
    return pids


# --- rows (each run returns its figures, in seconds) ---------------------------------------------------


def row_kill(pool: Any, kind: str, tmp: Path, i: int) -> list[float]:
    path = tmp / f"kill-{i}.json"
    handle = pool.apipe(faults.busy, str(path), WAIT)
    pid = read_record(path)["pid"]
    start = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    try:
        handle.get(WAIT)
    except WorkerLostError:
        return [time.monotonic() - start]
    raise Failed("the killed worker's task returned")


def row_children(pool: Any, kind: str, tmp: Path, i: int) -> list[float]:
    path = tmp / f"children-{i}.json"
    handle = pool.apipe(faults.busy_with_children, str(path), KINDS, WAIT)
    info = read_record(path)
    started = {info["pid"], *info["children"]}
    try:
        start = time.monotonic()
        os.kill(info["pid"], signal.SIGKILL)
        try:
            handle.get(WAIT)
        except WorkerLostError:
            error = time.monotonic() - start
        else:
            raise Failed("the killed worker's task returned")
        return [error, wait_gone(started, start)]
    finally:
        stop(started)


def row_timeout(pool: Any, kind: str, tmp: Path, i: int) -> list[float]:
    if kind == "thread":
        return _thread_timeout(pool)
    path = tmp / f"timeout-{i}.json"
    started: set[int] = set()
    try:
        submitted = time.monotonic()
        result = pool.amap(faults.busy_with_children, [str(path)], [KINDS], [WAIT], timeout=TIMEOUT)
        try:
            result.get(WAIT)
        except TaskTimeoutError:
            error = time.monotonic()
        else:
            raise Failed("the task returned despite its timeout")
        info = read_record(path)
        started = {info["pid"], *info["children"]}
        return [error - submitted - TIMEOUT, wait_gone(started, error)]
    finally:
        stop(started)


def _hold(x: int) -> int:
    """A ThreadPool task that outlives its timeout, until the row releases it."""
    if x:
        _release.wait(WAIT)
    return x


def _thread_timeout(pool: Any) -> list[float]:
    """ThreadPool: a task past its timeout inside ``with`` -> the error, and ``with`` left."""
    fresh = make_pool("thread")
    _release.clear()
    submitted = time.monotonic()
    error = 0.0
    outcome: list[BaseException] = []

    def run() -> None:
        nonlocal error
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the abandoned thread's warning
                with fresh:
                    try:
                        fresh.map(_hold, [0, 1], chunksize=1, timeout=TIMEOUT)
                    except TaskTimeoutError as exc:
                        error = time.monotonic()
                        outcome.append(exc)
                        raise
        except BaseException as exc:
            if not outcome:
                outcome.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(GONE)
    left = time.monotonic()
    _release.set()
    if runner.is_alive():
        raise Failed("leaving `with` waited for the runaway task")
    if not outcome or not isinstance(outcome[0], TaskTimeoutError):
        raise Failed(f"expected TaskTimeoutError, got {outcome!r}")
    return [error - submitted - TIMEOUT, left - error]


def row_retries(pool: Any, kind: str, tmp: Path, i: int) -> list[float]:
    marker = tmp / f"died-{i}"
    result = pool.amap(faults.die_once, [str(marker)], retries=1).get(WAIT)
    done = time.time()
    if result != ["again"]:
        raise Failed(f"expected ['again'], got {result!r}")
    return [done - marker.stat().st_mtime]


def row_dropped(kind: str, tmp: Path, i: int) -> list[float]:
    before = descendants(os.getpid())
    pool = make_pool(kind)
    pids: set[int] = set()
    try:
        pids = worker_pids(pool, kind, before)
        if not pids:
            raise Failed("the pool's workers could not be found")
        start = time.monotonic()
        del pool
        gc.collect()
        return [wait_gone(pids, start)]
    finally:
        stop(pids | new_processes(before))


OWNER = """\
import json, os, sys, time
from manymap.launcher.testing import _fault_tasks as faults, _tasks as tasks

def main():
{source}
    path = sys.argv[1]
    ran = {{pid for _, pid, _ in pool.map(tasks.where, range(16), chunksize=1)}} - {{os.getpid()}}
    pool.apipe(faults.busy_with_children, path, ["subprocess"], 120)
    deadline = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    info = json.load(open(path))
    print(json.dumps(sorted(ran | {{info["pid"], *info["children"]}})), flush=True)
    time.sleep(120)

if __name__ == "__main__":  # spawned workers import this script
    main()
"""


def row_owner(kind: str, tmp: Path, i: int) -> list[float]:
    script = tmp / "owner.py"
    script.write_text(OWNER.format(source=textwrap.indent(pool_source(kind), "    ")))
    errors = tmp / f"owner-{i}.err"
    with errors.open("wb") as stderr:
        owner = subprocess.Popen(
            [sys.executable, str(script), str(tmp / f"owner-{i}.json")], stdout=subprocess.PIPE, stderr=stderr
        )
    started: set[int] = set()
    try:
        assert owner.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(owner.stdout, selectors.EVENT_READ)
            if not selector.select(WAIT):
                raise Failed("the owner script printed nothing")
        line = owner.stdout.readline()
        if not line:
            tail = errors.read_text(errors="replace").strip().splitlines()[-1:]
            raise Failed(f"the owner script failed (exit {owner.wait(WAIT)}): {' '.join(tail)}")
        ran = set(json.loads(line))
        started = ran | descendants(owner.pid)
        if kind == "ssh":
            started |= {parent(pid) for pid in ran} - {0, 1, owner.pid}
        start = time.monotonic()
        owner.send_signal(signal.SIGKILL)
        owner.wait(WAIT)
        return [wait_gone(started, start)]
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(WAIT)
        stop(started)
        if owner.stdout is not None:
            owner.stdout.close()


# --- ParallelPool and a manymap-server on 127.0.0.1 ----------------------------------------------------


class Server:
    """``python -m manymap.pools.rpc`` on 127.0.0.1 (a real manymap-server), stopped by pid."""

    def __init__(self, tmp: Path, workers: int = 2) -> None:
        self.secret = os.urandom(16).hex()
        secret_file = tmp / f"secret-{os.urandom(4).hex()}"
        secret_file.write_text(self.secret + "\n")
        secret_file.chmod(0o600)
        workers_arg = ["--workers", str(workers)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "manymap.pools.rpc", "--secret-file", str(secret_file), *workers_arg],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.before = descendants(os.getpid())
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(WAIT)
        line = self.process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise Failed("manymap-server did not print its port")
        self.address = f"127.0.0.1:{int(line)}"

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def stop(self) -> None:
        ours = descendants(self.process.pid) | {self.process.pid}
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(GONE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)
        stop(ours)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def server_and_pool(tmp: Path, local: int) -> Iterator[tuple[Server, Any]]:
    server = Server(tmp)
    pool: Any = None
    try:
        pool = ParallelPool(local, servers=[server.address], secret=server.secret)
        yield server, pool
    finally:
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.terminate()
        server.stop()  # SIGCONT first: the pool's join then returns at once
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.join()


def frozen_beside(tmp: Path, i: int) -> list[float]:
    with server_and_pool(tmp, 1) as (server, pool):
        frozen: list[float] = []

        def consume(event: TaskEvent) -> None:
            on_server = (event.worker or "").startswith(server.address)
            if event.kind is EventKind.STARTED and on_server and not frozen:
                server.freeze()
                frozen.append(time.monotonic())

        result = pool.amap(tasks.sleep_then, range(12), [0.05] * 12, chunksize=1, progress=consume).get(WAIT)
        if result != list(range(12)) or not frozen:
            raise Failed(f"wrong result {result!r} (server frozen: {bool(frozen)})")
        return [time.monotonic() - frozen[0]]


def frozen_alone(tmp: Path, i: int) -> list[float]:
    with server_and_pool(tmp, 0) as (server, pool):
        pool.map(tasks.square, range(4))
        started = threading.Event()

        def consume(event: TaskEvent) -> None:
            if event.kind is EventKind.STARTED:
                started.set()

        result = pool.amap(tasks.sleep_then, [1], [WAIT], progress=consume)
        if not started.wait(WAIT):
            raise Failed("the task never started")
        start = time.monotonic()
        server.freeze()
        try:
            result.get(WAIT)
        except WorkerLostError:
            return [time.monotonic() - start]
        raise Failed("the frozen server's task returned")


def frozen_next(tmp: Path, i: int) -> list[float]:
    with server_and_pool(tmp, 1) as (server, pool):
        pool.map(tasks.square, range(6), chunksize=1)
        server.freeze()
        submitted = time.monotonic()
        try:
            pool.amap(tasks.sleep_then, [0, 1], [WAIT, WAIT], timeout=FROZEN_TIMEOUT, chunksize=1).get(WAIT)
        except TaskTimeoutError:
            error = time.monotonic()
        else:
            raise Failed("the map returned despite its timeout")
        start = time.monotonic()
        if pool.amap(tasks.square, range(10)).get(WAIT) != [x * x for x in range(10)]:
            raise Failed("the next map is wrong")
        return [error - submitted - FROZEN_TIMEOUT, time.monotonic() - start]


class FakeServer:
    """A listener on 127.0.0.1 that knows no secret: greets, claims success, reads on."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(WAIT)
                with contextlib.suppress(OSError):
                    conn.sendall(wire.frame(*wire.pack_hello(os.urandom(wire.NONCE))))
                    conn.recv(65536)
                    info = json.dumps({"host": "fake", "workers": 1, "pid": 1, "worker": 1}).encode()
                    conn.sendall(wire.frame(wire.OK, info))
                    while conn.recv(65536):
                        pass

    def close(self) -> None:
        self.closed.set()
        self.thread.join(WAIT)
        self.sock.close()


def fake_server(tmp: Path, i: int) -> list[float]:
    fake = FakeServer()
    try:
        pool = ParallelPool(0, servers=[fake.address], secret=os.urandom(16).hex())
        try:
            start = time.monotonic()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "server ... is not used"
                pool.amap(abs, [-1]).get(WAIT)
        except AuthenticationError:
            return [time.monotonic() - start]
        finally:
            pool.terminate()
            pool.join()
        raise Failed("the map against a fake server returned")
    finally:
        fake.close()


# --- the table -----------------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    fault: str
    measures: list[str]  # what each figure of a run is
    pools: tuple[str, ...]
    shared_pool: Callable[[Any, str, Path, int], list[float]] | None = None  # one pool, N runs
    fresh: Callable[[str, Path, int], list[float]] | None = None  # a fresh pool (or none) per run


@dataclass
class Result:
    row: Row
    pool: str
    samples: list[list[float]] = field(default_factory=list)
    problem: str = ""


PROCESS_LIKE = (*PROCESS_POOLS, "parallel", "ssh")
TABLE = [
    Row("kill", "worker SIGKILLed mid-task", ["→ WorkerLostError"], PROCESS_LIKE, shared_pool=row_kill),
    Row(
        "children",
        "worker with children (fork, Process, subprocess) SIGKILLed",
        ["→ WorkerLostError", "→ worker and children dead"],
        PROCESS_LIKE,
        shared_pool=row_children,
    ),
    Row(
        "timeout",
        f"task with children past timeout={TIMEOUT:g}",
        ["TaskTimeoutError after the deadline", "→ worker and children dead (from the error)"],
        PROCESS_LIKE,
        shared_pool=row_timeout,
    ),
    Row(
        "timeout",
        f"runaway task past timeout={TIMEOUT:g} inside `with`",
        ["TaskTimeoutError after the deadline", "→ `with` left (from the error)"],
        ("thread",),
        shared_pool=row_timeout,
    ),
    Row("retries", "worker killed once, retries=1", ["→ full result"], PROCESS_LIKE, shared_pool=row_retries),
    Row("dropped", "pool dropped without close()", ["→ workers dead"], PROCESS_LIKE, fresh=row_dropped),
    Row(
        "owner",
        "owner process SIGKILLed",
        ["→ its workers and their children dead"],
        PROCESS_LIKE,
        fresh=row_owner,
    ),
    Row(
        "frozen",
        "server SIGSTOPped mid-map, 1 local worker beside it",
        ["→ map complete"],
        ("server",),
        fresh=lambda kind, tmp, i: frozen_beside(tmp, i),
    ),
    Row(
        "frozen",
        "the only server SIGSTOPped mid-task",
        ["→ WorkerLostError"],
        ("server",),
        fresh=lambda kind, tmp, i: frozen_alone(tmp, i),
    ),
    Row(
        "frozen",
        f"map with timeout={FROZEN_TIMEOUT:g} on a frozen server (1 local worker)",
        ["TaskTimeoutError after the deadline", "the next map takes"],
        ("server",),
        fresh=lambda kind, tmp, i: frozen_next(tmp, i),
    ),
    Row(
        "fake",
        "fake server (knows no secret)",
        ["→ AuthenticationError"],
        ("server",),
        fresh=lambda kind, tmp, i: fake_server(tmp, i),
    ),
]


def run_row(row: Row, kind: str, runs: int, tmp: Path) -> Result:
    result = Result(row, kind)
    tmp = Path(tempfile.mkdtemp(prefix=f"{row.key}-{kind}-", dir=tmp))  # each run's records are its own
    try:
        if row.shared_pool is not None:
            with pool_of(kind) as pool:
                for i in range(runs):
                    result.samples.append(row.shared_pool(pool, kind, tmp, i))
        else:
            assert row.fresh is not None
            for i in range(runs):
                result.samples.append(row.fresh(kind, tmp, i))
    except Unavailable as exc:
        result.problem = f"not run: {exc}"
    except Exception as exc:
        result.problem = f"fails: {type(exc).__name__}: {exc}"
    return result


def _s(seconds: float) -> str:
    return f"{seconds:.3f}"


def table(results: list[Result], runs: int) -> list[str]:
    lines = [
        "| fault | pool | measured (s) | median | max | runs |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in results:
        for j, measure in enumerate(r.row.measures):
            values = [sample[j] for sample in r.samples]
            if values and not r.problem:
                cells = f"{_s(statistics.median(values))} | {_s(max(values))} | {len(values)}"
            else:
                cells = f"{r.problem or 'no run'} | | {len(values)}/{runs}"
            lines.append(f"| {r.row.fault} | {LABELS[r.pool]} | {measure} | {cells} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each fault, per pool (default 5)")
    parser.add_argument("--quick", action="store_true", help=f"2 runs, pools {','.join(QUICK_POOLS)}")
    parser.add_argument("--pools", help=f"comma-separated: {','.join(ALL_POOLS)} (default all)")
    parser.add_argument("--rows", help=f"comma-separated: {','.join(dict.fromkeys(ROWS))} (default all)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default $MANYMAP_BENCH_DIR/faults.json)"
    )
    args = parser.parse_args(argv)
    runs = 2 if args.quick else max(1, args.repeat)
    pools = QUICK_POOLS if args.quick else ALL_POOLS
    if args.pools:
        pools = tuple(p.strip() for p in args.pools.split(",") if p.strip())
    rows = tuple(r.strip() for r in args.rows.split(",")) if args.rows else ROWS
    for name, chosen, known in (("pool", pools, ALL_POOLS), ("row", rows, ROWS)):
        unknown = [c for c in chosen if c not in known]
        if unknown:
            parser.error(f"unknown {name} {', '.join(unknown)}; choose from {', '.join(known)}")
    out = args.out or Path(os.environ.get("MANYMAP_BENCH_DIR", ROOT / "build" / "bench")) / "faults.json"

    if "ssh" in pools:
        try:
            _ssh_host()  # the private sshd starts now, before any row counts our child processes
        except Unavailable as exc:
            print(f"no ssh rows: {exc}", file=sys.stderr)
    started = time.monotonic()
    load = [os.getloadavg()[0]]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="manymap-bench-faults-") as directory:
        tmp = Path(directory)
        for row in TABLE:
            if row.key not in rows:
                continue
            # the server rows run when any ParallelPool is chosen
            kinds = [
                k for k in row.pools if k in pools or (k == "server" and {"parallel", "ssh"} & set(pools))
            ]
            for kind in kinds:
                result = run_row(row, kind, runs, tmp)
                results.append(result)
                figures = "; ".join(
                    ", ".join(_s(v) for v in values) for values in zip(*result.samples, strict=True)
                )
                print(
                    f"[{time.monotonic() - started:.0f} s] {row.key} {kind}: {result.problem or figures}",
                    file=sys.stderr,
                    flush=True,
                )
    load.append(os.getloadavg()[0])

    machine = (
        f"{os.cpu_count()} cores (load average {load[0]:.2f} at the start, {load[1]:.2f} at the end), "
        f"Python {platform.python_version()}, {platform.platform(terse=True)}"
    )
    lines = table(results, runs)
    print(f"## Fault to error, seconds, {runs} run{'s' if runs != 1 else ''} per row and pool\n")
    print(f"{machine}; {time.monotonic() - started:.0f} s in all\n")
    print("\n".join(lines))
    problems = [f"{r.row.fault} / {LABELS[r.pool]}: {r.problem}" for r in results if r.problem]
    if problems:
        print("\nproblems:\n" + "\n".join(f"- {p}" for p in problems))
    report = {
        "benchmark": "manymap fault table: time from fault to error",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python "
        + " ".join([str(Path(sys.argv[0])), *(argv if argv is not None else sys.argv[1:])]),
        "cpu_count": os.cpu_count(),
        "load_average_1min": {"start": load[0], "end": load[1]},
        "python": sys.version,
        "platform": platform.platform(),
        "runs": runs,
        "results": [
            {
                "row": r.row.key,
                "fault": r.row.fault,
                "pool": LABELS[r.pool],
                "measures": r.row.measures,
                "samples_seconds": r.samples,
                "median_seconds": [statistics.median(v) for v in zip(*r.samples, strict=True)]
                if r.samples
                else [],
                "max_seconds": [max(v) for v in zip(*r.samples, strict=True)] if r.samples else [],
                "problem": r.problem,
            }
            for r in results
        ],
        "problems": problems,
        "markdown": "\n".join(lines),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

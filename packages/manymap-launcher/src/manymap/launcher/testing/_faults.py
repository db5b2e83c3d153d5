"""The fault table: what a pool promises when things go wrong, as pytest tests.

Each test is one row of ``docs/faults.md``: a real fault (a task that
raises, a worker SIGKILLed, a worker whose task has children, a timeout, a
dropped pool, a killed owner) and the promise the pool keeps. A pool package
runs the table by subclassing :class:`FaultConformance` with a factory and
flags saying which faults apply to its workers::

    from manymap.launcher.testing import FaultConformance

    class TestProcessPoolFaults(FaultConformance):
        owner_source = "from manymap.pools.local import ProcessPool\\npool = ProcessPool(2)"

        def make_pool(self, nodes=2, **options):
            return ProcessPool(nodes, **options)

A row that does not apply to a pool (a thread cannot be SIGKILLed) is not
collected for it; every row that is collected runs, with real processes and
real signals, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
from pathlib import Path
from typing import Any, ClassVar

import pytest

from manymap.launcher import AbstractWorkerPool, TaskTimeoutError, WorkerLostError
from manymap.launcher.testing import _fault_tasks as faults
from manymap.launcher.testing import _tasks as tasks
from manymap.launcher.testing._base import WAIT, PoolSuite, bounded_join
from manymap.launcher.testing._guards import eventually

__all__ = ["FaultConformance", "alive", "descendants"]

GONE = 20.0  # seconds a process that must die may take before the row fails

# Each row that needs a capability, and the flag that grants it.
_NEEDS: dict[str, str] = {
    "test_worker_sigkilled_mid_task_is_lost": "kills_workers",
    "test_worker_with_children_sigkilled_is_lost_and_its_children_die": "kills_workers",
    "test_retries_recover_a_killed_worker": "kills_workers",
    "test_poison_task_fails_after_repeated_deaths": "kills_workers",
    "test_lost_batch_reruns_only_what_it_must": "kills_workers",
    "test_timeout_kills_the_worker_and_its_children": "kills_on_timeout",
    "test_dropped_pool_reaps_its_workers": "reaps_on_gc",
    "test_killed_owner_takes_its_workers": "owner_source",
}


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (Linux ``/proc``)."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            threads = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                with open(f"/proc/{current}/task/{tid}/children", encoding="ascii") as listing:
                    kids = [int(kid) for kid in listing.read().split()]
            except (OSError, ValueError):
                continue
            for kid in kids:
                if kid not in found and alive(kid):
                    found.add(kid)
                    pending.append(kid)
    return found


def _read_json(path: Path, timeout: float = WAIT) -> dict[str, Any]:
    """The JSON a task recorded in ``path``, waiting for it at most ``timeout`` seconds."""
    assert eventually(path.exists, timeout), f"the task never recorded {path.name}"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _all_gone(pids: set[int]) -> bool:
    return not any(alive(pid) for pid in pids)


def _cleanup(pids: set[int]) -> None:
    """Kill what a failed row left (processes this test started, by pid)."""
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


class FaultConformance(PoolSuite):
    """The fault table of ``docs/faults.md``, as tests.

    Subclasses implement :meth:`make_pool` and set the flags of what their
    workers are; the rows a pool's workers cannot have are not collected.

    Attributes:
        nodes: the pool size the table asks for.
        timeout: the per-task timeout of the timeout rows (well above a
            worker's start-up on a busy machine).
        kills_workers: workers are processes on this machine that a test can
            SIGKILL, and the pool sees them die.
        kills_on_timeout: a timed-out task's worker is killed, with the
            processes its task started.
        reaps_on_gc: a pool dropped without ``close()`` is garbage-collected
            and stops its worker processes.
        owner_source: Python statements that import and create ``pool`` in a
            script, for the row that kills the pool's owner (``None``: the
            workers live in the owner, the row does not apply).
        child_kinds: the kinds of children a task starts in the rows of
            workers with children (see ``_fault_tasks.start_child``).
    """

    nodes = 2
    timeout = 3.0
    kills_workers = True
    kills_on_timeout = True
    reaps_on_gc = True
    owner_source: ClassVar[str | None] = None
    child_kinds: ClassVar[tuple[str, ...]] = ("fork", "process", "subprocess")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, flag in _NEEDS.items():
            # a row that does not apply is not collected (None is no test)
            setattr(cls, name, FaultConformance.__dict__[name] if getattr(cls, flag) else None)

    # ----------------------------------------------------------------- rows

    def test_task_raises(self, pool: AbstractWorkerPool) -> None:
        """Row: a task raises. Its own exception, naming its task; the pool goes on."""
        with pytest.raises(ValueError, match="bad value 3") as caught:
            pool.map(tasks.fail_on, range(8), chunksize=1)
        assert any("task 3 failed" in note for note in getattr(caught.value, "__notes__", []))
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

    def test_worker_sigkilled_mid_task_is_lost(self, pool: AbstractWorkerPool, tmp_path: Path) -> None:
        """Row: the worker is SIGKILLed mid-task. ``WorkerLostError`` for that task."""
        pool.map(tasks.square, range(4))  # the workers are up
        path = tmp_path / "busy.json"
        handle = pool.apipe(faults.busy, str(path), WAIT)
        worker = _read_json(path)["pid"]
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(WorkerLostError):
            handle.get(WAIT)
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

    def test_worker_with_children_sigkilled_is_lost_and_its_children_die(
        self, pool: AbstractWorkerPool, tmp_path: Path
    ) -> None:
        """Row: the worker's task has children (``os.fork()``, a
        ``multiprocessing.Process``, a ``subprocess``), and the worker is SIGKILLed.
        ``WorkerLostError`` although the children hold the worker's pipes, and the
        children die too."""
        path = tmp_path / "busy.json"
        handle = pool.apipe(faults.busy_with_children, str(path), list(self.child_kinds), WAIT)
        info = _read_json(path)
        started = {info["pid"], *info["children"]}
        try:
            os.kill(info["pid"], signal.SIGKILL)
            with pytest.raises(WorkerLostError):
                handle.get(WAIT)
            assert eventually(lambda: _all_gone(started), GONE), (
                f"the children of a killed worker live on: {sorted(p for p in started if alive(p))}"
            )
            assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        finally:
            _cleanup(started)

    def test_timeout_kills_the_worker_and_its_children(self, tmp_path: Path) -> None:
        """Row: a task runs past its timeout. ``TaskTimeoutError``; its worker and
        what its task started die, and ``close``/``join`` do not wait for them."""
        path = tmp_path / "busy.json"
        pool = self.make_pool(self.nodes)
        started: set[int] = set()
        try:
            with pytest.raises(TaskTimeoutError):
                pool.map(
                    faults.busy_with_children,
                    [str(path)],
                    [list(self.child_kinds)],
                    [WAIT],
                    timeout=self.timeout,
                )
            info = _read_json(path, 0)
            started = {info["pid"], *info["children"]}
            assert eventually(lambda: _all_gone(started), GONE), (
                f"a timed-out task's processes live on: {sorted(p for p in started if alive(p))}"
            )
            assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]
        finally:
            pool.close()
            bounded_join(pool)
            _cleanup(started)

    def test_timeout_close_and_join_return(self, tmp_path: Path) -> None:
        """Row: a task that times out and never ends. ``TaskTimeoutError`` arrives,
        and leaving ``with`` returns (a thread is abandoned, with a warning)."""
        pool = self.make_pool(self.nodes)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with pool:
                    pool.map(
                        tasks.sleep_then, [0, 10 * WAIT], [0, 10 * WAIT], chunksize=1, timeout=self.timeout
                    )
            except BaseException as error:
                errors.append(error)

        runner = threading.Thread(target=run, daemon=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a thread pool warns that it abandons a thread
            runner.start()
            runner.join(GONE)
        assert not runner.is_alive(), "leaving `with` waited for a task that timed out"
        assert len(errors) == 1, errors
        assert isinstance(errors[0], TaskTimeoutError), errors

    def test_retries_recover_a_killed_worker(self, pool: AbstractWorkerPool, tmp_path: Path) -> None:
        """Row: a worker dies once, ``retries=1``. The task runs again and succeeds."""
        marker = str(tmp_path / "died")
        assert pool.map(faults.die_once, [marker], retries=1) == ["again"]
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

    def test_poison_task_fails_after_repeated_deaths(self, pool: AbstractWorkerPool, tmp_path: Path) -> None:
        """Row: a task that kills every worker it runs on, with retries left. It fails
        with ``WorkerLostError`` after the poison limit (2 deaths), not retried forever."""
        runs = tmp_path / "runs"
        runs.mkdir()
        with pytest.raises(WorkerLostError) as caught:
            pool.map(faults.count_run, [str(runs)], [0], [0], retries=5)
        assert caught.value.index == 0
        assert len(list(runs.iterdir())) == 2, sorted(p.name for p in runs.iterdir())
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

    def test_lost_batch_reruns_only_what_it_must(self, pool: AbstractWorkerPool, tmp_path: Path) -> None:
        """Row: a worker dies in a batch of several tasks (``chunksize=4``). Only that
        batch runs again (task by task), the other batches once; with ``retries=0``
        the one deadly task fails, named by its index."""
        runs = tmp_path / "runs"
        runs.mkdir()
        result = pool.map(faults.count_run, [str(runs)] * 8, range(8), [5] * 8, [True] * 8, chunksize=4)
        assert result == [x * x for x in range(8)]
        counts = {x: len(list(runs.glob(f"run-{x}-*"))) for x in range(8)}
        assert counts[5] == 2, counts
        assert all(counts[x] == 1 for x in range(4)), counts  # the other batch: once
        assert all(1 <= counts[x] <= 2 for x in range(4, 8)), counts

        again = tmp_path / "again"
        again.mkdir()
        with pytest.raises(WorkerLostError) as caught:
            pool.map(faults.count_run, [str(again)] * 8, range(8), [5] * 8, chunksize=4)
        assert caught.value.index == 5

    def test_unrebuildable_exception_fails_only_its_task(self, pool: AbstractWorkerPool) -> None:
        """Row: a task raises an exception that pickles but cannot be rebuilt (its
        ``__init__`` takes required arguments), in a batch of four. Only that task
        fails, with an error naming the original type and message."""
        with pytest.raises(Exception) as caught:
            pool.map(faults.raise_needs_arguments, range(8), [5] * 8, chunksize=4)
        error = caught.value
        text = f"{type(error).__name__}: {error}"
        assert "NeedsArguments" in text, text
        assert "cannot be rebuilt from its message" in text, text
        notes = " ".join(getattr(error, "__notes__", []))
        assert "task 5 failed" in notes, notes
        assert "other task" not in notes, notes  # 4, 6 and 7 succeeded

    def test_dropped_pool_reaps_its_workers(self) -> None:
        """Row: a pool is dropped without ``close()``. Once it is garbage-collected its
        workers exit, as CPython's executors do."""
        before = descendants(os.getpid())
        pool = self.make_pool(self.nodes)
        ran = {pid for _, pid, _ in pool.map(tasks.where, range(8 * self.nodes), chunksize=1)}
        workers = (ran - {os.getpid()}) | (descendants(os.getpid()) - before - _helpers())
        assert workers, "the pool's workers could not be found"
        del pool
        gc.collect()
        try:
            assert eventually(lambda: _all_gone(workers), GONE), (
                f"a dropped pool's workers live on: {sorted(p for p in workers if alive(p))}"
            )
        finally:
            _cleanup(workers)

    @pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
    def test_killed_owner_takes_its_workers(self, tmp_path: Path, signum: int) -> None:
        """Row: the process that owns the pool is killed while one worker is busy and
        the others idle. Every worker, and what their tasks started, dies."""
        assert self.owner_source is not None
        script = tmp_path / "owner.py"
        script.write_text(_OWNER_SCRIPT.format(source=textwrap.indent(self.owner_source, "    ")))
        owner = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path / "busy.json"), str(WAIT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started: set[int] = set()
        try:
            line = _read_line(owner, WAIT)
            assert line, f"the owner script failed: {owner.stderr.read().decode() if owner.stderr else ''}"
            started = set(json.loads(line))
            assert started
            owner.send_signal(signum)
            owner.wait(WAIT)
            assert eventually(lambda: _all_gone(started), GONE), (
                f"the workers of a killed owner live on: {sorted(p for p in started if alive(p))}"
            )
        finally:
            if owner.poll() is None:
                owner.kill()
                owner.wait(WAIT)
            _cleanup(started)
            for stream in (owner.stdout, owner.stderr):
                if stream is not None:
                    stream.close()


_OWNER_SCRIPT = """\
import json, os, sys, time
from manymap.launcher.testing import _fault_tasks as faults, _tasks as tasks
from manymap.launcher.testing._faults import descendants

def main():
{source}
    path, wait = sys.argv[1], float(sys.argv[2])
    pids = {{pid for _, pid, _ in pool.map(tasks.where, range(16), chunksize=1)}}
    pool.apipe(faults.busy_with_children, path, ["subprocess"], wait)
    deadline = time.monotonic() + wait
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(path) as stream:
        info = json.load(stream)
    pids |= {{info["pid"], *info["children"]}} | descendants(os.getpid())
    pids.discard(os.getpid())
    print(json.dumps(sorted(pids)), flush=True)
    time.sleep(wait)

if __name__ == "__main__":
    main()
"""


def _read_line(process: subprocess.Popen[bytes], timeout: float) -> str:
    """One line of ``process``'s stdout, waiting at most ``timeout`` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return process.stdout.readline().decode()


def _helpers() -> set[int]:
    """Pids of the per-interpreter helper processes of multiprocessing(s): the
    forkserver and the resource tracker, shared by every pool."""
    found: set[int] = set()
    for name in ("multiprocess", "multiprocessing"):
        forkserver = sys.modules.get(f"{name}.forkserver")
        tracker = sys.modules.get(f"{name}.resource_tracker")
        for owner, attribute in (
            (getattr(forkserver, "_forkserver", None), "_forkserver_pid"),
            (getattr(tracker, "_resource_tracker", None), "_pid"),
        ):
            pid = getattr(owner, attribute, None)
            if isinstance(pid, int):
                found.add(pid)
    return found

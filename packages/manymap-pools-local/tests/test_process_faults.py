"""ProcessPool's own rows of the fault table: a nested pool's workers die with the
killed worker that started them, and no shared-memory file outlives a worker
or an owner killed while results were being written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pool_helpers import big_results, file_limit, lower_file_limit, nested_pool_then_sleep

from manymap.launcher import AsyncResult, WorkerLostError
from manymap.launcher.testing import _fault_tasks, eventually, hang_guard, kill_started
from manymap.launcher.testing._faults import alive, descendants
from manymap.pools.local import ProcessPool, _procs

WAIT = 60.0
SHM = "/dev/shm"
RESULTS = 300  # arrays of a little over 256 KiB each: a result being written takes a while


@pytest.fixture(autouse=True)
def _guard(request: pytest.FixtureRequest) -> Iterator[None]:
    with hang_guard(240, capture=request.config.pluginmanager.getplugin("capturemanager")):
        yield


def shm_files() -> set[str]:
    return {name for name in os.listdir(SHM) if name.startswith("manymap-")}


def read_pids(path: Path) -> dict[str, object]:
    import json

    assert eventually(path.exists, WAIT), "the task never recorded its pid"
    data: dict[str, object] = json.loads(path.read_text())
    return data


@pytest.mark.parametrize("context", ["fork", "forkserver"])
def test_a_killed_worker_takes_its_nested_pool(tmp_path: Path, context: str) -> None:
    path = tmp_path / "nested.json"
    with ProcessPool(2, context=context) as pool:
        handle = pool.apipe(nested_pool_then_sleep, str(path), WAIT)
        info = read_pids(path)
        inner = set(info["children"])  # type: ignore[call-overload]
        assert inner
        os.kill(info["pid"], signal.SIGKILL)  # type: ignore[arg-type]
        with pytest.raises(WorkerLostError):
            handle.get(WAIT)
        assert eventually(lambda: not any(alive(pid) for pid in inner), 20.0), (
            f"the nested pool's workers live on: {sorted(p for p in inner if alive(p))}"
        )


@pytest.mark.skipif(not os.path.isdir(SHM), reason="this machine has no /dev/shm")
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_a_worker_killed_while_writing_its_results_leaves_no_shared_memory(
    tmp_path: Path, context: str
) -> None:
    before = shm_files()
    with ProcessPool(1, context=context) as pool:
        for attempt in range(5):  # until a kill lands while the results are being written
            path = tmp_path / f"big-{attempt}.json"
            handle = pool.apipe(big_results, str(path), RESULTS)
            worker = read_pids(path)["pid"]
            killed = threading.Event()

            def kill_when_writing(
                worker: object = worker,
                killed: threading.Event = killed,
                handle: AsyncResult[object] = handle,
            ) -> None:
                while not handle.ready():
                    if shm_files() - before:
                        os.kill(worker, signal.SIGKILL)  # type: ignore[arg-type]
                        killed.set()
                        return

            watcher = threading.Thread(target=kill_when_writing, daemon=True)
            watcher.start()
            try:
                handle.get(WAIT)
            except WorkerLostError:
                assert killed.is_set()
                break
            finally:
                watcher.join(WAIT)
        else:
            pytest.fail("no kill landed while the results were being written")
        assert shm_files() - before == set(), "a killed worker's result files are left"
        assert pool.map(abs, [-1, -2]) == [1, 2]
    assert shm_files() - before == set()


_OWNER = """\
import sys
from pool_helpers import big_results
from manymap.pools.local import ProcessPool

if __name__ == "__main__":
    sys.path.insert(0, {tests!r})
    with ProcessPool(1, context="fork") as pool:
        pool.map(big_results, [sys.argv[1]] * 50, [{count}] * 50, chunksize=1)
"""


@pytest.mark.skipif(not os.path.isdir(SHM), reason="this machine has no /dev/shm")
def test_files_of_an_owner_killed_mid_map_are_swept_by_the_next_pool(tmp_path: Path) -> None:
    before = shm_files()
    script = tmp_path / "owner.py"
    tests = str(Path(__file__).parent)
    script.write_text(textwrap.dedent(_OWNER.format(tests=tests, count=RESULTS)))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    owner = subprocess.Popen([sys.executable, str(script), str(tmp_path / "big.json")], env=environment)
    started: set[int] = set()
    try:
        assert eventually(lambda: bool(shm_files() - before) or owner.poll() is not None, WAIT)
        started = descendants(owner.pid)
        owner.kill()
        owner.wait(WAIT)
        left = shm_files() - before
        assert left, "the owner was not killed while results were in shared memory"
        assert eventually(lambda: not any(alive(pid) for pid in started), 20.0)
        with ProcessPool(1) as pool:  # a pool sweeps what dead owners left once it is idle
            assert pool.map(abs, [-3]) == [3]
            swept = eventually(lambda: shm_files() & left == set(), WAIT)
        assert swept, "the files of a killed owner were not swept"
    finally:
        kill_started(owner, started, WAIT)


def test_process_state_a_task_changes_stays_unless_workers_are_recycled() -> None:
    """docs/faults.md: a task's rlimit stays on its worker; maxtasksperchild=1 is the remedy."""
    with ProcessPool(1) as pool:
        lowered = pool.pipe(lower_file_limit, None)
        assert pool.pipe(file_limit, None) == lowered
    with ProcessPool(1, maxtasksperchild=1) as pool:
        lowered = pool.pipe(lower_file_limit, None)
        assert pool.pipe(file_limit, None) == lowered + 1


def test_without_pidfds_a_plain_death_is_still_seen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where the OS has no pidfd the pool waits on the sentinel, and the worker polls
    for its owner: a plain death is still seen (children holding the pipes are not)."""
    monkeypatch.setattr(_procs, "open_pidfd", lambda pid: None)
    path = tmp_path / "busy.json"
    with ProcessPool(1, context="fork") as pool:
        handle = pool.apipe(_fault_tasks.busy, str(path), WAIT)
        os.kill(read_pids(path)["pid"], signal.SIGKILL)  # type: ignore[arg-type]
        with pytest.raises(WorkerLostError):
            handle.get(WAIT)
        assert pool.map(abs, [-1]) == [1]

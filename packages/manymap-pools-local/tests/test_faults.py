"""Fault injection into ProcessPool: one row per way a task can go wrong.

Each row runs eight tasks of which task 3 misbehaves, each submitted on its
own so that every one of them must come back: the bad one as the exact
error naming it, the others with their right value. Then the same input as
one map must raise that error. Afterwards the pool still works, and once it
is closed and joined no process of it is left.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from manymap.launcher import SerializationError, TaskTimeoutError, WorkerLostError
from manymap.launcher.lowlevel import add_note
from manymap.launcher.testing import eventually, hang_guard, live_children
from manymap.pools.local import ProcessPool

BAD = 3
WAIT = 30.0


class CrashWhilePickling:
    def __reduce__(self) -> Any:
        raise RuntimeError("refuses to be pickled")


def _exit_now(code: int) -> None:
    os._exit(code)


class ExitWhileUnpickling:
    def __reduce__(self) -> Any:
        return (_exit_now, (5,))


def identity(x: Any) -> Any:
    return x


def exit_on_bad(x: int) -> int:
    if x == BAD:
        os._exit(9)
    return x * 10


def segfault_on_bad(x: int) -> int:
    if x == BAD:
        ctypes.string_at(0)
    return x * 10


def sleep_on_bad(x: int) -> int:
    if x == BAD:
        time.sleep(30)
    return x * 10


def lock_on_bad(x: int) -> Any:
    return threading.Lock() if x == BAD else x * 10


def huge_on_bad(x: int) -> Any:
    return b"x" * (64 * 1024 * 1024) if x == BAD else x * 10


class Unshippable(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.lock = threading.Lock()


def raise_unshippable_on_bad(x: int) -> int:
    if x == BAD:
        raise Unshippable("has a lock")
    return x * 10


def inputs(bad: Any) -> list[Any]:
    return [bad if i == BAD else i for i in range(8)]


ROWS: dict[str, tuple[Callable[[Any], Any], Any, type[BaseException] | None, str]] = {
    # name: (function, the bad task's argument, error, text)
    "exit while unpickling": (
        identity,
        ExitWhileUnpickling(),
        WorkerLostError,
        r"task {task}: worker process-\d+\[pid \d+\] was lost \(exited with code 5\)",
    ),
    "os._exit in the task": (
        exit_on_bad,
        BAD,
        WorkerLostError,
        r"task {task}: worker process-\d+\[pid \d+\] was lost \(exited with code 9\)",
    ),
    "segfault through ctypes": (
        segfault_on_bad,
        BAD,
        WorkerLostError,
        r"task {task}: worker .* was lost \(killed by SIGSEGV\)",
    ),
    "sleep past the timeout": (
        sleep_on_bad,
        BAD,
        TaskTimeoutError,
        r"task {task} ran over its timeout of 3 s on worker process-\d+",
    ),
    "an unpicklable result": (
        lock_on_bad,
        BAD,
        SerializationError,
        r"the task's result cannot be sent back: cannot serialize its result: .*lock",
    ),
    "an unpicklable exception": (
        raise_unshippable_on_bad,
        BAD,
        SerializationError,
        r"the task raised Unshippable: has a lock, which cannot be sent back",
    ),
    "a huge result": (huge_on_bad, BAD, None, ""),
}


@pytest.fixture
def pool(request: pytest.FixtureRequest) -> Iterator[ProcessPool]:
    with hang_guard(180, capture=request.config.pluginmanager.getplugin("capturemanager")):
        before = live_children()
        pool = ProcessPool(2, context="fork", timeout=3)
        try:
            yield pool
        finally:
            pool.close()
            pool.join()
            assert eventually(lambda: not (live_children() - before)), live_children() - before


def expected(function: Callable[[Any], Any], x: Any) -> Any:
    return x if function is identity else x * 10


@pytest.mark.parametrize("row", list(ROWS))
def test_fault(pool: ProcessPool, row: str) -> None:
    function, bad, error, text = ROWS[row]
    handles = [pool.apipe(function, x) for x in inputs(bad)]
    for index, handle in enumerate(handles):
        if index == BAD and error is not None:
            # each pipe is a job of its own: its one task is task 0
            with pytest.raises(error, match=text.format(task=0)):
                handle.get(WAIT)
            continue
        value = handle.get(WAIT)
        if index == BAD:
            assert len(value) == 64 * 1024 * 1024
        else:
            assert value == expected(function, index)
    if error is not None:
        with pytest.raises(error, match=text.format(task=BAD)) as caught:
            pool.map(function, inputs(bad), chunksize=1)
        notes = " ".join(getattr(caught.value, "__notes__", []))
        assert f"task {BAD}" in str(caught.value) + notes
    assert pool.map(exit_on_bad, range(BAD)) == [0, 10, 20]


def test_crash_while_pickling_fails_before_dispatch(pool: ProcessPool) -> None:
    with pytest.raises(
        SerializationError,
        match="cannot serialize the argument of task 3: RuntimeError: refuses to be pickled",
    ):
        pool.map(identity, inputs(CrashWhilePickling()))
    with pytest.raises(SerializationError, match=re.escape("the arguments of task 0: [0]: RuntimeError")):
        pool.apipe(identity, CrashWhilePickling())
    assert pool.stats().tasks == 0, "nothing may reach a worker"
    assert pool.map(identity, range(4)) == [0, 1, 2, 3]


def test_unpicklable_argument_names_the_path(pool: ProcessPool) -> None:
    with socket.socket() as sock:
        with pytest.raises(SerializationError, match=re.escape("the arguments of task 1: [1]")):
            pool.map(divmod, [1, 2], [3, sock])
        with pytest.raises(SerializationError, match=r"manymap\.serialize\.dumps refuses a socket"):
            list(pool.imap(identity, [1, sock]))
    assert pool.map(identity, range(3)) == [0, 1, 2]


def test_unpicklable_function_is_refused_up_front(pool: ProcessPool) -> None:
    numbers = (i for i in range(3))  # a generator cannot be pickled, even by dill
    with pytest.raises(
        SerializationError, match=r"task function .*<lambda>: <closure numbers>: cannot pickle 'generator'"
    ):
        pool.map(lambda x: (next(numbers), x), range(3))


def test_sigkill_from_outside(pool: ProcessPool, tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    result = pool.apipe(write_pid_and_sleep, str(marker))
    assert eventually(marker.exists, timeout=WAIT)
    pid = int(marker.read_text())
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(
        WorkerLostError, match=r"task 0: .*\[pid \d+\] was lost \(killed by SIGKILL"
    ) as caught:
        result.get(10)  # the loss is seen at once; 10 s only bounds a hang
    assert caught.value.exitcode == -signal.SIGKILL
    assert pool.map(identity, range(3)) == [0, 1, 2]


def write_pid_and_sleep(path: str) -> None:
    Path(path + ".tmp").write_text(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(60)


def test_retries_recover_from_a_killed_worker(pool: ProcessPool, tmp_path: Path) -> None:
    marker = str(tmp_path / "died")
    assert pool.map(die_first_time, [marker] * 3, retries=1, chunksize=1) == ["ok"] * 3
    assert pool.stats().workers_lost == 1


def die_first_time(marker: str) -> str:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return "ok"
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


def test_poison_task_fails_after_two_workers(pool: ProcessPool) -> None:
    with pytest.raises(WorkerLostError, match="has now killed 2 workers and is not retried again"):
        pool.map(exit_on_bad, inputs(BAD), retries=5, chunksize=1)
    assert pool.stats().workers_lost == 2
    assert pool.map(identity, range(3)) == [0, 1, 2]


def test_chunk_loss_reruns_only_what_it_must(pool: ProcessPool) -> None:
    # Task 3 dies inside a chunk of 4: the chunk's tasks run again one by one,
    # uncharged; task 3 then dies alone and is the one that fails.
    with pytest.raises(WorkerLostError, match="task 3: ") as caught:
        pool.map(exit_on_bad, range(8), chunksize=4)
    assert caught.value.index == BAD
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert "other task" not in notes, notes


def _refuse_to_load() -> None:
    error = ValueError("this argument will not load here")
    add_note(error, "a note it had before it crossed")
    raise error


class FailsWhileUnpickling:
    def __reduce__(self) -> Any:
        return (_refuse_to_load, ())


def test_a_batch_that_will_not_load_fails_each_task_with_an_error_of_its_own(pool: ProcessPool) -> None:
    # The worker cannot load the batch: one failure comes back for its three tasks,
    # and each task's error must carry its own note only, not its neighbours'.
    with pytest.raises(ValueError, match="will not load here") as caught:
        pool.map(identity, [FailsWhileUnpickling()] * 3, chunksize=3)
    notes = [note for note in caught.value.__notes__ if note.startswith("manymap: task")]
    assert len(notes) == 1, caught.value.__notes__
    assert notes[0].startswith("manymap: task 0 failed")
    assert "a note it had before it crossed" in caught.value.__notes__


class PicklesOnce:
    """Pickles once, as the task number ``BAD``; any later attempt fails."""

    pickled = 0

    def __reduce__(self) -> Any:
        type(self).pickled += 1
        if type(self).pickled > 1:
            raise RuntimeError("pickles only once")
        return (int, (BAD,))


def test_a_requeued_task_that_no_longer_pickles_fails_alone(pool: ProcessPool) -> None:
    # Task 0 kills its worker; its batch is re-queued task by task and each task
    # is encoded again, which task 0 refuses: that task fails, the pool goes on.
    PicklesOnce.pickled = 0
    with pytest.raises(SerializationError, match="task 0: RuntimeError: pickles only once"):
        pool.map(exit_on_bad, [PicklesOnce(), 1], chunksize=2)
    assert pool.map(exit_on_bad, range(BAD)) == [0, 10, 20]

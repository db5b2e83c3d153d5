"""Thread pools abandon what they cannot stop: a timed-out task's thread, and
the running threads of a terminated pool; and a dropped pool lets its threads go."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from manymap.launcher import TaskTimeoutError
from manymap.launcher.testing import ReferencePool, eventually
from manymap.launcher.testing._tasks import where

WAIT = 30.0


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event the runaway tasks wait on; set at teardown so that they end."""
    event = threading.Event()
    yield event
    event.set()


def _bounded(body: Callable[[], Any]) -> Any:
    """Run ``body`` in a thread; fail (instead of hanging) if it does not return."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(("value", body()))
        except BaseException as error:
            outcome.append(("error", error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive(), "the pool hung waiting for a thread it cannot stop"
    kind, value = outcome[0]
    if kind == "error":
        raise value
    return value


def _stuck(event: threading.Event) -> bool:
    """A task that runs until the test lets it go."""
    return event.wait(3600)


def test_with_block_around_a_runaway_task_raises_its_timeout(release: threading.Event) -> None:
    def body() -> list[warnings.WarningMessage]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with (
                pytest.raises(TaskTimeoutError, match="task 0 ran over its timeout"),
                ReferencePool(2) as pool,  # the warning names this line
            ):
                pool.map(_stuck, [release], timeout=0.2)
        return caught

    caught = _bounded(body)
    assert not release.is_set()  # the task still runs: join did not wait for it
    runaway = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runaway) == 1, [str(w.message) for w in caught]
    message = str(runaway[0].message)
    assert "ReferencePool left 1 thread running (a task that timed out)" in message
    assert "cannot be killed" in message
    assert runaway[0].filename == __file__


def test_the_abandoned_threads_take_no_more_work(release: threading.Event) -> None:
    pool = ReferencePool(2)
    try:
        with pytest.raises(TaskTimeoutError):
            pool.map(_stuck, [release, release], timeout=0.2, chunksize=1)  # both threads run away
        runaways = set(pool._abandoned)
        assert len(runaways) == 2
        names = {name for _, _, name in pool.map(_where_named, range(40), chunksize=1)}
        assert names
        assert not names & runaways
        assert len(names) <= 2  # two replacements do the work
        pool.close()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _bounded(pool.join)
        assert not release.is_set()
        assert any("left 2 threads running" in str(w.message) for w in caught), [
            str(w.message) for w in caught
        ]
    finally:
        release.set()
        pool.terminate()


def _where_named(x: int) -> tuple[int, int, str]:
    value, pid, _ = where(x)
    return value, pid, threading.current_thread().name


def test_terminate_abandons_the_threads_that_run_tasks(release: threading.Event) -> None:
    pool = ReferencePool(2)
    started = threading.Event()

    def stuck_here(event: threading.Event) -> bool:
        started.set()
        return event.wait(3600)

    pending = pool.amap(stuck_here, [release])
    assert started.wait(WAIT)
    pool.terminate()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _bounded(pool.join)
    assert pending.cancelled()
    assert any("a task of the terminated pool" in str(w.message) for w in caught)


def test_a_finished_runaway_thread_exits(release: threading.Event) -> None:
    before = {thread.name for thread in threading.enumerate()}
    pool = ReferencePool(1)
    with pytest.raises(TaskTimeoutError):
        pool.map(_stuck, [release], timeout=0.2)
    release.set()
    assert pool.map(abs, [-1, -2]) == [1, 2]
    pool.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pool.join()
    assert eventually(lambda: not ({t.name for t in threading.enumerate()} - before))


def test_a_dropped_pool_lets_its_threads_go() -> None:
    before = set(threading.enumerate())
    pool = ReferencePool(3)
    assert pool.map(abs, range(-5, 0)) == [5, 4, 3, 2, 1]
    assert pool.pipe(abs, -1) == 1
    assert pool.map(abs, [-3], timeout=30) == [3]
    reference = weakref.ref(pool)
    del pool
    gc.collect()
    assert eventually(lambda: reference() is None)
    assert eventually(lambda: not (set(threading.enumerate()) - before)), set(threading.enumerate()) - before


def test_interpreter_exit_does_not_wait_for_a_runaway_thread() -> None:
    script = textwrap.dedent(
        """
        import threading
        from manymap.launcher.testing import ReferencePool

        never = threading.Event()
        with ReferencePool(2) as pool:
            pool.map(never.wait, [None], timeout=0.2)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "TaskTimeoutError: task 0 ran over its timeout of 0.2 s" in done.stderr
    assert "RuntimeWarning: ReferencePool left 1 thread running" in done.stderr

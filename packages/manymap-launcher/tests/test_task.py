"""The worker side: running a batch and capturing failures."""

from __future__ import annotations

import pickle

from manymap.launcher import TaskFailure, run_calls


def boom(x: int) -> int:
    if x == 2:
        raise ValueError("two")
    return -x


def test_run_calls_plain_items() -> None:
    values, failures = run_calls(boom, [0, 1, 3], star=False)
    assert values == [0, -1, -3]
    assert failures == {}


def test_run_calls_star_and_kwargs() -> None:
    values, _ = run_calls(divmod, [(7, 2), (9, 4)], star=True)
    assert values == [(3, 1), (2, 1)]
    values, _ = run_calls(dict, [()], star=True, kwargs={"a": 1})
    assert values == [{"a": 1}]


def test_a_failure_does_not_stop_the_batch() -> None:
    values, failures = run_calls(boom, [1, 2, 3], star=False)
    assert values == [-1, None, -3]
    assert list(failures) == [1]
    failure = failures[1]
    assert isinstance(failure.error, ValueError)
    assert failure.error.__traceback__ is None
    assert 'raise ValueError("two")' in failure.traceback
    assert "in boom" in failure.traceback


def test_exit_and_interrupt_are_captured() -> None:
    def leave(kind: type[BaseException]) -> None:
        raise kind("bye")

    _, failures = run_calls(leave, [SystemExit, KeyboardInterrupt], star=False)
    assert [type(f.error) for f in failures.values()] == [SystemExit, KeyboardInterrupt]


def test_task_failure_pickles() -> None:
    failure = TaskFailure.capture(ValueError("x"))
    again = pickle.loads(pickle.dumps(failure))
    assert isinstance(again.error, ValueError)
    assert again.traceback == failure.traceback

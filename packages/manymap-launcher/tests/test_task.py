"""The worker side: running a batch and capturing failures."""

from __future__ import annotations

import pickle

from manymap.launcher.lowlevel import TaskFailure, run_calls


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


class _NeedsTwo(Exception):
    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} over {limit}")
        self.limit = limit


def test_a_failure_that_would_not_load_pickles_as_a_remote_task_error() -> None:
    from manymap.launcher import RemoteTaskError

    try:
        raise _NeedsTwo("disk", 3)
    except _NeedsTwo as error:
        error.add_note("from the task")
        failure = TaskFailure.capture(error)
    again = pickle.loads(pickle.dumps(failure))
    remote = again.error
    assert isinstance(remote, RemoteTaskError)
    assert remote.type_name == f"{__name__}._NeedsTwo"
    assert remote.message == "disk over 3"
    assert "_NeedsTwo.__init__() missing 1 required positional argument: 'limit'" in remote.reason
    assert "raise _NeedsTwo" in remote.traceback_text
    assert again.traceback == failure.traceback
    assert remote.__notes__ == ["from the task"]
    assert isinstance(failure.error, _NeedsTwo)  # the worker's own object is untouched
    copy = pickle.loads(pickle.dumps(remote))  # and it ships on as itself
    assert (copy.type_name, copy.message, copy.reason, copy.__notes__) == (
        remote.type_name,
        remote.message,
        remote.reason,
        ["from the task"],
    )


class _KeepsArgs(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(a, b)


def test_an_exception_that_keeps_its_arguments_is_shipped_as_itself() -> None:
    again = pickle.loads(pickle.dumps(TaskFailure.capture(_KeepsArgs(1, 2))))
    assert type(again.error) is _KeepsArgs
    assert again.error.args == (1, 2)

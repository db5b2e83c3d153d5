"""The error hierarchy: stdlib compatibility, texts, pickling, annotation."""

from __future__ import annotations

import multiprocessing
import pickle

import pytest

from manymap.launcher import (
    AuthenticationError,
    ConnectionLostError,
    HostKeyError,
    ManymapError,
    PoolClosedError,
    RemoteTraceback,
    ResultTimeoutError,
    SerializationError,
    TaskTimeoutError,
    TunnelError,
    WorkerLostError,
)
from manymap.launcher.lowlevel import annotate_task_error


@pytest.mark.parametrize(
    ("error", "also"),
    [
        (PoolClosedError("closed"), ValueError),
        (ResultTimeoutError("late"), TimeoutError),
        (ResultTimeoutError("late"), multiprocessing.TimeoutError),
        (TaskTimeoutError("slow", index=1, timeout=2.0), TimeoutError),
        (SerializationError("no"), pickle.PicklingError),
        (WorkerLostError("gone", index=1), ManymapError),
    ],
)
def test_errors_are_also_their_stdlib_kin(error: ManymapError, also: type[BaseException]) -> None:
    assert isinstance(error, ManymapError)
    assert isinstance(error, also)


@pytest.mark.parametrize("cls", [AuthenticationError, HostKeyError, ConnectionLostError, TunnelError])
def test_remote_errors_name_host_and_port(cls: type[AuthenticationError]) -> None:
    error = cls("refused", host="example.org", port=2222)
    assert str(error) == "example.org:2222: refused"
    assert (error.host, error.port) == ("example.org", 2222)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert str(again) == str(error)
    assert (again.host, again.port) == ("example.org", 2222)
    assert str(cls("no route", host="h")) == "h: no route"
    assert str(cls("plain")) == "plain"


def test_worker_lost_and_timeout_pickle_with_their_fields() -> None:
    lost = pickle.loads(pickle.dumps(WorkerLostError("task 3 lost", index=3, worker="w1", exitcode=-9)))
    assert (str(lost), lost.index, lost.worker, lost.exitcode) == ("task 3 lost", 3, "w1", -9)
    late = pickle.loads(pickle.dumps(TaskTimeoutError("task 2 late", index=2, timeout=1.5)))
    assert (str(late), late.index, late.timeout) == ("task 2 late", 2, 1.5)


def test_annotate_task_error_chains_the_remote_traceback() -> None:
    error = KeyError("k")
    same = annotate_task_error(
        error, index=7, worker="host-a/3", traceback_text="Traceback ...\nKeyError: 'k'\n"
    )
    assert same is error
    assert isinstance(error.__cause__, RemoteTraceback)
    assert "KeyError: 'k'" in str(error.__cause__)
    assert getattr(error, "__notes__", None) == ["manymap: task 7 failed on worker host-a/3"]


def test_annotate_without_traceback_or_index() -> None:
    error = annotate_task_error(RuntimeError("x"), index=None, worker=None)
    assert error.__cause__ is None
    assert getattr(error, "__notes__", None) == ["manymap: task failed"]

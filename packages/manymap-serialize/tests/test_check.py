"""check(): verdicts, by-value lists and the path to what cannot be serialized; dumps' errors."""

from __future__ import annotations

import dataclasses
import pickle
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from manymap.launcher import ManymapError, SerializationError
from manymap.serialize import CheckReport, check, dumps
from manymap.serialize._check import MAX_DEPTH

SOCKET_REASON = "manymap.serialize.dumps refuses a socket"
SOCKET_ADVICE = "its connection belongs to this process; connect inside the task and pass the address instead"


def socket_reason(sock: socket.socket) -> str:
    return f"{SOCKET_REASON} (socket.socket): {SOCKET_ADVICE}"


@pytest.fixture
def sock() -> Iterator[socket.socket]:
    s = socket.socket()
    yield s
    s.close()


class Conn:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock


class Holder:
    def __init__(self, sock: socket.socket) -> None:
        self.name = "holder"
        self.conn = Conn(sock)


class Slotted:
    __slots__ = ("first", "second")

    def __init__(self, first: Any, second: Any) -> None:
        self.first = first
        self.second = second


@dataclasses.dataclass(frozen=True)
class Key:
    sock: Any


class TaskFailed(Exception):
    pass


def _make_closure(holder: Holder) -> Callable[[], str]:
    def task() -> str:
        return holder.name

    return task


def test_plain_data_ships_by_pickle() -> None:
    report = check({"a": [1, 2.0]}, name="config")
    assert report == CheckReport(name="config", ok=True, method="pickle", nbytes=len(dumps({"a": [1, 2.0]})))
    assert str(report).startswith("config can be serialized: pickle")


def test_lambda_ships_by_value_and_is_named() -> None:
    report = check([1, lambda x: x])
    assert report.ok
    assert report.method == "by value"
    assert len(report.by_value) == 1
    assert report.by_value[0].endswith("test_lambda_ships_by_value_and_is_named.<locals>.<lambda>")
    assert "by value for" in str(report)
    assert report.by_value[0] in str(report)


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda s: s, ""),
        (lambda s: [1, Holder(s)], "[1].conn._sock"),
        (lambda s: {"task": Holder(s)}, "['task'].conn._sock"),
        (lambda s: {"outer": {"inner": [0, (1, Holder(s))]}}, "['outer']['inner'][1][1].conn._sock"),
        (lambda s: _make_closure(Holder(s)), "<closure holder>.conn._sock"),
        (lambda s: TaskFailed(Holder(s)), "args[0].conn._sock"),
        (lambda s: Slotted(1, Conn(s)), "second._sock"),
        (lambda s: {Key(s): 1}, "<key #0>.sock"),
        (lambda s: {frozenset({Key(s)})}, "<item #0>.<item #0>.sock"),
    ],
    ids=["itself", "list-attr", "dict-value", "deep", "closure", "exception-args", "slots", "key", "set"],
)
def test_failure_names_the_path_and_the_reason(
    sock: socket.socket, make: Callable[[socket.socket], Any], path: str
) -> None:
    report = check(make(sock))
    assert not report.ok
    assert report.method is None
    assert report.path == path
    assert report.reason == socket_reason(sock)
    assert report.culprit_type == "socket.socket"
    reason = socket_reason(sock)
    expected = f"cannot serialize obj: {path}: {reason}" if path else f"cannot serialize obj: {reason}"
    assert report.explanation == expected
    assert str(report).splitlines()[0] == expected


def test_closure_cell_holding_the_socket_itself(sock: socket.socket) -> None:
    def task() -> int:
        return sock.fileno()

    report = check([task], name="tasks")
    assert report.path == "[0].<closure sock>"
    assert report.explanation == f"cannot serialize tasks: [0].<closure sock>: {socket_reason(sock)}"
    assert report.full_path == "tasks[0].<closure sock>"


def test_global_used_by_a_main_function(sock: socket.socket) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__", "SOCK": sock}
    exec("def send(data):\n    return SOCK.send(data)\n", namespace)
    report = check(namespace["send"])
    assert report.path == "<global SOCK>"
    assert report.reason == socket_reason(sock)


def test_lock_in_an_object_attribute() -> None:
    holder = Holder.__new__(Holder)
    holder.conn = threading.Lock()  # type: ignore[assignment]
    report = check(holder)
    assert report.path == "conn"
    assert report.reason is not None
    assert report.reason.startswith(
        "manymap.serialize.dumps refuses a lock or other thread synchronization primitive"
    )


def test_cycles_do_not_loop(sock: socket.socket) -> None:
    a: dict[str, Any] = {}
    b: list[Any] = [a]
    a["b"] = b
    a["self"] = a
    a["z"] = Conn(sock)
    report = check(a)
    assert report.path == "['z']._sock"


def test_depth_is_bounded(sock: socket.socket) -> None:
    # A chain 150 objects deep, the socket at the bottom.
    chain: Any = Conn(sock)
    for _ in range(150):
        link = Conn.__new__(Conn)
        link._sock = chain
        chain = link
    report = check(chain)
    assert not report.ok
    assert report.path == ".".join(["_sock"] * MAX_DEPTH)
    assert report.reason == f"{socket_reason(sock)} (search stopped {MAX_DEPTH} levels deep)"


def test_dumps_raises_serialization_error_with_the_check_text(sock: socket.socket) -> None:
    value = TaskFailed(Holder(sock))
    with pytest.raises(SerializationError) as caught:
        dumps(value, name="task 3")
    error = caught.value
    assert str(error) == f"cannot serialize task 3: args[0].conn._sock: {socket_reason(sock)}"
    assert isinstance(error, ManymapError)
    assert isinstance(error, pickle.PicklingError)
    assert isinstance(error.__cause__, pickle.PicklingError)
    assert str(error.__cause__) == socket_reason(sock)


def test_dumps_error_default_name_is_obj(sock: socket.socket) -> None:
    with pytest.raises(SerializationError, match=r"^cannot serialize obj: \[0\]\._sock: "):
        dumps([Conn(sock)])


def test_report_is_frozen() -> None:
    report = check(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.ok = False  # type: ignore[misc]

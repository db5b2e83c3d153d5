"""Process-bound state is refused, never faked: every type, in every position.

Each object below means something only in the process that holds it. Wherever
it sits in what is serialized (a closure cell, a default, a global of a
``__main__`` function, a task argument, deep in a container or an object's
attributes), ``dumps`` raises ``SerializationError`` naming the path and the
kind of state, ``check()`` says the same, and the pools' helpers fail up
front.
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from manymap.launcher import SerializationError
from manymap.launcher.lowlevel import TaskFailure
from manymap.serialize import FunctionPayloads, check, dumps, encode_batch, loads, make_shippable

RunPython = Callable[..., subprocess.CompletedProcess[str]]

FILE = "an open file"
LOCK = "a lock or other thread synchronization primitive"
SOCKET = "a socket"
THREAD = "a thread"
PROCESS = "a process handle"
CONNECTION = "a pipe or connection end"
MMAP = "a memory map"
DATABASE = "a database connection"


class _Worker(threading.Thread):
    """A user's Thread subclass."""


def _popen() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "pass"])


# name -> (make(tmp_path) -> (object, close), kind of state)
Maker = Callable[[Path], tuple[Any, Callable[[], Any]]]


def _opened(mode: str, buffering: int = -1) -> Maker:
    def make(tmp_path: Path) -> tuple[Any, Callable[[], Any]]:
        path = tmp_path / "data.txt"
        path.write_bytes(b"precious data\n")
        handle = open(path, mode, buffering=buffering)  # noqa: SIM115 - closed by the fixture
        return handle, handle.close

    return make


def _pipe_file(tmp_path: Path) -> tuple[Any, Callable[[], Any]]:
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")

    def close() -> None:
        reader.close()
        os.close(write_fd)

    return reader, close


def _plain(factory: Callable[[], Any], close: str | None = None) -> Maker:
    def make(tmp_path: Path) -> tuple[Any, Callable[[], Any]]:
        obj = factory()
        return obj, (getattr(obj, close) if close else lambda: None)

    return make


def _mp_pipe(tmp_path: Path) -> tuple[Any, Callable[[], Any]]:
    a, b = multiprocessing.Pipe()

    def close() -> None:
        a.close()
        b.close()

    return a, close


def _popen_maker(tmp_path: Path) -> tuple[Any, Callable[[], Any]]:
    proc = _popen()
    return proc, lambda: proc.wait(timeout=60)


def _sqlite_cursor(tmp_path: Path) -> tuple[Any, Callable[[], Any]]:
    connection = sqlite3.connect(":memory:")
    return connection.cursor(), connection.close


STATE: dict[str, tuple[Maker, str]] = {
    "file-text-write": (_opened("w"), FILE),
    "file-text-read": (_opened("r"), FILE),
    "file-binary-write": (_opened("wb"), FILE),
    "file-binary-read": (_opened("rb"), FILE),
    "file-binary-append-read": (_opened("a+b"), FILE),
    "file-raw": (_opened("rb", buffering=0), FILE),
    "os-pipe-file": (_pipe_file, FILE),
    "lock": (_plain(threading.Lock), LOCK),
    "rlock": (_plain(threading.RLock), LOCK),
    "condition": (_plain(threading.Condition), LOCK),
    "semaphore": (_plain(threading.Semaphore), LOCK),
    "bounded-semaphore": (_plain(threading.BoundedSemaphore), LOCK),
    "event": (_plain(threading.Event), LOCK),
    "barrier": (_plain(lambda: threading.Barrier(2)), LOCK),
    "socket": (_plain(socket.socket, "close"), SOCKET),
    "thread": (_plain(lambda: threading.Thread(target=print)), THREAD),
    "thread-subclass": (_plain(_Worker), THREAD),
    "popen": (_popen_maker, PROCESS),
    "multiprocessing-process": (_plain(lambda: multiprocessing.Process(target=print)), PROCESS),
    "multiprocessing-connection": (_mp_pipe, CONNECTION),
    "mmap": (_plain(lambda: mmap.mmap(-1, 4096), "close"), MMAP),
    "sqlite3-connection": (_plain(lambda: sqlite3.connect(":memory:"), "close"), DATABASE),
    "sqlite3-cursor": (_sqlite_cursor, DATABASE),
}


@pytest.fixture(params=sorted(STATE))
def bound(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    make, kind = STATE[request.param]
    obj, close = make(tmp_path)
    try:
        yield obj, kind
    finally:
        close()


class Holder:
    def __init__(self, value: Any) -> None:
        self.resource = value


def _closure(value: Any) -> Callable[[], Any]:
    def task() -> Any:
        return value

    return task


def _default(value: Any) -> Callable[..., Any]:
    return lambda x, resource=value: (x, resource)


def _main_global(value: Any) -> Callable[[], Any]:
    namespace: dict[str, Any] = {"__name__": "__main__", "RESOURCE": value}
    exec("def task():\n    return RESOURCE\n", namespace)
    return namespace["task"]  # type: ignore[no-any-return]


POSITIONS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "closure-cell": (_closure, "<closure value>"),
    "default": (_default, "__defaults__[0]"),
    "main-global": (_main_global, "<global RESOURCE>"),
    "argument": (lambda value: value, ""),
    "in-containers": (lambda value: [1, {"k": (Holder(value),)}], "[1]['k'][0].resource"),
    "closure-over-container": (
        lambda value: _closure({"k": [Holder(value)]}),
        "<closure value>['k'][0].resource",
    ),
}


@pytest.mark.parametrize("position", sorted(POSITIONS))
def test_dumps_and_check_refuse_it_naming_the_path(bound: tuple[Any, str], position: str) -> None:
    value, kind = bound
    place, path = POSITIONS[position]
    obj = place(value)
    with pytest.raises(SerializationError) as caught:
        dumps(obj, name="task")
    message = str(caught.value)
    where = f"task: {path}: " if path else "task: "
    assert message.startswith(f"cannot serialize {where}manymap.serialize.dumps refuses {kind} (")
    assert "manymap.serialize._" not in message
    report = check(obj, name="task")
    assert not report.ok
    assert report.path == path
    assert report.explanation == message


def test_a_refused_object_is_blamed_as_a_whole() -> None:
    worker = _Worker()
    report = check({"w": worker})
    assert report.path == "['w']"
    assert report.culprit_type.endswith("_Worker")  # type: ignore[union-attr]


def test_open_file_explains_what_to_do_instead(tmp_path: Path) -> None:
    with open(tmp_path / "out.txt", "w") as handle, pytest.raises(SerializationError) as caught:
        dumps(lambda text: handle.write(text))
    assert str(caught.value) == (
        "cannot serialize obj: <closure handle>: manymap.serialize.dumps refuses an open file "
        f"(_io.TextIOWrapper name={str(tmp_path / 'out.txt')!r} mode='w'): a copy would be another "
        "file handle (dill would reopen the file by name, truncating a file opened for writing); "
        "open the file inside the task and pass its path instead"
    )


def test_the_file_a_refused_closure_writes_to_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "results.txt"
    with open(path, "w") as handle:
        handle.write("first line\n")
        handle.flush()
        with pytest.raises(SerializationError):
            dumps(lambda text: handle.write(text))
    assert path.read_text() == "first line\n"


def test_pool_helpers_fail_up_front(bound: tuple[Any, str]) -> None:
    value, kind = bound
    refuses = f"manymap.serialize.dumps refuses {kind} ("
    with pytest.raises(
        SerializationError,
        match=r"^cannot serialize the task function _closure\.<locals>\.task: <closure value>: ",
    ) as caught:
        FunctionPayloads().payload(_closure(value))
    assert refuses in str(caught.value)

    def encode(obj: Any, name: str) -> bytes:
        return dumps(obj, name=name)

    with pytest.raises(
        SerializationError, match=r"^cannot serialize the argument of task 8: \[1\]\.resource: "
    ) as caught:
        encode_batch(encode, {}, [0, [0, Holder(value)]], 7, star=False)
    assert refuses in str(caught.value)

    values: list[Any] = [1, Holder(value)]
    failures: dict[int, TaskFailure] = {}
    make_shippable(values, failures)
    assert values == [1, None]
    assert refuses in str(failures[1].error)


def test_ordinary_data_and_in_memory_files_still_ship() -> None:
    import io

    data = {"buffer": io.BytesIO(b"abc"), "text": io.StringIO("x"), "lock": None}
    loaded = loads(dumps(data))
    assert loaded["buffer"].getvalue() == b"abc"
    assert loaded["text"].getvalue() == "x"
    assert check(threading.Lock).ok, "the type itself goes by reference"


STREAMS = textwrap.dedent(
    """
    import sys
    from manymap.serialize import dumps, loads

    out = sys.stdout
    err = sys.stderr

    def report(text):
        print(text, file=out)
        print("to stderr", file=err)
        return out is sys.stdout

    with open(sys.argv[1], "wb") as f:
        f.write(dumps({"report": report, "stdin": sys.stdin, "stdout": sys.__stdout__}))
    assert loads(dumps(sys.stdout)) is sys.stdout
    print("dumped")
    """
)

STREAMS_LOADER = textwrap.dedent(
    """
    import sys
    from manymap.serialize import loads
    with open(sys.argv[1], "rb") as f:
        loaded = loads(f.read())
    assert loaded["stdin"] is sys.stdin
    assert loaded["stdout"] is sys.__stdout__
    print(loaded["report"]("from the far side"))
    """
)


def test_standard_streams_go_by_reference_to_the_far_sides_own(run_python: RunPython, tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    assert run_python(str(payload), code=STREAMS).stdout == "dumped\n"
    proc = run_python(str(payload), code=STREAMS_LOADER)
    assert proc.stdout == "from the far side\nTrue\n"
    assert proc.stderr == "to stderr\n"

"""Process-bound state: what is refused instead of shipped, and why.

An open file, a lock, a socket, a thread, a process handle, a pipe end, a
memory map or a database connection means something only in the process that
holds it. pickle refuses most of them, but not all (a
``multiprocessing.connection.Connection`` pickles as a bare file descriptor
number), and dill "ships" most of them by faking them: a file is reopened on
the far side (and truncated when it was opened for writing), a lock becomes a
new, unrelated lock. Both picklers of this package therefore ask
`reduce_bound()` about every object they do not handle themselves, and it
raises a ``pickle.PicklingError`` that says what the object is and what to
do instead. The one exception: the standard streams (``sys.stdin``,
``sys.stdout``, ``sys.stderr`` and their ``sys.__std*__`` originals) go by
reference to the far side's own stream of the same name, as dill does.

The check costs one dict lookup per object: the answer is cached per type
(``KINDS``). A type is classified the first time it is met, by
``issubclass`` against the process-bound types of the modules already
imported; a type that exists before its module is imported cannot derive from
that module's types, so a cached "not bound" stays right when more modules
are imported later. Nothing is imported here to build the table.
"""

from __future__ import annotations

import pickle
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["KINDS", "bound_kind", "reduce_bound"]

# (module where the type is defined, attribute, kind). Modules that are not
# imported are skipped: no instance of their types can exist yet.
_CANDIDATES: tuple[tuple[str, str, str], ...] = (
    ("_io", "FileIO", "file"),
    ("_io", "BufferedReader", "file"),
    ("_io", "BufferedWriter", "file"),
    ("_io", "BufferedRandom", "file"),
    ("_io", "BufferedRWPair", "file"),
    ("_io", "TextIOWrapper", "file"),
    ("_pyio", "FileIO", "file"),
    ("_pyio", "BufferedReader", "file"),
    ("_pyio", "BufferedWriter", "file"),
    ("_pyio", "BufferedRandom", "file"),
    ("_pyio", "BufferedRWPair", "file"),
    ("_pyio", "TextIOWrapper", "file"),
    ("_thread", "LockType", "lock"),
    ("_thread", "RLock", "lock"),
    ("threading", "_RLock", "lock"),
    ("threading", "Condition", "lock"),
    ("threading", "Semaphore", "lock"),  # BoundedSemaphore derives from it
    ("threading", "Event", "lock"),
    ("threading", "Barrier", "lock"),
    ("_multiprocessing", "SemLock", "lock"),
    ("multiprocessing.synchronize", "SemLock", "lock"),
    ("multiprocessing.synchronize", "Condition", "lock"),
    ("multiprocessing.synchronize", "Event", "lock"),
    ("multiprocessing.synchronize", "Barrier", "lock"),
    ("_multiprocess", "SemLock", "lock"),
    ("multiprocess.synchronize", "SemLock", "lock"),
    ("multiprocess.synchronize", "Condition", "lock"),
    ("multiprocess.synchronize", "Event", "lock"),
    ("multiprocess.synchronize", "Barrier", "lock"),
    ("_socket", "socket", "socket"),
    ("threading", "Thread", "thread"),
    ("subprocess", "Popen", "process"),
    ("multiprocessing.process", "BaseProcess", "process"),
    ("multiprocess.process", "BaseProcess", "process"),
    ("multiprocessing.connection", "_ConnectionBase", "connection"),
    ("multiprocess.connection", "_ConnectionBase", "connection"),
    ("mmap", "mmap", "mmap"),
    ("_sqlite3", "Connection", "database"),
    ("_sqlite3", "Cursor", "database"),
)

_WHAT = {
    "file": (
        "an open file",
        "a copy would be another file handle (dill would reopen the file by name, "
        "truncating a file opened for writing)",
        "open the file inside the task and pass its path instead",
    ),
    "lock": (
        "a lock or other thread synchronization primitive",
        "it only synchronizes threads of this process; a copy would be an unrelated lock",
        "create it inside the task, or coordinate through the tasks' arguments and results",
    ),
    "socket": (
        "a socket",
        "its connection belongs to this process",
        "connect inside the task and pass the address instead",
    ),
    "thread": (
        "a thread",
        "it runs in this process only",
        "start threads inside the task",
    ),
    "process": (
        "a process handle",
        "only the process that started a child can wait for it or talk to it",
        "start the process inside the task, or pass its pid",
    ),
    "connection": (
        "a pipe or connection end",
        "its file descriptor belongs to this process",
        "pass data through the tasks' arguments and results",
    ),
    "mmap": (
        "a memory map",
        "the mapping belongs to this process",
        "pass the file's path and map it inside the task, or pass a numpy array (sent out of band)",
    ),
    "database": (
        "a database connection",
        "it belongs to this process",
        "connect inside the task and pass the database's path or address instead",
    ),
}

_STREAMS = ("stdout", "stderr", "stdin", "__stdout__", "__stderr__", "__stdin__")

KINDS: dict[type, str] = {}
_MAX_KINDS = 4096


def bound_kind(cls: type) -> str:
    """The kind of process-bound state ``cls`` is (``"file"``, ``"lock"``, ...), or ``""``."""
    kind = KINDS.get(cls)
    if kind is None:
        kind = _classify(cls)
        if len(KINDS) >= _MAX_KINDS:
            KINDS.clear()
        KINDS[cls] = kind
    return kind


def _classify(cls: type) -> str:
    modules = sys.modules
    for module_name, attr, kind in _CANDIDATES:
        module = modules.get(module_name)
        if module is None:
            continue
        candidate = getattr(module, attr, None)
        if isinstance(candidate, type) and issubclass(cls, candidate):
            return kind
    return ""


def reduce_bound(obj: Any, kind: str) -> Any:
    """The reduction of process-bound ``obj`` of ``kind``: a standard stream by reference.

    Raises:
        pickle.PicklingError: for everything else, saying what ``obj`` is and
            what to do instead.
    """
    if kind == "file":
        for name in _STREAMS:
            if getattr(sys, name, None) is obj:
                return (getattr, (sys, name))
    what, why, instead = _WHAT[kind]
    raise pickle.PicklingError(f"manymap.serialize.dumps refuses {what} ({_describe(obj)}): {why}; {instead}")


def _describe(obj: Any) -> str:
    cls = type(obj)
    text = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    for attr in ("name", "mode"):  # what a file is, without its address or descriptor number
        try:
            value = getattr(obj, attr, None)
        except Exception:
            continue
        if isinstance(value, str):
            text += f" {attr}={value!r}"
    return text

"""What runs inside a ppft worker process: one batch per ppft job.

The server hands every batch to its ppft worker as a call of :data:`STUB`, a
tiny function ppft ships once per worker as source text (ppft caches it by
hash); the stub calls :func:`run_counted` with the batch's bytes, which
returns :func:`run_batch`'s outcome with the number of tasks it ran (the
server counts them for ``--max-tasks-per-worker``). The task
function itself travels by value through manymap.serialize, once per
connection, and stays cached here under the key the client gave it.

payload: ``KEY(8, key, star, length of function) + function + data`` where
``function`` is empty when this worker already holds ``key`` and ``data`` is
``(kwargs, items)``. The result is ``(values, failures)`` serialized; a
value or exception that cannot be serialized fails its task instead.
"""

from __future__ import annotations

import io
import struct
import sys
from collections.abc import Callable
from typing import Any

from manymap.launcher import SerializationError
from manymap.launcher.lowlevel import TaskFailure, run_calls
from manymap.serialize import dumps, loads, make_shippable

__all__ = ["FUNCTION_CACHE", "KEY", "STUB", "STUB_NAME", "encode_results", "run_batch", "run_counted"]

KEY = struct.Struct("!Q?Q")
FUNCTION_CACHE = 64  # both sides clear their cache at this many entries, in step
STUB_NAME = "manymap_rpc_batch"
STUB = (
    f"def {STUB_NAME}(payload):\n"
    "    from manymap.pools.rpc._remote import run_counted\n"
    "    return run_counted(payload)\n"
)

_functions: dict[int, Callable[..., Any] | TaskFailure] = {}


def run_batch(payload: bytes) -> bytes:
    """Run one batch (in a ppft worker) and return its serialized outcome."""
    return run_counted(payload)[0]


def run_counted(payload: bytes) -> tuple[bytes, int]:
    """Run one batch (in a ppft worker): its serialized outcome, and how many tasks it
    ran (1 for a batch that could not be loaded: the worker tried)."""
    _rewind_output()
    key, star, size = KEY.unpack_from(payload)
    start = KEY.size
    if size:
        if len(_functions) >= FUNCTION_CACHE:
            _functions.clear()
        try:
            _functions[key] = loads(payload[start : start + size])
        except Exception as error:  # reported with every task that needs it
            _functions[key] = TaskFailure.capture(error)
    function = _functions.get(key)
    values: list[Any] | None
    tasks = 1
    if function is None:
        values, failures = None, {0: TaskFailure(RuntimeError(f"function {key} is not cached here"), "")}
    elif isinstance(function, TaskFailure):
        values, failures = None, {0: function}
    else:
        try:
            kwargs, items = loads(payload[start + size :])
        except Exception as error:
            values, failures = None, {0: TaskFailure.capture(error)}
        else:
            tasks = max(1, len(items))
            values, failures = run_calls(function, items, star=star, kwargs=kwargs)
    return encode_results(values, failures), tasks


def _rewind_output() -> None:
    """Write the task's output from the start of ppft's buffer.

    ppft empties its stdout buffer after each job with ``truncate(0)`` but
    leaves the position at the old end, so the next job's output would begin
    with that many NUL characters.
    """
    out = sys.stdout
    if isinstance(out, io.StringIO) and not out.getvalue():
        out.seek(0)


def encode_results(values: list[Any] | None, failures: dict[int, TaskFailure]) -> bytes:
    """A batch's outcome; a value or exception that cannot be shipped fails its task.

    ``values`` is ``None`` when the batch could not be loaded; ``failures``
    then holds the one reason, at offset 0, for all its tasks.
    """
    try:
        return dumps((values, failures), name="the results")
    except SerializationError:
        make_shippable(values, failures)
    return dumps((values, failures), name="the results")

"""What runs inside a ppft worker process: one batch per ppft job.

The server hands every batch to its ppft worker as a call of :data:`STUB`, a
tiny function ppft ships once per worker as source text (ppft caches it by
hash); the stub calls :func:`run_counted` with the batch's bytes, which
returns :func:`run_batch`'s outcome with the number of tasks it ran (the
server counts them for ``--max-tasks-per-worker``). The task
function itself travels by value through manymap.serialize, once per
connection, and stays cached here under the key the client gave it (a
``manymap.serialize.FunctionCache``, in step with the client's
``must_send``).

payload: ``KEY(8, key, star, length of function) + function + data`` where
``function`` is empty when this worker already holds ``key`` and ``data`` is
``(kwargs, items)``. The result is ``(values, failures)`` serialized
(``manymap.serialize.encode_results``); a value or exception that cannot be
serialized fails its task instead.
"""

from __future__ import annotations

import io
import struct
import sys

from manymap.launcher.lowlevel import run_loaded
from manymap.serialize import FunctionCache, encode_results, loads

__all__ = ["KEY", "STUB", "STUB_NAME", "run_batch", "run_counted"]

KEY = struct.Struct("!Q?Q")
STUB_NAME = "manymap_rpc_batch"
STUB = (
    f"def {STUB_NAME}(payload):\n"
    "    from manymap.pools.rpc._remote import run_counted\n"
    "    return run_counted(payload)\n"
)

_functions = FunctionCache()


def run_batch(payload: bytes) -> bytes:
    """Run one batch (in a ppft worker) and return its serialized outcome."""
    return run_counted(payload)[0]


def run_counted(payload: bytes) -> tuple[bytes, int]:
    """Run one batch (in a ppft worker): its serialized outcome, and how many tasks it
    ran (1 for a batch that could not be loaded: the worker tried)."""
    _rewind_output()
    key, star, size = KEY.unpack_from(payload)
    start = KEY.size
    if size:  # one that fails to load fails every task that needs it
        _functions.store(key, payload[start : start + size])
    values, failures = run_loaded(_functions.get(key), lambda: loads(payload[start + size :]), star=star)
    tasks = max(1, len(values)) if values is not None else 1
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

"""Everything that runs inside a ppft worker process of a ``manymap-server``.

Nothing else imports this module: the server starts the worker with
:func:`main` (``python -m manymap.pools.rpc._inworker``, see ``_ppprocess.py``)
and reaches the rest through the stub it sends with every job.

The process. :func:`main` runs ppft's own worker loop
(``ppft.__main__._WorkerProcess``) with two changes that cut the cost of a
round trip without changing what goes over the pipe (``_wire.py``):

- a message is written in one piece (:class:`OneWritePipe`): ppft writes
  its 8-byte length and the message as two flushed writes, so each reply
  woke the server twice;
- the envelope around a job (the stub's name and source, the argument
  tuple, the ``(result, output)`` reply) goes through the stdlib pickle,
  not dill's pure-Python pickler: it holds only strings and bytes, since
  manymap's own payload is already serialized.

The batches. Every job is a call of the stub (``_wire.STUB``, a tiny
function ppft ships once per worker as source text and caches by hash); the
stub calls :func:`run_counted` with the batch (``_wire.pack_batch``), which
returns the batch's serialized outcome with the number of tasks it ran (the
server counts them for ``--max-tasks-per-worker``). The task function itself
travels by value through manymap.serialize, once per connection, and stays
cached here under the key the client gave it. The outcome is ``(values,
failures)`` serialized; a value or exception that cannot be serialized fails
its task instead.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
from collections.abc import Callable
from typing import Any

import ppft.__main__ as ppft_worker
import ppft.transport

from manymap.launcher import SerializationError, TaskFailure, run_calls
from manymap.pools.rpc import _wire as wire
from manymap.serialize import dumps, loads, make_shippable

__all__ = ["OneWritePipe", "encode_results", "main", "run_batch", "run_counted"]

_functions: dict[int, Callable[..., Any] | TaskFailure] = {}


# ------------------------------------------------------------- the batches


def run_batch(payload: bytes) -> bytes:
    """Run one batch and return its serialized outcome."""
    return run_counted(payload)[0]


def run_counted(payload: bytes) -> tuple[bytes, int]:
    """Run one batch: its serialized outcome, and how many tasks it ran (1 for a
    batch that could not be loaded: the worker tried)."""
    _rewind_output()
    batch = wire.unpack_batch(payload)
    if batch.function:
        if len(_functions) >= wire.FUNCTION_CACHE:
            _functions.clear()
        try:
            _functions[batch.key] = loads(batch.function)
        except Exception as error:  # reported with every task that needs it
            _functions[batch.key] = TaskFailure.capture(error)
    function = _functions.get(batch.key)
    values: list[Any] | None
    tasks = 1
    if function is None:
        failure = TaskFailure(RuntimeError(f"function {batch.key} is not cached here"), "")
        values, failures = None, {0: failure}
    elif isinstance(function, TaskFailure):
        values, failures = None, {0: function}
    else:
        try:
            kwargs, items = loads(batch.data)
        except Exception as error:
            values, failures = None, {0: TaskFailure.capture(error)}
        else:
            tasks = max(1, len(items))
            values, failures = run_calls(function, items, star=batch.star, kwargs=kwargs)
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


# ------------------------------------------------------------- the process


class OneWritePipe(ppft.transport.CPipeTransport):  # type: ignore[misc]
    """ppft's cached pipe transport, flushing once per :meth:`send`: the worker's
    side of the pipe (the server writes ppft's framing itself, ``_wire.pack_job``)."""

    def send(self, *messages: bytes | str) -> None:
        """Write ``messages`` in ppft's framing; small ones leave in one write, large ones uncopied."""
        for message in messages:
            data = message.encode() if isinstance(message, str) else message
            self.wb.write(wire.LENGTH.pack(len(data)))
            self.wb.write(data)
        self.w.flush()


def main() -> None:
    """Run the worker loop on stdin and stdout until stdin ends."""
    sys.path.append(os.path.dirname(ppft_worker.__file__))  # as ``python -m ppft`` does
    ppft_worker.pickle = pickle
    worker = ppft_worker._WorkerProcess()  # greets the server over ppft's own transport
    worker.t = OneWritePipe(sys.stdin, sys.__stdout__)
    worker.run()


if __name__ == "__main__":
    main()

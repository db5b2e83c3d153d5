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
cached here under the key the client gave it (a
``manymap.serialize.FunctionCache``, in step with the client's
``must_send``). The outcome is ``(values, failures)`` serialized
(``manymap.serialize.encode_results``); a value or exception that cannot be
serialized fails its task instead.
"""

from __future__ import annotations

import io
import os
import pickle
import sys

import ppft.__main__ as ppft_worker
import ppft.transport

from manymap.launcher.lowlevel import run_loaded
from manymap.pools.rpc import _wire as wire
from manymap.serialize import FunctionCache, encode_results, loads

__all__ = ["OneWritePipe", "main", "run_batch", "run_counted"]

_functions = FunctionCache()


# ------------------------------------------------------------- the batches


def run_batch(payload: bytes) -> bytes:
    """Run one batch and return its serialized outcome."""
    return run_counted(payload)[0]


def run_counted(payload: bytes) -> tuple[bytes, int]:
    """Run one batch: its serialized outcome, and how many tasks it ran (1 for a
    batch that could not be loaded: the worker tried)."""
    _rewind_output()
    batch = wire.unpack_batch(payload)
    if batch.function:  # one that fails to load fails every task that needs it
        _functions.store(batch.key, batch.function)
    values, failures = run_loaded(_functions.get(batch.key), lambda: loads(batch.data), star=batch.star)
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

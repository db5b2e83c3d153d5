"""Everything that runs inside a ppft worker process of a ``manymap-server``.

Nothing else imports this module: the server starts the worker with
:func:`main` (``python -m manymap.pools.rpc._inworker``, see ``_ppprocess.py``)
and reaches the rest through the stub it sends with every job.

The process. :func:`main` runs ppft's own worker loop
(``ppft.__main__._WorkerProcess``) with two changes that cut the cost of a
round trip without changing what goes over the pipe (``_wire.py``):

- a message is written in one piece (:class:`OneWritePipe`): ppft writes
  its 8-byte length and the message as two flushed writes, so each reply
  woke the server twice; and after it the worker looks for its next job
  without sleeping for a moment (``manymap.launcher.lowlevel.spin``: a
  worker that slept takes 20 to 30 µs to wake on a virtual machine);
- the envelope around a job (the stub's name and source, the argument
  tuple, the ``(result, output)`` reply) goes through the stdlib pickle,
  not dill's pure-Python pickler: it holds only strings and bytes, since
  manymap's own payload is already serialized; and the batch in the
  argument tuple and the outcome in the reply are not copied on the way
  (:data:`ENVELOPE`: ``_wire.unpack_args`` and ``_wire.pack_reply``, the
  pickles the server writes and reads around them).

The batches. Every job is a call of the stub (``_wire.STUB``, a tiny
function ppft ships once per worker as source text and caches by hash; the
worker runs it as ``_stub.py``'s bytecode has it compiled, :data:`STUB_CODE`,
instead of compiling the text); the stub calls :func:`run_counted` with the
batch (``_wire.pack_batch``), which returns the batch's serialized outcome
with the number of tasks it ran (the server counts them for
``--max-tasks-per-worker``). The task function itself travels by value
through manymap.serialize, once per connection, and stays cached here under
the key the client gave it (a ``manymap.serialize.FunctionCache``, in step
with the client's ``must_send``). The outcome is ``(values, failures)`` serialized
(``manymap.serialize.encode_results``); a value or exception that cannot be
serialized fails its task instead.
"""

from __future__ import annotations

import io
import os
import select
import sys
import types
from typing import Any

from manymap.launcher.lowlevel import run_loaded, spin
from manymap.pools.rpc import _wire as wire
from manymap.serialize import FunctionCache, encode_results, loads

__all__ = ["ENVELOPE", "STUB_CODE", "OneWritePipe", "main", "run_batch", "run_counted"]


def _import_ppft_worker() -> tuple[Any, Any]:
    """ppft's worker loop (``ppft.__main__``) and its pipe transport class, loaded alone.

    The loop needs three of ppft's modules (``__main__``, ``transport``,
    ``common``). Importing them as ``ppft.*`` runs ppft's package first, which
    loads its whole client and server, and both the package and the loop
    import dill as their pickle, which this worker never uses (:data:`ENVELOPE`
    replaces the loop's): 30 ms of every worker's (or the template's) start,
    against 3 ms for the three modules. So they are loaded from ppft's
    directory as modules of a package of our own, :data:`_PPFT_COPY`, whose
    ``__init__`` is not ppft's, with dill blocked for that import when it is
    not loaded already. The ``ppft`` package itself is not imported: a task
    that imports it gets all of it, dill and all, as in any process.
    """
    import importlib.util

    spec = importlib.util.find_spec("ppft")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("manymap-server's workers need ppft: pip install ppft", name="ppft")
    package = types.ModuleType(_PPFT_COPY, "ppft's worker-side modules, loaded without ppft's package")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules[_PPFT_COPY] = package
    blocked = "dill" not in sys.modules
    if blocked:
        sys.modules["dill"] = None  # type: ignore[assignment]  # "import dill" raises ImportError
    try:
        worker_module = importlib.import_module(f"{_PPFT_COPY}.__main__")
        transport = importlib.import_module(f"{_PPFT_COPY}.transport")
    finally:
        if blocked and sys.modules.get("dill", False) is None:
            del sys.modules["dill"]
    return worker_module, transport.CPipeTransport


#: The package name ppft's worker-side modules are loaded under (see `_import_ppft_worker`).
_PPFT_COPY = f"{__name__}_ppft"


ppft_worker, _CPipeTransport = _import_ppft_worker()


def _load_stub_code() -> types.CodeType | None:
    """The code that defines the stub (``_wire.STUB``): ``_stub.py``'s, as the import
    system loads it, from its ``.pyc`` (compiled and cached the first time where
    the installer did not); ``None`` where there is no such module.

    Loaded by the template before it forks the workers, which run it instead of
    compiling the stub's text: a process's first ``compile()`` of source costs
    about 0.8 ms, which the template paid on the way to every pool's first task.
    """
    import importlib.util

    spec = importlib.util.find_spec(_STUB_MODULE)
    get_code = getattr(getattr(spec, "loader", None), "get_code", None)
    code = get_code(_STUB_MODULE) if get_code is not None else None
    return code if isinstance(code, types.CodeType) else None


_STUB_MODULE = f"{__package__}._stub"

#: What the workers run for the stub (`_load_stub_code`); ``None``: they compile its text.
STUB_CODE = _load_stub_code()


def _preprocess(message: Any) -> tuple[str, list[Any]]:
    """ppft's ``preprocess`` (the stub's name and its code objects, from the pickled
    ``(name, sources, imports)``), with the stub's code taken from :data:`STUB_CODE`."""
    name, sources, imports = ppft_worker.pickle.loads(ppft_worker.ppc.b_(message))
    if STUB_CODE is not None and name == wire.STUB_NAME and list(sources) == [wire.STUB] and not imports:
        return name, [STUB_CODE]
    return _ppft_preprocess(message)  # type: ignore[no-any-return]


_ppft_preprocess = ppft_worker.preprocess

_functions = FunctionCache()


# ------------------------------------------------------------- the batches


def run_batch(payload: wire.Buffer) -> bytes:
    """Run one batch and return its serialized outcome."""
    return run_counted(payload)[0]


def run_counted(payload: wire.Buffer) -> tuple[bytes, int]:
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


class OneWritePipe(_CPipeTransport):  # type: ignore[misc,valid-type]
    """ppft's cached pipe transport, flushing once per :meth:`send`: the worker's
    side of the pipe (the server writes ppft's framing itself, ``_wire.pack_job``)."""

    def __init__(self, r: Any, w: Any) -> None:
        super().__init__(r, w)
        self._jobs = select.poll()  # the job pipe, looked at after each reply
        self._jobs.register(r.fileno(), select.POLLIN)

    def send(self, *messages: bytes | str | list[wire.Buffer]) -> None:
        """Write ``messages`` (one may be in pieces, :data:`ENVELOPE`'s) in ppft's framing;
        small ones leave in one write, large ones uncopied."""
        for message in messages:
            if isinstance(message, list):
                pieces = message
            else:
                pieces = [message.encode() if isinstance(message, str) else message]
            self.wb.write(wire.LENGTH.pack(sum(len(piece) for piece in pieces)))
            for piece in pieces:
                self.wb.write(piece)
        self.w.flush()
        # The next job is near: looked for without sleeping first. (The server sends one
        # job at a time, so nothing of it is in the read buffer now.)
        spin(lambda: self._jobs.poll(0))


#: The ``pickle`` of ppft's worker loop: the argument tuple of a job and the reply,
#: around the batch and its outcome without copying them (stdlib pickle else).
ENVELOPE = types.SimpleNamespace(loads=wire.unpack_args, dumps=wire.pack_reply)


def main() -> None:
    """Run the worker loop on stdin and stdout until stdin ends."""
    sys.path.append(os.path.dirname(ppft_worker.__file__))  # as ``python -m ppft`` does
    ppft_worker.pickle = ENVELOPE
    ppft_worker.preprocess = _preprocess
    worker = ppft_worker._WorkerProcess()  # greets the server over ppft's own transport
    worker.t = OneWritePipe(sys.stdin, sys.__stdout__)
    worker.run()


if __name__ == "__main__":
    main()

"""Everything that runs inside a ppft worker process of a ``manymap-server``.

Nothing else imports this module: the server starts the worker with
:func:`main` (``python -m manymap.pools.rpc._inworker``, see ``_ppprocess.py``)
and reaches the rest through the stub every job calls.

The process. :func:`main` greets the server as ppft's worker does (its pid on
stdout, the pickle protocol read from stdin) and then runs ppft's own worker
loop (``ppft.__main__._WorkerProcess.run``) on a client's connection: stdin
is a unix socket, on which the server hands over the connection of the
client this worker is to serve (``_handoff.py``), and
:class:`ClientTransport` makes each of that client's batches a job of the
loop and each reply a frame back to it, with no relay in between. After its
reply the worker looks for the next batch without sleeping for a moment
(``manymap.launcher.lowlevel.spin`` for ``WORKER_SPIN``: a process that
slept takes 20 to 30 µs to wake on a virtual machine). The loop's envelope (:data:`ENVELOPE`, where
ppft pickles the arguments and the reply) passes them as they are: the
batch and its outcome are manymap's own serialized bytes already.

The batches. Every job is a call of the stub (``_wire.STUB``, which names
:func:`run_counted` for ppft's loop; the worker runs it once, as
``_stub.py``'s bytecode has it compiled, :data:`STUB_CODE`, instead of
compiling the text): :func:`run_counted` gets the batch
(``_wire.pack_batch``) and returns the batch's serialized outcome
with the number of tasks it ran (counted for ``--max-tasks-per-worker``: a
worker that ran its share says so with its reply, and exits). The task function itself travels by value
through manymap.serialize, once per connection, and stays cached here under
the key the client gave it (a ``manymap.serialize.FunctionCache``, in step
with the client's ``must_send``). The outcome is ``(values, failures)`` serialized
(``manymap.serialize.encode_results``); a value or exception that cannot be
serialized fails its task instead.
"""

from __future__ import annotations

import collections
import io
import os
import select
import socket
import sys
import time
import types

from manymap.launcher.lowlevel import WORKER_SPIN, run_loaded, spin
from manymap.pools.rpc import _handoff as handoff
from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._handoff import CUT, IDLE, RETIRED, RUNNING, WRITING
from manymap.serialize import FunctionCache, dumps_parts, encode_results, loads

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from collections.abc import Sequence
    from importlib.machinery import ModuleSpec
    from typing import Any, NoReturn

__all__ = ["ENVELOPE", "STUB_CODE", "ClientTransport", "main", "run_counted"]


def _import_ppft_worker() -> Any:
    """ppft's worker loop (``ppft.__main__``), loaded alone.

    The loop needs three of ppft's modules (``__main__``, ``transport``,
    ``common``). Importing them as ``ppft.*`` runs ppft's package first, which
    loads its whole client and server, and both the package and the loop
    import dill as their pickle, which this worker never uses (:data:`ENVELOPE`
    replaces the loop's): 30 ms of every worker's (or the template's) start,
    against 3 ms for the three modules. So they are loaded from ppft's
    directory as modules of a package of our own, :data:`_PPFT_COPY`, whose
    ``__init__`` is not ppft's, with dill blocked for that import when it is
    not loaded already, and ``hashlib`` and ``logging`` stood in for (:func:`_stand_in`).
    The ``ppft`` package itself is not imported: a task that imports it gets
    all of it, dill and all, as in any process.
    """
    spec = _find_spec("ppft")  # finds it without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("manymap-server's workers need ppft: pip install ppft", name="ppft")
    package = types.ModuleType(_PPFT_COPY, "ppft's worker-side modules, loaded without ppft's package")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules[_PPFT_COPY] = package
    blocked = "dill" not in sys.modules
    if blocked:
        sys.modules["dill"] = None  # type: ignore[assignment]  # "import dill" raises ImportError
    stand_ins = {name: _stand_in(name) for name in ("hashlib", "logging") if name not in sys.modules}
    sys.modules.update(stand_ins)
    try:
        __import__(f"{_PPFT_COPY}.__main__")
        worker_module = sys.modules[f"{_PPFT_COPY}.__main__"]
    finally:
        if blocked and sys.modules.get("dill", False) is None:
            del sys.modules["dill"]
        for name, stand_in in stand_ins.items():
            if sys.modules.get(name) is stand_in:
                del sys.modules[name]
    return worker_module


def _find_spec(name: str, path: Sequence[str] | None = None) -> ModuleSpec | None:
    """The spec the import system's finders give for ``name`` (in the package
    ``path``, for a submodule), nothing imported: ``importlib.util.find_spec``,
    whose import (with ``importlib`` and ``importlib._abc``) cost 1.3 ms of the
    template's start, on the way to every local pool's first task."""
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        spec: ModuleSpec | None = find(name, path) if find is not None else None
        if spec is not None:
            return spec
    return None


def _stand_in(name: str) -> types.ModuleType:
    """A module ``name`` for ppft's transport to import instead of the real one, whose
    every function loads the real module when called. The transport binds
    ``hashlib.sha1`` and ``hashlib.md5`` at import, and calls ``logging.error``,
    for an authentication, a cache and a version check that this worker never
    uses. The real ``hashlib`` loads OpenSSL first, and ``logging`` costs 5 ms: a
    third of the template's start, on the way to every local pool's first task."""
    module = types.ModuleType(name, f"stands in for {name} while ppft's transport is imported")

    def forward(attribute: str) -> Any:
        if attribute.startswith("__"):  # what the import system asks of a module: as a plain one
            raise AttributeError(attribute)

        def call(*args: Any, **kwargs: Any) -> Any:
            real = __import__(name)  # the real one: the stand-in is gone once ppft is loaded
            return getattr(real, attribute)(*args, **kwargs)

        return call

    module.__getattr__ = forward  # type: ignore[method-assign]  # (PEP 562: for the names it lacks)
    return module


#: The package name ppft's worker-side modules are loaded under (see `_import_ppft_worker`).
_PPFT_COPY = f"{__name__}_ppft"


ppft_worker = _import_ppft_worker()


def _load_stub_code() -> types.CodeType | None:
    """The code that defines the stub (``_wire.STUB``): ``_stub.py``'s, as the import
    system loads it, from its ``.pyc`` (compiled and cached the first time where
    the installer did not); ``None`` where there is no such module.

    Loaded by the template before it forks the workers, which run it instead of
    compiling the stub's text: a process's first ``compile()`` of source costs
    about 0.8 ms, which the template paid on the way to every pool's first task.
    """
    spec = _find_spec(_STUB_MODULE, sys.modules[__package__].__path__)
    get_code = getattr(getattr(spec, "loader", None), "get_code", None)
    code = get_code(_STUB_MODULE) if get_code is not None else None
    return code if isinstance(code, types.CodeType) else None


_STUB_MODULE = f"{__package__}._stub"

#: What the workers run for the stub (`_load_stub_code`); ``None``: they compile its text.
STUB_CODE = _load_stub_code()


def _stub() -> tuple[str, list[types.CodeType]]:
    """What ppft's ``preprocess`` makes of the stub: its name and its code, :data:`STUB_CODE`
    (compiled from its text where there is no such bytecode)."""
    code = STUB_CODE if STUB_CODE is not None else compile(wire.STUB, "<manymap-rpc stub>", "exec")
    return wire.STUB_NAME, [code]


_functions = FunctionCache()


# ------------------------------------------------------------- the batches


def run_counted(payload: wire.Buffer) -> tuple[list[bytes | memoryview], int]:
    """Run one batch: its serialized outcome, in pieces, and how many tasks it ran
    (1 for a batch that could not be loaded: the worker tried).

    The arguments' arrays are views of the batch's frame, and the results'
    arrays go out uncopied, pieces of the reply frame (``dumps_parts``),
    which is written before the next batch runs."""
    _rewind_output()
    batch = wire.unpack_batch(payload)
    if batch.function:  # one that fails to load fails every task that needs it
        _functions.store(batch.key, batch.function)
    values, failures = run_loaded(_functions.get(batch.key), lambda: loads(batch.data), star=batch.star)
    tasks = max(1, len(values)) if values is not None else 1
    return encode_results(values, failures, _in_parts), tasks


def _in_parts(obj: Any, name: str) -> list[bytes | memoryview]:
    return dumps_parts(obj, name=name)


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


class ClientTransport:
    """The transport of ppft's worker loop once the server handed it a client's
    connection (``_handoff.py``): a job is the client's next ``RUN``, its reply
    goes back as ``DONE``, a ``PING`` between jobs is answered with ``PONG``.

    The loop runs every job as the stub's call (``creceive`` gives the stub,
    ``receive`` its arguments, ``(batch,)``; :data:`ENVELOPE` passes them and
    the reply as they are). The worker waits for the handoff at its first job.
    """

    def __init__(self, control: socket.socket) -> None:
        self._control = control
        self._stub = _stub()
        self._sock: socket.socket | None = None
        self._reader: wire.FrameReader | None = None
        self._waiter = select.poll()
        self._frames: collections.deque[bytearray] = collections.deque()  # read, not yet handled
        self._batch: memoryview | None = None
        self._token = 0
        self._started = 0.0
        self._tasks = 0

    def creceive(self, preprocess: Any = None) -> tuple[str, list[types.CodeType]]:
        """The stub, once the client's next batch has come (:meth:`receive` gives it):
        its code for the loop to run at the first job only; the loop keeps what it
        defined (ppft's loop runs every code it is given at every job, which cost
        about 20 µs of each batch here)."""
        self._next_batch()
        stub, self._stub = self._stub, (self._stub[0], [])
        return stub

    def receive(self, preprocess: Any = None) -> tuple[memoryview]:
        assert self._batch is not None
        batch, self._batch = self._batch, None
        return (batch,)

    def send(self, reply: Any) -> None:
        """Send the loop's reply: ``((outcome, tasks run), output)``, or ``(None, output)``
        when ppft failed outside the task (the batch is then reported lost)."""
        if self._sock is None:
            return  # the loop's last word after the connection ended: nobody to tell
        outcome, out = reply
        if outcome is None:
            frames = [
                wire.pack_lost(self._token, 0, f"the ppft worker failed outside the task: {out.strip()}")
            ]
            retire = False
        else:
            result, tasks = outcome
            self._tasks += tasks
            retire = self._max_tasks is not None and self._tasks >= self._max_tasks
            done = wire.pack_done(self._token, time.perf_counter() - self._started, out, result)
            # Retiring: the client forgets what this worker cached before it sends the next batch.
            frames = [wire.pack_lost(0, 0, "the ppft worker retired"), done] if retire else [done]
        self._write(frames, RETIRED if retire else IDLE)
        if retire:
            self._end(None)  # the server hands the connection on

    # ------------------------------------------------------------ the connection

    def _next_batch(self) -> None:
        """Wait for the client's next ``RUN`` (the connection first, at the first call),
        answering its pings meanwhile."""
        if self._sock is None:
            self._take_connection()
        assert self._reader is not None
        frames = self._frames
        while True:
            while frames:
                try:
                    request = wire.unpack_request(self._session.open(frames.popleft()))
                except wire.FrameError as error:  # not the client's (its tag), or not this protocol
                    self._end(error, cut=True)
                if isinstance(request, wire.Ping):
                    self._write([wire.pack_pong()], IDLE)
                    continue
                self._batch, self._token = request.payload, request.token
                self._started = time.perf_counter()
                self._mark(RUNNING)
                return
            # The next batch is near after a reply: looked for without sleeping first.
            if not spin(lambda: self._waiter.poll(0), WORKER_SPIN):
                self._waiter.poll()
            try:
                frames.extend(self._reader.pump())
            except wire.FrameError as error:  # over the server's limit, or cut short
                self._end(error, cut=True)
            except (EOFError, OSError) as error:  # the client is gone
                self._end(error)
            if self._reader.partial:
                self._mark(CUT)  # until the frame is whole (read on, it is RUNNING, or IDLE once answered)

    def _take_connection(self) -> None:
        sock, self._session, self._state, terms = handoff.receive(self._control)
        self._max_tasks = terms.max_tasks
        self._control.close()  # this worker serves that connection for the rest of its life
        # Non-blocking: reads only follow readiness, and a write waits for room at most
        # _SEND_TIMEOUT (send_buffers); a timeout would poll before each of them.
        sock.setblocking(False)
        self._sock = sock
        self._reader = wire.FrameReader.for_socket(sock, terms.frame_limit)
        self._waiter.register(sock.fileno(), select.POLLIN)

    def _end(self, error: BaseException | None, *, cut: bool = False) -> NoReturn:
        """End ppft's loop, and with it the worker: nothing more goes out from here (the
        loop's last word finds no connection). ``cut``: the stream is cut or not to be
        trusted, and the server closes the connection instead of handing it on."""
        if cut:
            self._mark(CUT)
        self._sock = None
        raise SystemExit from error

    def _mark(self, state: int) -> None:
        """Say in the shared state what the worker does now."""
        self._state.write(self._session.sent, self._session.received, state, self._token, time.monotonic())

    def _write(self, frames: list[wire.Parts], after: int) -> None:
        """Send ``frames`` in turn, holding the connection's pen; then say ``after``."""
        assert self._sock is not None
        state = self._state
        state.acquire()  # (no context manager: this is every reply's path)
        try:
            session = self._session
            session.sent = state.sent  # the server may have sent a heartbeat meanwhile
            pieces = [piece for parts in frames for piece in session.wrap(parts)]
            self._mark(WRITING)
            try:
                wire.send_buffers(self._sock, pieces, _SEND_TIMEOUT)
            except OSError as error:  # the client is gone
                self._end(error)
            self._mark(after)
        finally:
            state.release()


_SEND_TIMEOUT = 300.0  # seconds a client may take to take a reply off the connection

#: The ``pickle`` of ppft's worker loop: :class:`ClientTransport` passes the job's
#: arguments and takes its reply as they are.
ENVELOPE = types.SimpleNamespace(loads=lambda args: args, dumps=lambda reply, protocol=None: reply)


def main() -> None:
    """Greet the server as ppft's worker does, then run ppft's loop on the connection it hands over."""
    sys.path.append(os.path.dirname(ppft_worker.__file__))  # as ``python -m ppft`` does
    ppft_worker.pickle = ENVELOPE
    # The server's socket moves off stdin, which reads /dev/null from now on (for the tasks).
    control = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    # ppft reads the greeting's answer unbuffered: a buffered read would take the
    # handoff's bytes after it too, and with them drop the descriptors they carry.
    sys.stdin = open(control, "rb", buffering=0, closefd=False)  # noqa: SIM115
    worker = ppft_worker._WorkerProcess()  # greets the server over ppft's own transport
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    worker.t = ClientTransport(socket.socket(fileno=control))
    worker.run()


if __name__ == "__main__":
    main()

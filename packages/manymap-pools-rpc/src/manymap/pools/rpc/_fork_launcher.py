"""``ForkLauncher``: ParallelPool's local ``manymap-server``, forked from the pool's own process.

A :class:`~manymap.pools.rpc.bootstrap.ServerLauncher` like
``LocalLauncher``, but without ``exec``: the pool's process has imported
what the server runs, so a fork of it serves at once, where a fresh
interpreter would first spend hundreds of milliseconds importing. The
server then forks its ppft workers from a warm template of its own
(``_template.py``).

How it goes. :meth:`ForkLauncher.launch` forks; the child leads a session
of its own, closes every descriptor it inherited but its two pipes and
stderr, forgets the parent's signal handlers and garbage
(``_forking.py``), builds the :class:`~manymap.pools.rpc.RPCServer` (which
forks its template first) and then speaks ``start_server``'s protocol: its
port as the first line on one pipe, the secret read as a line from the
other. The secret is made after the fork (``LocalNode.start``), so neither
the server's memory before it reads it nor its template holds it.

Dying with its owner. The server stops at the end of that pipe, on
SIGTERM (:meth:`ForkLauncher.close_stdin` sends both: another fork of the
pool's process may hold a copy of the pipe), and when the pool's process
ends: it watches a pidfd of it, which no grandchild can hold open. Once
stopped (every worker killed and reaped) it says so on its port's pipe
before it exits: the pool's close goes on at that word, and a thread reaps
the server once the system has torn its memory down.
"""

from __future__ import annotations

import collections
import contextlib
import os
import selectors
import signal
import sys
import time
import traceback

from manymap.launcher import ResultTimeoutError
from manymap.pools.rpc import _forking

__all__ = ["ForkLauncher"]

_WAIT = 10.0  # seconds to wait for the process after SIGKILL
_LINE = 4096  # the longest line read
_STOPPED = b"stopped\n"  # the server's last word, after its port: it has stopped and exits


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from types import FrameType
    from typing import NamedTuple, NoReturn

    class _Fields(NamedTuple):
        returncode: int | None
        stderr: bytes

else:
    _Fields = collections.namedtuple("Ended", ["returncode", "stderr"])


class Ended(_Fields):
    """How the server ended (its stderr is not captured: it is ours)."""

    __slots__ = ()


class ForkLauncher:
    """The local ``manymap-server`` as a fork of this process; ``name`` in messages.

    Args:
        workers: its ppft workers.
        max_connections: clients it serves at once.
        max_tasks_per_worker: tasks after which a worker is replaced (``None``: never).
        name: what it is called in messages.
    """

    def __init__(
        self,
        *,
        workers: int,
        max_connections: int,
        max_tasks_per_worker: int | None = None,
        name: str = "the local manymap-server",
    ) -> None:
        self.workers = workers
        self.max_connections = max_connections
        self.max_tasks_per_worker = max_tasks_per_worker
        self.name = name
        #: the abstract unix socket name the server listens on besides its port (a
        #: connection there skips TCP; only this user may connect): fresh per server
        self.unix = "\0manymap-server-" + os.urandom(16).hex()
        self._pid: int | None = None
        self._pidfd = -1
        self._control = -1  # the server's stdin: the secret, then its end
        self._out = -1  # the server's stdout: its port
        self._buffer: bytes | None = b""  # what it wrote and was not read as a line (None: its end)
        self._exiting = False  # it said it has stopped and exits
        self.returncode: int | None = None

    @staticmethod
    def available() -> bool:
        """Whether this platform can fork the server (Linux)."""
        return _forking.available()

    def launch(self) -> None:
        """Fork the server (once: a second call does nothing).

        The server's template loads what a ppft worker runs (``_inworker``:
        ppft's worker loop alone, without dill) once, while the server starts,
        and forks every worker warm from it; this process never imports ppft.
        """
        if self._pid is not None:
            return
        control_r, control_w = os.pipe()
        out_r, out_w = os.pipe()
        owner = os.getpid()
        try:
            pid = os.fork()
        except BaseException:
            for fd in (control_r, control_w, out_r, out_w):
                os.close(fd)
            raise
        if pid == 0:  # pragma: no cover - the server (coverage does not follow os._exit)
            _server_main(control_r, out_w, owner, self)
        os.close(control_r)
        os.close(out_w)
        self._pid = pid
        self._pidfd = os.pidfd_open(pid)  # our child, unreaped: its own pid
        self._control = control_w
        self._out = out_r

    def pid(self) -> int | None:
        """Its pid; ``None`` before launch."""
        return self._pid

    def readline(self, timeout: float | None = None) -> bytes:
        """The next line the server wrote, ``b""`` at its end.

        Raises:
            ResultTimeoutError: no whole line came within ``timeout`` seconds.
        """
        self._running()
        with selectors.DefaultSelector() as selector:
            selector.register(self._out, selectors.EVENT_READ)
            while self._buffer is not None and b"\n" not in self._buffer and len(self._buffer) < _LINE:
                if not selector.select(timeout):
                    raise ResultTimeoutError(f"localhost: {self.name} wrote no line in {timeout:g} s")
                chunk = os.read(self._out, _LINE)
                self._buffer = self._buffer + chunk if chunk else None
        line, newline, rest = (self._buffer or b"").partition(b"\n")
        self._buffer = rest if self._buffer is not None else None
        return line + newline

    def send(self, data: bytes | str) -> None:
        """Write ``data`` to the server's stdin (a line: the pipe takes it whole)."""
        self._running()
        view = memoryview(data.encode() if isinstance(data, str) else data)
        while view:
            view = view[os.write(self._control, view) :]

    def close_stdin(self) -> None:
        """End the server's stdin and ask it to stop (SIGTERM)."""
        if self._control >= 0:
            with contextlib.suppress(OSError):
                os.close(self._control)
            self._control = -1
        if self._pid is not None and self.returncode is None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGTERM)

    def response(self, timeout: float | None = None) -> Ended:
        """Wait at most ``timeout`` seconds for the server to end: its exit, or its
        word that it has stopped (:data:`_STOPPED`: its workers killed and reaped,
        nothing left to it but its exit; :meth:`kill` then leaves its reaping to
        a thread, so that a pool's close does not wait while the system tears
        down the server's memory, a millisecond or more).

        Raises:
            ResultTimeoutError: it still runs.
        """
        self._running()
        if self.returncode is not None:
            return Ended(self.returncode, b"")
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._pidfd, selectors.EVENT_READ, "exit")
            if self._out >= 0:
                selector.register(self._out, selectors.EVENT_READ, "out")
            while self.returncode is None:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                events = selector.select(left)
                if not events:
                    raise ResultTimeoutError(f"localhost: {self.name} still running after {timeout:g} s")
                for key, _ in events:
                    if self.returncode is not None:
                        break  # reaped: its word no longer matters
                    if key.data == "exit":
                        self._reap()
                    elif self._read_word():
                        self._exiting = True
                        self.returncode = 0  # what it exits with after its word
                    elif self._buffer is None:  # its end, with no word: wait for its exit
                        selector.unregister(self._out)
        return Ended(self.returncode, b"")

    def _read_word(self) -> bool:
        """Read what the server wrote after its port: whether it is its word that it has stopped."""
        try:
            chunk = os.read(self._out, _LINE)
        except OSError:
            chunk = b""
        if not chunk:
            self._buffer = None
            return False
        self._buffer = (self._buffer or b"") + chunk
        return _STOPPED in self._buffer

    def kill(self) -> None:
        """SIGKILL the server if it still runs, reap it; close the pipes. (A server that
        said it has stopped is reaped by a thread once it has exited.)"""
        if self._pid is None:
            return
        if self._exiting:
            self._exiting = False
            pidfd, self._pidfd = self._pidfd, -1
            _forking.reap_later(self._pid, pidfd, _WAIT)
        elif self.returncode is None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            with selectors.DefaultSelector() as selector:
                selector.register(self._pidfd, selectors.EVENT_READ)
                selector.select(_WAIT)
            self._reap()
        for fd in (self._control, self._out, self._pidfd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._control = self._out = self._pidfd = -1

    def _reap(self) -> None:
        assert self._pid is not None
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self._pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)

    def _running(self) -> None:
        if self._pid is None:
            raise RuntimeError(f"{self.name} is not launched")


# -------------------------------------------------------------- the server


def _server_main(control: int, out: int, owner: int, settings: ForkLauncher) -> NoReturn:
    """The forked server: never returns."""
    status = 1
    try:
        os.setsid()  # a Ctrl-C at the pool's terminal is the pool's to handle
        watch = os.pidfd_open(owner)
        if os.getppid() != owner:  # the pool's process is gone already
            os._exit(0)
        _forking.isolate({control, out, watch})
        _forking.fresh_start()
        status = _serve(control, out, watch, settings)
    except BaseException:
        with contextlib.suppress(Exception):
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
    finally:
        os._exit(status)


def _serve(control: int, out: int, watch: int, settings: ForkLauncher) -> int:
    from manymap.pools.rpc._template import Template

    # The template first: it imports what a worker runs while this process imports the server.
    template = Template(prefork=settings.workers or os.cpu_count() or 1)
    from manymap.pools.rpc._server import RPCServer

    server = RPCServer(
        workers=settings.workers,
        max_connections=settings.max_connections,
        max_tasks_per_worker=settings.max_tasks_per_worker,
        template=template,
        unix=settings.unix,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    os.write(out, b"%d\n" % server.port)  # the pipe stays open for its last word (_STOPPED)
    line = b""
    while not line.endswith(b"\n") and len(line) < _LINE:
        chunk = os.read(control, 1)  # the secret's line only: the rest is the end of the pipe
        if not chunk:
            break
        line += chunk
    secret = line.decode("utf-8", "replace").strip()
    if not secret:
        server.stop()
        server.serve_forever()  # stops at once: its template and workers go with it
        return 2
    server.secret = secret
    os.set_blocking(control, False)
    server.stop_at_eof(control)
    server.stop_with(watch)
    server.serve_forever()  # returns once every worker is killed and reaped
    with contextlib.suppress(OSError):  # the pool's gone already: it is reaped by init
        os.write(out, _STOPPED)
    return 0

"""One ppft worker process of a ``manymap-server``, seen from the server.

The worker runs ppft's worker loop (``_inworker.py``) in a session and process
group of its own: forked from the server's warm template (``_template.py``)
where there is one, else started as a fresh interpreter. Its stdin is a unix
socket: it greets there as ppft's worker does, and then is handed the
connection of the client it serves (:meth:`PPWorker.hand_off`,
``_handoff.py``). Its death is seen through a pidfd (``os.pidfd_open``),
which nothing else can hold open: a task's children inherit the worker's
descriptors, so the end of its stdout only comes when the last of them
exits. When the worker dies or is stopped, its whole process group is
killed with it: what its tasks forked, their ``multiprocessing`` children
and subprocesses.

Nothing here blocks without a bound: the greeting is cut from the pipe as it
arrives (:class:`~manymap.pools.rpc._wire.FrameReader`), watching the time.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time

from manymap.launcher.lowlevel import exit_reason
from manymap.pools.rpc import _handoff as handoff
from manymap.pools.rpc import _wire as wire

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    import subprocess

    from manymap.pools.rpc._auth import Session
    from manymap.pools.rpc._template import Template

__all__ = ["WORKER_START", "PPWorker", "describe"]

WORKER_START = 60.0  # seconds a ppft worker may take to start


class PPWorker:
    """One ppft worker process: its stdin (:attr:`control`) and stdout, its pidfd, its process group."""

    def __init__(self, template: Template | None = None) -> None:
        """Start a worker: forked by ``template`` (its pidfd then always open), or exec'd.

        Raises:
            TemplateError: the template is gone or did not answer.
        """
        self._template = template
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        if template is not None:
            self.pid, control, self.stdout = template.spawn()
        else:
            import subprocess  # only here: a forked server's critical path never pays its import

            ours, theirs = socket.socketpair()
            with theirs:
                self.process = subprocess.Popen(
                    # Imported by name, not run as __main__: the stub imports the same module.
                    [sys.executable, "-u", "-c", f"from {wire.INWORKER} import main; main()"],
                    stdin=theirs.fileno(),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # its own group: killed with everything its tasks started
                )
            assert self.process.stdout is not None
            self.pid = self.process.pid
            self.stdout = self.process.stdout.fileno()
            control = ours.detach()
        self.control = socket.socket(fileno=control)
        os.set_blocking(self.stdout, False)
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # not Linux: the end of stdout says it
            # A template's worker is the template's child, unreaped until we ask: its own pid.
            self.pidfd = os.pidfd_open(self.pid)
        self.reader = wire.FrameReader.for_fd(self.stdout, wire.HANDSHAKE_LIMIT)
        self._reaped = False

    def ready(self) -> PPWorker:
        """Wait for the worker to start (ppft's greeting: its pid; our answer: the pickle protocol).

        Raises:
            RuntimeError: it did not greet within :data:`WORKER_START` seconds, died,
                or greeted with something else than its pid.
        """
        deadline = time.monotonic() + WORKER_START
        with selectors.DefaultSelector() as selector:
            selector.register(self.stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self.kill()
                    raise RuntimeError("a ppft worker did not start")
                try:
                    frames = self.reader.pump()
                except (EOFError, OSError) as error:
                    self.kill()
                    raise RuntimeError(f"a ppft worker did not start: {error}") from error
                if frames:
                    break
        try:
            wire.unpack_greeting(frames[0])
        except wire.FrameError as error:
            self.kill()
            raise RuntimeError(f"a ppft worker did not start: {error}") from error
        try:
            self.control.settimeout(WORKER_START)
            self.control.sendall(wire.pack_pickle_protocol())
        except OSError as error:
            self.kill()
            raise RuntimeError(f"a ppft worker died as it started: {error}") from error
        return self

    def hand_off(
        self, sock: socket.socket, session: Session, state: handoff.SharedState, terms: handoff.Terms
    ) -> bool:
        """Give the worker the client's connection ``sock`` to serve (``_handoff.py``);
        False if it died first."""
        try:
            handoff.send(self.control, sock, session, state, terms)
        except OSError:
            return False
        return True

    @property
    def death(self) -> int:
        """A descriptor readable once the worker has ended: its pidfd, else its stdout
        (whose end a task's child that holds it delays)."""
        return self.pidfd if self.pidfd is not None else self.stdout

    def dead(self) -> bool:
        """Whether the worker has exited (it may still be unreaped)."""
        if self.pidfd is None:
            return self.process is not None and self.process.poll() is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.pidfd, selectors.EVENT_READ)
            return bool(selector.select(0))

    def kill(self) -> int | None:
        """Kill the worker and its process group, reap it, close its pipes; its exit code."""
        if self._reaped:
            return self.returncode
        self._reaped = True
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)  # the group: what its tasks started too
        process = self.process
        if process is not None:
            import subprocess  # loaded already: the worker was started with it

            with contextlib.suppress(OSError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10.0)
            self.returncode = process.returncode
            with contextlib.suppress(OSError):
                if process.stdout is not None:
                    process.stdout.close()
            self.control.close()
        else:
            if self.pidfd is not None:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            assert self._template is not None
            self.returncode = self._template.reap(self.pid)
            self.control.close()
            with contextlib.suppress(OSError):
                os.close(self.stdout)
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
        return self.returncode

    def exitcode(self) -> int | None:
        """The exit code of a worker seen dead; its group is killed and it is reaped.

        With a pidfd the worker is a zombie until reaped here, so its pid (the
        group's id) cannot have been reused when the group is killed.
        """
        if self.pidfd is None and self.process is not None:  # seen dead by the end of its stdout
            import subprocess  # loaded already: the worker was started with it

            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5.0)
        return self.kill()


def describe(code: int | None) -> str:
    """What an exit code says about how the worker ended."""
    return exit_reason(code, "the ppft worker")

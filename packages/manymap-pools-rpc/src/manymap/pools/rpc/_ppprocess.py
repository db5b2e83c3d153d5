"""One ppft worker process of a ``manymap-server``, seen from the server.

The worker runs ppft's worker loop (``_inworker.py``) in a session and process
group of its own: forked from the server's warm template (``_template.py``)
where there is one, else started as a fresh interpreter. Its death is seen
through a pidfd (``os.pidfd_open``), which nothing else can hold open: a
task's children inherit the worker's pipes, so the end of its stdout only
comes when the last of them exits. When the worker
dies, times out or is stopped, its whole process group is killed with it:
what its tasks forked, their ``multiprocessing`` children and subprocesses.

Nothing here blocks without a bound: the reply is cut from the pipe as it
arrives (:class:`~manymap.pools.rpc._wire.FrameReader`) and a job is
written in pieces as the pipe takes them, watching the pidfd meanwhile. What
goes over the pipes (greeting, jobs, replies) is packed and unpacked by
``_wire.py``; a job's batch goes to the pipe uncopied (``writev``), and the
pipes hold up to :data:`PIPE_SIZE` bytes where the system allows, so that
an 8 MB batch passes in a few writes, not a hundred and more.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import selectors
import signal
import sys
import time
from typing import TYPE_CHECKING

from manymap.launcher.lowlevel import exit_reason
from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._stream import IOV, advance, views

if TYPE_CHECKING:
    import subprocess

    from manymap.pools.rpc._template import Template

__all__ = ["PIPE_SIZE", "WORKER_START", "PPWorker", "describe"]

WORKER_START = 60.0  # seconds a ppft worker may take to start
_REPLY_LIMIT = 1 << 40  # the worker is ours: its replies are not limited
PIPE_SIZE = 1 << 20  # bytes each pipe to the worker holds, where the system allows (Linux: 64 KB else)


class PPWorker:
    """One ppft worker process: its pipes, its pidfd, its process group."""

    def __init__(self, template: Template | None = None) -> None:
        """Start a worker: forked by ``template`` (its pidfd then always open), or exec'd.

        Raises:
            TemplateError: the template is gone or did not answer.
        """
        self._template = template
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        if template is not None:
            self.pid, self.stdin, self.stdout = template.spawn()
        else:
            import subprocess  # only here: a forked server's critical path never pays its import

            self.process = subprocess.Popen(
                # Imported by name, not run as __main__: the stub imports the same module.
                [sys.executable, "-u", "-c", f"from {wire.INWORKER} import main; main()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own group: killed with everything its tasks started
            )
            assert self.process.stdout is not None
            assert self.process.stdin is not None
            self.pid = self.process.pid
            self.stdout = self.process.stdout.fileno()
            self.stdin = self.process.stdin.fileno()
        os.set_blocking(self.stdout, False)
        os.set_blocking(self.stdin, False)
        resize: int | None = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
        for fd in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):  # over the user's pipe quota: the default size
                if resize is not None:
                    fcntl.fcntl(fd, resize, PIPE_SIZE)
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):  # not Linux: the end of stdout says it
            # A template's worker is the template's child, unreaped until we ask: its own pid.
            self.pidfd = os.pidfd_open(self.pid)
        self.reader = wire.FrameReader.for_fd(self.stdout, _REPLY_LIMIT)
        self._stub = wire.StubCache()  # ppft's csend cache: the stub whole once, by hash after
        self._reaped = False
        self.tasks = 0  # tasks its batches ran, counted as their replies come

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
        if not self.write(wire.pack_pickle_protocol(), WORKER_START):
            self.kill()
            raise RuntimeError("a ppft worker died as it started")
        return self

    def job(self, payload: wire.Buffer) -> list[wire.Buffer]:
        """A job's pieces on the pipe: the stub (its hash once the worker has it) and its argument."""
        return wire.pack_job(self._stub.next(), payload)

    def write(self, data: bytes | list[wire.Buffer], timeout: float) -> bool:
        """Write ``data`` (bytes, or pieces in turn) to the worker; False if it died (or
        stopped reading for ``timeout``)."""
        pieces = views([data] if isinstance(data, bytes) else data)
        try:  # most jobs fit in the pipe at once: no selector to build for them
            pieces = advance(pieces, os.writev(self.stdin, pieces[:IOV]))
        except BlockingIOError:
            pass
        except OSError:  # EPIPE: nobody reads
            return False
        if not pieces:
            return True
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.stdin, selectors.EVENT_WRITE)
            if self.pidfd is not None:
                selector.register(self.pidfd, selectors.EVENT_READ)
            while pieces:
                try:
                    pieces = advance(pieces, os.writev(self.stdin, pieces[:IOV]))
                    continue
                except BlockingIOError:
                    pass
                except OSError:  # EPIPE: nobody reads
                    return False
                remaining = deadline - time.monotonic()
                events = selector.select(max(0.0, remaining)) if remaining > 0 else []
                if not events or any(key.fd == self.pidfd for key, _ in events):
                    return False
        return True

    def reply(self, frame: bytes | bytearray) -> tuple[wire.Buffer, str]:
        """The batch outcome and captured output of one of the worker's replies
        (the tasks the batch ran are added to :attr:`tasks`).

        Raises:
            FrameError: not a reply, or ppft failed outside the task (the stub could not run).
        """
        result, tasks, out = wire.unpack_reply(frame)
        self.tasks += tasks
        return result, out

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
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(OSError):
                    if stream is not None:
                        stream.close()
        else:
            if self.pidfd is not None:
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            assert self._template is not None
            self.returncode = self._template.reap(self.pid)
            for fd in (self.stdin, self.stdout):
                with contextlib.suppress(OSError):
                    os.close(fd)
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

"""``Template``: a warm process that forks a ``manymap-server``'s ppft workers.

A ppft worker started as a fresh interpreter pays an interpreter start and
the imports of ppft, dill and manymap.serialize, once per worker: hundreds
of milliseconds on a loaded machine. The server instead forks a *template*
as it is built (:class:`~manymap.pools.rpc.RPCServer`), which imports the
worker's modules once and then forks each worker on request: a worker is
ready in a few milliseconds.

How it goes. The server talks to the template over a ``SOCK_SEQPACKET``
socket pair, one request and one answer at a time (under a lock):

- ``spawn``: the template forks a worker with a fresh stdin (a unix socket
  pair, on which the server later hands it a client's connection) and
  stdout (a pipe) and answers with the worker's pid and the server's ends
  of them (``SCM_RIGHTS``). The template opened a pidfd of its child
  first, and keeps the child unreaped until the server asks, so the pid
  (and the process group id) the server signals is never another process's.
- ``reap PID``: the server killed a worker or saw it die; the template
  kills it and its process group (again), reaps it and answers its exit
  code (``-N`` for signal N, as ``subprocess`` says it).

What each holds. The template is forked at the start of ``RPCServer()``:
before the server's listening socket, any client or its secret exist
(``manymap-server --secret-file`` and ParallelPool's local server get the
secret afterwards). It keeps only its socket and a pidfd of the server
(``_forking.isolate``). A worker leads a session and process group of its
own (killed with everything its tasks started) and holds only its stdin and
stdout on 0 and 1 and ``/dev/null`` on 2: no other worker's, nothing of the
template's or the server's. It seeds its random generators afresh
(``manymap.launcher.lowlevel.reseed``): forked, it would draw numpy's
global generator's numbers of every sibling.

Dying with the server. The template watches the server's pidfd and the end
of its socket: when either comes (the server stopped, or was killed), it
kills every worker it forked with its process group and exits. A worker
waiting for its client also ends at the end of its stdin, as when started by exec.
The server does not wait for that exit (:meth:`Template.close`): the kernel
tearing down the template's copy of the server's memory takes about 2 ms,
which runs beside the server's own exit instead of before it; a thread of
the server reaps the template.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import threading
import time
import types

from manymap.launcher.lowlevel import reseed
from manymap.pools.rpc import _forking
from manymap.pools.rpc import _wire as wire

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import NoReturn

__all__ = ["Template", "TemplateError"]

_ANSWER_WAIT = 30.0  # seconds the template may take to answer (its first spawn waits for its imports)
_REAP_WAIT = 10.0  # seconds a killed worker may take to exit
_MESSAGE = 4096


class TemplateError(RuntimeError):
    """The template is gone, or did not answer."""


class Template:
    """The server's side: forks the template now (call it before the server has a
    thread, a client or its secret); the template forks ``prefork`` workers at once,
    which the first :meth:`spawn` calls hand over."""

    def __init__(self, prefork: int = 0) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        server = os.getpid()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (coverage does not follow os._exit)
            _template_main(theirs.fileno(), server, prefork)
        theirs.close()
        self.pid = pid
        self._sock = ours
        self._pidfd = os.pidfd_open(pid)
        self._lock = threading.Lock()
        self._closed = False

    @property
    def alive(self) -> bool:
        """Whether the template is there to fork workers."""
        if self._closed:
            return False
        with selectors.DefaultSelector() as selector:
            selector.register(self._pidfd, selectors.EVENT_READ)
            return not selector.select(0)

    def spawn(self) -> tuple[int, int, int]:
        """A new worker: its pid, the server's end of its stdin, the read end of its stdout.

        Raises:
            TemplateError: the template is gone or did not answer.
        """
        answer, fds = self._ask(b"spawn", 2)
        if len(fds) != 2 or not answer.isdigit():
            for fd in fds:
                os.close(fd)
            raise TemplateError(f"the worker template could not fork a worker: {answer!r}")
        return int(answer), fds[0], fds[1]

    def reap(self, pid: int) -> int | None:
        """Kill worker ``pid`` with its group if it still runs, reap it: its exit code
        (``None`` if the template does not know it, or is gone)."""
        try:
            answer, _ = self._ask(b"reap %d" % pid, 0)
        except TemplateError:
            return None
        with contextlib.suppress(ValueError):
            return int(answer)
        return None

    def _ask(self, request: bytes, maxfds: int) -> tuple[bytes, list[int]]:
        with self._lock:
            if self._closed:
                raise TemplateError("the worker template is stopped")
            try:
                self._sock.send(request)
                with selectors.DefaultSelector() as selector:
                    selector.register(self._sock, selectors.EVENT_READ)
                    if not selector.select(_ANSWER_WAIT):
                        raise TemplateError(f"the worker template did not answer within {_ANSWER_WAIT:g} s")
                answer, fds, _, _ = socket.recv_fds(self._sock, _MESSAGE, maxfds)
            except OSError as error:
                raise TemplateError(f"the worker template is gone: {error}") from error
            if not answer:
                raise TemplateError("the worker template is gone")
            return answer, fds

    def close(self) -> None:
        """Stop the template: it kills the workers it forked that still run, and exits
        (reaped by a thread of ours, not waited for here)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):
                self._sock.close()
        _forking.reap_later(self.pid, self._pidfd, _REAP_WAIT)


# ------------------------------------------------------------ the template


def _template_main(fd: int, server: int, prefork: int) -> NoReturn:
    """The template process: never returns."""
    try:
        watch = os.pidfd_open(server)
        if os.getppid() != server:  # the server is gone already
            os._exit(0)
        _forking.isolate({fd, watch})
        _forking.fresh_start()
        stub_code: types.CodeType | None = None
        with contextlib.suppress(Exception):  # warm: a worker that cannot import it fails itself
            from manymap.pools.rpc._inworker import STUB_CODE as stub_code
        if stub_code is None:
            # The workers compile the stub's text then: a process's first compile() costs
            # about 1 ms (its forks' do not), so it is paid here, once.
            compile(wire.STUB, "<string>", "exec")
        _serve(socket.socket(fileno=fd), watch, prefork)
    finally:
        os._exit(0)


def _serve(sock: socket.socket, watch: int, prefork: int) -> None:
    children: dict[int, int] = {}  # pid -> pidfd, unreaped until the server asks
    ready = [_fork_worker(children) for _ in range(prefork)]  # started while the server starts
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        selector.register(watch, selectors.EVENT_READ)
        try:
            while True:
                events = selector.select()
                if any(key.fd == watch for key, _ in events):
                    return  # the server is gone
                try:
                    request = sock.recv(_MESSAGE)
                except OSError:
                    return
                if not request:
                    return  # the server stopped
                if request == b"spawn":
                    _hand_over(sock, ready.pop(0) if ready else _fork_worker(children))
                elif request.startswith(b"reap "):
                    pidfd = children.pop(int(request[5:]), None)
                    code = _reap(int(request[5:]), pidfd) if pidfd is not None else None
                    sock.send(b"?" if code is None else b"%d" % code)
                else:
                    sock.send(b"?")
        finally:
            for pid, pidfd in children.items():
                _kill(pid, pidfd)


def _fork_worker(children: dict[int, int]) -> tuple[int, int, int] | str:
    """Fork a worker: its pid and our ends of its stdin (a unix socket) and stdout, or why not."""
    ours, theirs = socket.socketpair()
    stdin_r, stdin_w = theirs.detach(), ours.detach()
    stdout_r, stdout_w = os.pipe()
    try:
        pid = os.fork()
    except OSError as error:
        for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
            os.close(fd)
        return f"fork failed: {error}"
    if pid == 0:  # pragma: no cover - the worker (coverage does not follow os._exit)
        _worker_main(stdin_r, stdout_w)
    os.close(stdin_r)
    os.close(stdout_w)
    children[pid] = os.pidfd_open(pid)  # our child, unreaped: the pid is its own
    return pid, stdin_w, stdout_r


def _hand_over(sock: socket.socket, worker: tuple[int, int, int] | str) -> None:
    """Send a worker's pid and our ends of its stdin and stdout to the server (and close ours)."""
    if isinstance(worker, str):
        sock.send(worker.encode())
        return
    pid, stdin_w, stdout_r = worker
    try:
        socket.send_fds(sock, [b"%d" % pid], [stdin_w, stdout_r])
    finally:
        os.close(stdin_w)
        os.close(stdout_r)


def _kill(pid: int, pidfd: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)  # what its tasks started too
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # before it made its own group


def _reap(pid: int, pidfd: int) -> int | None:
    _kill(pid, pidfd)
    deadline = time.monotonic() + _REAP_WAIT
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(pidfd, selectors.EVENT_READ)
            while not selector.select(max(0.0, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    return None  # not reaped: its pid stays its own (a zombie at worst)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    except ChildProcessError:
        return None
    finally:
        os.close(pidfd)


# -------------------------------------------------------------- a worker


def _worker_main(stdin: int, stdout: int) -> NoReturn:
    """A forked ppft worker: its own session, its stdin and stdout on 0 and 1, nothing else."""
    code = 1
    try:
        os.setsid()  # its own group: killed with everything its tasks started
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        _forking.isolate({0, 1}, stderr=False)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh interpreter
        reseed()  # numpy's global generator, loaded in the pool's process, is the template's copy
        # Fresh file objects: the parent's may hold buffered bytes of their own.
        for fd, mode, name in ((0, "r", "stdin"), (1, "w", "stdout"), (2, "w", "stderr")):
            stream = open(fd, mode, encoding="utf-8", closefd=False)  # noqa: SIM115
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)
        from manymap.pools.rpc._inworker import main

        main()
        code = 0
    finally:
        os._exit(code)

"""``RPCServer``: the server behind ``manymap-server``, ppft workers underneath.

How it works. One thread (the one calling :meth:`RPCServer.serve_forever`)
waits on a selector (epoll / poll: no descriptor limit) for the listening
socket and every connection still in its handshake (``_auth.py``; its frames
are ``_wire.py``'s). The handshake is a non-blocking exchange on that thread: at most
``max_pending`` connections may be in it at once (a new one pushes the
oldest out), each has ``auth_timeout`` seconds to prove the secret, and
garbage, an oversized frame or a wrong proof drops it. When ``accept()`` runs
out of descriptors (EMFILE) the server first drops its oldest unauthenticated
connection, and with none to drop stops listening for a moment (a backoff
through the selector's timeout) instead of spinning.

A client that proved the secret gets a thread and a ppft worker of its own
(``_connection.py``, ``_ppprocess.py``): the thread proves the server's
side of the handshake and hands the connection to the worker, which reads
the client's batches and writes its replies itself (``_handoff.py``); the
thread watches the two and answers for a busy worker. Workers are
forked from a warm template (``_template.py``) that the server forks first
thing as it is built, before it has a thread, a client or its secret (a
fresh interpreter each where the platform cannot: no fork or pidfds); they
are kept started ahead (``workers`` of them; with ``max_tasks_per_worker``,
``workers`` spares besides those in use, which take the place of retired
workers at once).

The server stops on :meth:`RPCServer.stop` (also from a signal handler),
after ``idle_timeout`` seconds with no client, or at the end of the file
given to :meth:`RPCServer.stop_at_eof` (``--secret-file -``: stdin, i.e. when
the ssh session or the pool that started it is gone), or when the process
given to :meth:`RPCServer.stop_with` ends. It then ends every
connection, kills every worker with its process group, and returns.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import selectors
import socket
import struct
import threading
import time

from manymap.pools.rpc import _forking
from manymap.pools.rpc import _wire as wire
from manymap.pools.rpc._auth import Session, check_client, new_nonce, new_secret
from manymap.pools.rpc._connection import serve_connection
from manymap.pools.rpc._ppprocess import WORKER_START, PPWorker
from manymap.pools.rpc._template import Template, TemplateError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DEFAULT_FRAME_LIMIT", "RPCServer"]

DEFAULT_FRAME_LIMIT = 1 << 30  # bytes of one batch
_TICK = 0.5  # seconds; the serving thread re-checks its state at least this often
_BACKOFF = (0.05, 1.0)  # seconds without accepting after EMFILE: first, at most
_HEADROOM = 16  # descriptors kept free for authenticated clients once they ran short
_OUT_OF_FDS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class _Pending:
    """A connection in its handshake."""

    __slots__ = ("deadline", "nonce", "reader", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.nonce = new_nonce()
        self.reader = wire.FrameReader.for_socket(sock, wire.HANDSHAKE_LIMIT)


class RPCServer:
    """An RPC server running batches on ppft workers (what ``manymap-server`` runs).

    Args:
        secret: what clients must prove they know (default: a random 256-bit one, see :attr:`secret`).
        bind: the address to listen on; anything but a loopback address lets
            other hosts try to connect.
        port: the port (0: a free one, see :attr:`port`).
        workers: ppft workers kept ready, and the worker count announced to clients.
        max_connections: clients served at once (default ``workers``); the rest are refused.
        idle_timeout: stop after this many seconds without a client (``None``: never).
        auth_timeout: seconds a new connection has to authenticate.
        frame_limit: the largest frame accepted from an authenticated client.
        max_pending: connections that may be in their handshake at once; a
            new one beyond it drops the oldest.
        max_tasks_per_worker: a ppft worker is replaced by a fresh process
            once it has run this many tasks (counted by task; the batch it
            runs finishes first), so that what a task changed in its process
            (resource limits, environment, signal handlers, leaks) does not
            reach later tasks (``None``: never).
        fork_workers: fork the ppft workers from a warm template process
            (forked as the server is built) rather than start each as a
            fresh interpreter (``None``: where the platform can, Linux).
        template: a template forked already, for this server to use (the
            local pool's server forks it before it imports this module, so
            that the template's imports overlap the server's start).
        unix: a unix socket address to listen on too (Linux: a path, or an
            abstract name starting with a NUL byte): connections there cost
            less than through TCP, and only this server's own user may make
            them (its peer's credentials, checked before the handshake). The
            local pool's server listens on an abstract name only its pool knows.
    """

    def __init__(
        self,
        secret: str | None = None,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        workers: int | None = None,
        max_connections: int | None = None,
        idle_timeout: float | None = None,
        auth_timeout: float = 5.0,
        frame_limit: int = DEFAULT_FRAME_LIMIT,
        max_pending: int = 128,
        max_tasks_per_worker: int | None = None,
        fork_workers: bool | None = None,
        template: Template | None = None,
        unix: str | None = None,
    ) -> None:
        if unix is not None and not hasattr(socket, "SO_PEERCRED"):
            raise ValueError("RPCServer(): unix= needs SO_PEERCRED (Linux), to check who connects")
        if fork_workers and not _forking.available():
            raise ValueError(
                "RPCServer(): fork_workers=True needs os.fork, os.pidfd_open and socket.send_fds"
            )
        if max_tasks_per_worker is not None and (
            isinstance(max_tasks_per_worker, bool)
            or not isinstance(max_tasks_per_worker, int)
            or max_tasks_per_worker < 1
        ):
            raise ValueError(
                f"RPCServer(): max_tasks_per_worker must be a positive integer or None, "
                f"got {max_tasks_per_worker!r}"
            )
        self.max_tasks_per_worker = max_tasks_per_worker
        # First: the template is forked before this process holds a secret, a socket or a thread of ours.
        forking = fork_workers is not False and _forking.available()
        if template is None and forking:
            template = Template(prefork=workers or os.cpu_count() or 1)
        self._template = template

        self.secret = secret or new_secret()
        self.workers = workers or os.cpu_count() or 1
        self.max_connections = max_connections or self.workers
        self.idle_timeout = idle_timeout
        self.auth_timeout = auth_timeout
        self.frame_limit = frame_limit
        self.max_pending = max(1, max_pending)
        self.host = socket.gethostname()
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self._listeners = [socket.socket(family, socket.SOCK_STREAM)]
        try:
            self._listeners[0].setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listeners[0].bind((bind, port))
            if unix is not None:
                self._listeners.append(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
                self._listeners[1].bind(unix)
            for listener in self._listeners:
                listener.listen(128)
                listener.setblocking(False)
        except BaseException:
            for listener in self._listeners:
                listener.close()
            if self._template is not None:
                self._template.close()
            raise
        self.port: int = self._listeners[0].getsockname()[1]
        self._lock = threading.Lock()
        self._worker_ready = threading.Condition(self._lock)  # a worker went idle, or a start ended
        self._idle: list[PPWorker] = []
        self._active = 0
        self._starting = 0  # workers being started for _idle
        self._threads: set[threading.Thread] = set()
        self._stopped = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._eof_fd: int | None = None
        self._owner_fd: int | None = None
        self._pending: collections.OrderedDict[socket.socket, _Pending] = collections.OrderedDict()
        self._pending_cap = self.max_pending  # lowered when descriptors run short
        self._listening = True
        self._backoff = 0.0
        self._resume_at = 0.0
        self._last_client = time.monotonic()
        self.connections = 0  # authenticated connections served so far
        self.rejected = 0  # connections dropped before or at authentication

    # ---------------------------------------------------------------- serving

    def stop_at_eof(self, fd: int) -> None:
        """Stop when the file descriptor ``fd`` (a pipe, such as stdin) reaches its end."""
        self._eof_fd = fd

    def stop_with(self, pidfd: int) -> None:
        """Stop when the process of ``pidfd`` (a pidfd: its owner) ends."""
        self._owner_fd = pidfd

    def serve_forever(self) -> None:
        """Accept and serve clients until stopped or idle for ``idle_timeout``."""
        self._spawn(self._prestart)
        selector = selectors.DefaultSelector()
        try:
            for listener in self._listeners:
                selector.register(listener, selectors.EVENT_READ, "listen")
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            if self._eof_fd is not None:
                selector.register(self._eof_fd, selectors.EVENT_READ, "eof")
            if self._owner_fd is not None:
                selector.register(self._owner_fd, selectors.EVENT_READ, "owner")
            while not self._stopped.is_set():
                for key, _ in selector.select(self._wait_time()):
                    if key.data == "listen":
                        self._accept(selector, key.fileobj)  # type: ignore[arg-type]
                    elif key.data == "wake":
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 4096)
                    elif key.data == "eof":
                        if not _read_some(key.fd):
                            self._stopped.set()
                    elif key.data == "owner":
                        self._stopped.set()
                    else:
                        self._advance(selector, key.data)
                self._expire(selector)
                if not self._listening and time.monotonic() >= self._resume_at:
                    for listener in self._listeners:
                        selector.register(listener, selectors.EVENT_READ, "listen")
                    self._listening = True
                if self._idle_too_long():
                    break
        finally:
            selector.close()
            self._shutdown()

    def stop(self) -> None:
        """Make :meth:`serve_forever` return (it then stops every worker); safe in a signal handler."""
        self._stopped.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def _wait_time(self) -> float:
        now = time.monotonic()
        wait = _TICK
        if self._pending:
            wait = min(wait, next(iter(self._pending.values())).deadline - now)
        if not self._listening:
            wait = min(wait, self._resume_at - now)
        return max(0.0, wait)

    def _idle_too_long(self) -> bool:
        if self.idle_timeout is None:
            return False
        with self._lock:
            busy = self._active
        return not busy and time.monotonic() - self._last_client > self.idle_timeout

    def _spawn(self, target: Any, *args: Any) -> None:
        def main() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=main, name="manymap-server")
        with self._lock:  # started under the lock: _shutdown never sees a thread it cannot join
            self._threads.add(thread)
            thread.start()

    def _shutdown(self) -> None:
        self._stopped.set()
        with self._lock:
            self._worker_ready.notify_all()
        for listener in self._listeners:
            listener.close()
        for pending in list(self._pending.values()):
            pending.sock.close()
        self._pending.clear()
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            with self._lock:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            if not threads:
                break
            threads[0].join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()
        if self._template is not None:
            self._template.close()
        fds, self._wake_w = (self._wake_r, self._wake_w), -1  # a late stop() writes nowhere
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---------------------------------------------------------- handshakes

    def _accept(self, selector: selectors.BaseSelector, listener: socket.socket) -> None:
        for _ in range(64):  # then let the others have a turn
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno not in _OUT_OF_FDS:
                    continue  # e.g. a connection reset before it was accepted
                if self._pending:
                    # Make room, and keep it: fewer unauthenticated connections from
                    # now on, so that the descriptors an authenticated client needs
                    # (its thread's poll and state, a new worker's stdin and stdout) stay free.
                    self._pending_cap = max(1, len(self._pending) - _HEADROOM)
                    while len(self._pending) >= self._pending_cap:
                        self._drop(selector, next(iter(self._pending)))
                    continue
                self._back_off(selector)
                return
            self._backoff = 0.0
            self._admit(selector, sock)

    def _back_off(self, selector: selectors.BaseSelector) -> None:
        """Out of descriptors with nothing to drop: stop listening for a while, without spinning."""
        low, high = _BACKOFF
        self._backoff = min(high, self._backoff * 2 or low)
        self._resume_at = time.monotonic() + self._backoff
        if self._listening:
            for listener in self._listeners:
                selector.unregister(listener)
            self._listening = False

    def _admit(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        while len(self._pending) >= min(self.max_pending, self._pending_cap):
            self._drop(selector, next(iter(self._pending)))
        sock.setblocking(False)
        pending = _Pending(sock, time.monotonic() + self.auth_timeout)
        try:
            if sock.family == socket.AF_UNIX:
                if not _same_user(sock):
                    raise PermissionError("a unix connection from another user")
            else:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            wire.send_plain(sock, wire.pack_hello(pending.nonce))  # 46 bytes: a fresh socket takes them
        except OSError:
            self.rejected += 1  # counted before the peer can see its end
            sock.close()
            return
        self._pending[sock] = pending
        selector.register(sock, selectors.EVENT_READ, pending)

    def _drop(self, selector: selectors.BaseSelector, sock: socket.socket, reason: str = "") -> None:
        self._pending.pop(sock, None)
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(sock)
        if reason:
            with contextlib.suppress(OSError):
                wire.send_plain(sock, wire.pack_refuse(reason))
        self.rejected += 1  # counted before the peer can see its end
        sock.close()

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        while self._pending:
            sock, pending = next(iter(self._pending.items()))
            if pending.deadline > now:
                return
            self._drop(selector, sock)

    def _advance(self, selector: selectors.BaseSelector, pending: _Pending) -> None:
        """Read what a connection in its handshake sent; admit or drop it once its proof is in."""
        sock = pending.sock
        try:
            frames = pending.reader.pump()
        except (EOFError, OSError):
            self._drop(selector, sock)
            return
        if not frames:
            return
        try:
            if len(frames) > 1:
                raise wire.FrameError("a client that did not wait for the server's answer")
            proven = check_client(self.secret, pending.nonce, bytes(frames[0]))
        except wire.FrameError:
            self._drop(selector, sock, "not a manymap-rpc client")
            return
        if proven is None:
            self._drop(selector, sock, "authentication failed: wrong secret")
            return
        with self._lock:
            busy = self._active >= self.max_connections
            if not busy:
                self._active += 1
                self.connections += 1
        if busy:
            reason = f"busy: {self.max_connections} clients are served already"
            self._drop(selector, sock, reason)
            return
        self._pending.pop(sock)
        selector.unregister(sock)
        self._spawn(self._serve, sock, *proven)

    # ---------------------------------------------------------------- workers

    def _prestart(self) -> None:
        with self._lock:
            # Recycling: a spare for every worker too, so that a retired one is replaced at once.
            busy = 0 if self.max_tasks_per_worker is not None else self._active
            missing = self.workers - len(self._idle) - busy - self._starting
            if missing <= 0 or self._stopped.is_set():
                return
            self._starting += missing
        started: list[PPWorker] = []
        try:
            for _ in range(missing):  # all at once: they start in parallel
                started.append(self._new_worker())
            while started:  # each goes idle as it is ready: a client waiting for one takes it
                worker = started[0].ready()
                started.pop(0)
                with self._lock:
                    missing -= 1
                    self._starting -= 1
                    stale = self._stopped.is_set()
                    if not stale:
                        self._idle.append(worker)
                        self._worker_ready.notify()
                if stale:
                    worker.kill()
        except (RuntimeError, OSError, ValueError):
            pass
        finally:
            for worker in started:
                worker.kill()
            with self._lock:
                self._starting -= missing
                self._worker_ready.notify_all()

    def take_worker(self) -> PPWorker:
        """An idle started worker, else one being started ahead once it is ready, else a
        new one (for a connection's thread)."""
        deadline = time.monotonic() + WORKER_START
        with self._lock:
            while not self._idle and self._starting and not self._stopped.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._worker_ready.wait(remaining)
            worker = self._idle.pop() if self._idle else None
        if worker is not None and worker.dead():
            worker.kill()
            worker = None
        return worker if worker is not None else self._new_worker().ready()

    def _new_worker(self) -> PPWorker:
        """A worker starting: forked from the template, or (without one, or once it is
        gone) a fresh interpreter."""
        template = self._template
        if template is not None and template.alive:
            with contextlib.suppress(TemplateError):
                return PPWorker(template)
        return PPWorker()

    def replace_worker(self) -> PPWorker:
        """A worker to take the place of one retired after ``max_tasks_per_worker`` tasks
        (a spare started ahead when there is one; another spare is then started)."""
        worker = self.take_worker()
        if not self._stopped.is_set():
            self._spawn(self._prestart)
        return worker

    @property
    def stopped(self) -> bool:
        """Whether the server is stopping."""
        return self._stopped.is_set()

    # ---------------------------------------------------------------- a client

    def _serve(self, sock: socket.socket, session: Session, server_proof: bytes) -> None:
        try:
            serve_connection(self, sock, session, server_proof)
        except (OSError, EOFError, RuntimeError, ValueError):
            pass  # that connection is dropped; the server goes on
        finally:
            with self._lock:
                self._active -= 1
                self._last_client = time.monotonic()
            # Closed once its place is free (and its worker killed): a client that
            # replaces it waits for this end, and then finds the place free. Shut
            # down first: a task's child may hold a copy (the worker's, inherited).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            if not self._stopped.is_set():
                self._spawn(self._prestart)


def _read_some(fd: int) -> bool:
    """Read what ``fd`` holds; False at its end."""
    try:
        return bool(os.read(fd, 65536))
    except BlockingIOError:
        return True
    except OSError:
        return False


def _same_user(sock: socket.socket) -> bool:
    """Whether the peer of the unix socket ``sock`` runs as this process's user."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", raw)
    return bool(uid == os.getuid())

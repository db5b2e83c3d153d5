"""``RPCServer``: the server behind ``manymap-server``, ppft workers underneath.

How it works. The server listens on one TCP port (127.0.0.1 unless told
otherwise). A thread per connection runs the handshake (``_protocol.py``):
a client that does not prove it knows the secret within the auth timeout,
sends garbage, an oversized frame, or nothing at all is dropped, and the
server goes on serving the others. An authenticated connection gets a ppft
worker process of its own (ppft's worker loop, see ``_ppworker.py``, spoken
to in ppft's pipe protocol) and relays the client's batches to it as calls
of a stub function (``_remote.py``); ppft captures the task's stdout
and the server returns it with the result. A worker that dies mid-batch is
reported (``LOST``) and replaced; a client that closes its connection gets
its worker killed, which is how a client stops a task.

The server stops on :meth:`RPCServer.stop`, after ``idle_timeout`` seconds
with no client, or (when it read its secret from stdin) at end of stdin, i.e.
when the ssh session that started it is gone.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import pickle
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

from manymap.pools.rpc import _protocol as proto
from manymap.pools.rpc._ppworker import OneWritePipe
from manymap.pools.rpc._remote import STUB, STUB_NAME

__all__ = ["DEFAULT_FRAME_LIMIT", "RPCServer"]

DEFAULT_FRAME_LIMIT = 1 << 30  # bytes of one batch
_TICK = 0.05  # seconds; loops re-check their state (and stop) at least this often
_WORKER_START = 60.0  # seconds a ppft worker may take to start


class _PPWorker:
    """One ppft worker process and its pipe transport."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "manymap.pools.rpc._ppworker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C at the server's terminal is the server's business
        )
        assert self.process.stdout is not None
        assert self.process.stdin is not None
        self.transport = OneWritePipe(self.process.stdout, self.process.stdin)
        self.pid = self.process.pid
        self._stub = pickle.dumps((STUB_NAME, [STUB], ()))

    def ready(self) -> _PPWorker:
        """Wait for the worker to start (ppft's greeting: its pid; our answer: the pickle protocol)."""
        assert self.process.stdout is not None
        if not _readable(self.process.stdout.fileno(), _WORKER_START):
            self.kill()
            raise RuntimeError("a ppft worker did not start")
        self.pid = int(self.transport.receive())
        self.transport.send(str(pickle.HIGHEST_PROTOCOL))
        return self

    def submit(self, payload: bytes) -> None:
        """Send a job: the stub (by hash once the worker has it) and its argument, in one write."""
        args = pickle.dumps((payload,), pickle.HIGHEST_PROTOCOL)
        self.transport.send(self.transport.cached(self._stub), args)

    def fileno(self) -> int:
        assert self.process.stdout is not None
        return self.process.stdout.fileno()

    def result(self) -> tuple[bytes, str]:
        result, out = pickle.loads(self.transport.receive())
        if not isinstance(result, bytes):  # ppft's own failure: the stub could not run
            raise RuntimeError(f"the ppft worker failed outside the task: {out.strip()}")
        return result, out

    def exitcode(self) -> int | None:
        try:
            return self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait(5.0)

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5.0)
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()


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
        auth_timeout: float = 10.0,
        frame_limit: int = DEFAULT_FRAME_LIMIT,
    ) -> None:
        self.secret = secret or secrets.token_hex(32)
        self.workers = workers or os.cpu_count() or 1
        self.max_connections = max_connections or self.workers
        self.idle_timeout = idle_timeout
        self.auth_timeout = auth_timeout
        self.frame_limit = frame_limit
        self.host = socket.gethostname()
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((bind, port))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._idle: list[_PPWorker] = []
        self._active = 0
        self._starting = 0  # workers being started for _idle
        self._threads: set[threading.Thread] = set()
        self._stopped = threading.Event()
        self._last_client = time.monotonic()
        self.connections = 0  # authenticated connections served so far
        self.rejected = 0  # connections dropped before or at authentication

    # ---------------------------------------------------------------- serving

    def serve_forever(self) -> None:
        """Accept and serve clients until stopped or idle for ``idle_timeout``."""
        self._spawn(self._prestart)
        try:
            while not self._stopped.is_set():
                if not _readable(self._listener.fileno(), _TICK):
                    if self._idle_too_long():
                        break
                    continue
                try:
                    sock, _ = self._listener.accept()
                except OSError:
                    continue
                self._spawn(self._serve, sock)
        finally:
            self._shutdown()

    def stop(self) -> None:
        """Make :meth:`serve_forever` return (it then stops every worker)."""
        self._stopped.set()

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

        thread = threading.Thread(target=main, daemon=True, name="manymap-server")
        with self._lock:  # started under the lock: _shutdown never sees a thread it cannot join
            self._threads.add(thread)
            thread.start()

    def _shutdown(self) -> None:
        self._stopped.set()
        self._listener.close()
        deadline = time.monotonic() + 10.0
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

    # ---------------------------------------------------------------- workers

    def _prestart(self) -> None:
        with self._lock:
            missing = self.workers - len(self._idle) - self._active - self._starting
            if missing <= 0 or self._stopped.is_set():
                return
            self._starting += missing
        started: list[_PPWorker] = []
        try:
            started = [_PPWorker() for _ in range(missing)]  # all at once: they start in parallel
            for worker in started:
                worker.ready()
        except (RuntimeError, OSError, ValueError):
            for worker in started:
                worker.kill()
            started = []
        finally:
            with self._lock:
                self._starting -= missing
                if self._stopped.is_set():
                    stale, started = started, []
                else:
                    stale = []
                self._idle.extend(started)
            for worker in stale:
                worker.kill()

    def _take_worker(self) -> _PPWorker:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        return worker if worker is not None else _PPWorker().ready()

    # ---------------------------------------------------------------- a client

    def _serve(self, sock: socket.socket) -> None:
        admitted = False
        try:
            with sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if not self._authenticate(sock):
                    self.rejected += 1
                    return
                with self._lock:
                    if self._active >= self.max_connections:
                        refused = True
                    else:
                        refused, admitted = False, True
                        self._active += 1
                        self.connections += 1
                if refused:
                    self.rejected += 1
                    reason = f"busy: {self.max_connections} clients are served already"
                    proto.send(sock, proto.NO, reason.encode())
                    return
                self._run_client(sock)
        except (OSError, EOFError, proto.FrameError, RuntimeError, ValueError, struct.error):
            pass  # that connection is dropped; the server goes on
        finally:
            if admitted:
                with self._lock:
                    self._active -= 1
                    self._last_client = time.monotonic()
                self._spawn(self._prestart)

    def _authenticate(self, sock: socket.socket) -> bool:
        nonce = secrets.token_bytes(32)
        deadline = time.monotonic() + self.auth_timeout
        proto.send(sock, proto.HELLO, nonce)
        try:
            reply = proto.receive(sock, proto.HANDSHAKE_LIMIT, max(0.0, deadline - time.monotonic()))
        except (EOFError, proto.FrameError, OSError):
            return False
        if not hmac.compare_digest(reply, proto.answer(self.secret, nonce)):
            with contextlib.suppress(OSError):
                proto.send(sock, proto.NO, b"authentication failed: wrong secret")
            return False
        return True

    def _run_client(self, sock: socket.socket) -> None:
        worker = self._take_worker()
        try:
            info = {"host": self.host, "workers": self.workers, "pid": os.getpid(), "worker": worker.pid}
            proto.send(sock, proto.OK, json.dumps(info).encode())
            while not self._stopped.is_set():
                if not _readable(sock.fileno(), _TICK):
                    continue
                try:
                    frame = proto.receive(sock, self.frame_limit, 3600.0)
                except EOFError:
                    return
                if frame[:1] != proto.RUN:
                    return  # not this protocol: drop the connection
                token = frame[1 : 1 + proto.TOKEN.size]
                started = time.perf_counter()
                worker.submit(frame[1 + proto.TOKEN.size :])
                ready = self._wait_result(sock, worker)
                if ready is None:
                    return  # the client went away (or broke the protocol): its worker dies
                if ready:
                    try:
                        result, out = worker.result()
                    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError):
                        ready = False
                if not ready:
                    code = worker.exitcode()
                    worker.kill()
                    worker = self._take_worker()
                    why = _describe(code).encode()
                    proto.send(sock, proto.LOST, token, struct.pack("!i", code or 0), why)
                    continue
                duration = time.perf_counter() - started
                data = out.encode("utf-8", "replace")
                proto.send(sock, proto.DONE, token, struct.pack("!dI", duration, len(data)), data, result)
        finally:
            worker.kill()

    def _wait_result(self, sock: socket.socket, worker: _PPWorker) -> bool | None:
        """Wait for the worker's answer: True (ready), False (the worker died), None (client gone)."""
        while True:
            if self._stopped.is_set():
                return None
            ready, _, _ = select.select([sock.fileno(), worker.fileno()], [], [], _TICK)
            if worker.fileno() in ready:
                return True  # a result, or end of file if it died: result() tells
            if ready:
                return None  # EOF, or a client speaking out of turn


def _readable(fd: int, timeout: float) -> bool:
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)


def _describe(code: int | None) -> str:
    if code is None:
        return "the ppft worker did not exit"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        return f"the ppft worker was killed by {name}"
    return f"the ppft worker exited with code {code}"

"""Helpers of manymap-pools-rpc's tests: a real manymap-server in a subprocess, and a
ParallelPool of a server over ssh."""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from manymap.pools.rpc import ParallelPool

if TYPE_CHECKING:
    from manymap_testhosts import SSHServer

WAIT = 60.0  # seconds anything here may take
_LENGTH = struct.Struct("!Q")


class ServerProcess:
    """``python -m manymap.pools.rpc`` with a secret file, its port read from its first line."""

    def __init__(
        self,
        tmp: Path,
        *args: str,
        secret: str = "s3cret-" + "ab" * 28,
        workers: int = 1,
        open_files: int | None = None,
    ) -> None:
        self.secret = secret
        secret_file = tmp / f"secret-{os.urandom(4).hex()}"
        secret_file.write_text(secret + "\n")
        self.pid_file = tmp / f"pid-{os.urandom(4).hex()}"
        self.argv = [
            sys.executable,
            "-m",
            "manymap.pools.rpc",
            "--secret-file",
            str(secret_file),
            "--workers",
            str(workers),
            "--pid-file",
            str(self.pid_file),
            *args,
        ]

        def limit() -> None:  # in the child: at most ``open_files`` descriptors
            if open_files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=limit if open_files is not None else None,
        )
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            assert selector.select(WAIT), "manymap-server did not print its port"
        self.port = int(self.process.stdout.readline())
        self.address = f"127.0.0.1:{self.port}"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=WAIT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(WAIT)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(WAIT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code


def closed_by_peer(sock: socket.socket, timeout: float = WAIT) -> bool:
    """Whether the peer closes ``sock`` within ``timeout`` (what it sends meanwhile is dropped)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_frame(sock: socket.socket) -> bytes:
    head = _recv_exactly(sock, _LENGTH.size)
    return _recv_exactly(sock, _LENGTH.unpack(head)[0])


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def frame(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return _LENGTH.pack(len(body)) + body


class Listener:
    """A TCP listener on 127.0.0.1 serving each connection with ``handler`` on a thread."""

    def __init__(self, handler: object) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(WAIT)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.handler = handler
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(WAIT)
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.handler(conn)  # type: ignore[operator]
            except (OSError, EOFError):
                pass
            except BaseException as error:  # pragma: no cover - shown by the test
                self.errors.append(error)

    def close(self) -> None:
        self.stopped.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (a close alone does not)
        self.sock.close()
        self.thread.join(WAIT)
        for thread in self.threads:
            thread.join(WAIT)


def first_draws_once_two_met(folder: str) -> tuple[int, float, float]:
    """This worker's pid and its first draws of ``random`` and numpy's global generator,
    taken once two workers have come (30 s at most), so that two siblings answer."""
    import random
    import time

    import numpy

    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 30
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return os.getpid(), random.random(), float(numpy.random.random())


def ssh_pool(sshd: SSHServer, workers: int = 2, **options: Any) -> ParallelPool:
    """A ParallelPool whose one node is a manymap-server of ``workers`` started on
    ``sshd``'s host over ssh and reached through its tunnel."""
    return ParallelPool(
        0,
        servers=[sshd.alias],
        ssh_config=sshd.ssh_config,
        python=sys.executable,
        server_workers=workers,
        **options,
    )

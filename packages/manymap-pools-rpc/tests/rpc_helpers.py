"""Helpers of manymap-pools-rpc's tests: a real manymap-server in a subprocess."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

WAIT = 60.0  # seconds anything here may take


class ServerProcess:
    """``python -m manymap.pools.rpc`` with a secret file, its port read from its first line."""

    def __init__(self, tmp: Path, *args: str, secret: str = "s3cret-" + "ab" * 28, workers: int = 1) -> None:
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
        self.process = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], WAIT)
        assert ready, "manymap-server did not print its port"
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

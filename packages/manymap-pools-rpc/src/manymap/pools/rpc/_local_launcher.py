"""``LocalLauncher``: the command running ParallelPool's local ``manymap-server``.

A :class:`~manymap.pools.rpc.bootstrap.ServerLauncher` on this machine:
stdin and stdout piped (the port comes out, the secret goes in), stderr
shared with this process, so that what the server reports reaches the
user's terminal as a forked worker's would. The server runs in a session of
its own: a Ctrl-C at our terminal is ours to handle; it stops when its stdin
ends, i.e. with :meth:`LocalLauncher.close_stdin` or when we are gone.
"""

from __future__ import annotations

import contextlib
import selectors
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from manymap.launcher import ResultTimeoutError

if TYPE_CHECKING:
    import subprocess

__all__ = ["LocalLauncher"]

_WAIT = 10.0  # seconds to wait for the process after SIGKILL


# NamedTuple's call form (types as objects, not compiled strings): see manymap.launcher's TaskFailure.
class Ended(NamedTuple("Ended", [("returncode", int | None), ("stderr", bytes)])):
    """How the command ended (its stderr is not captured: it is ours)."""

    __slots__ = ()


class LocalLauncher:
    """``argv`` on this machine, with ``env`` as its whole environment; ``name`` in messages."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None, *, name: str = "") -> None:
        self.argv = list(argv)
        self.env = None if env is None else dict(env)
        self.name = name or self.argv[0]
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        """Start the command."""
        import subprocess  # loaded by the first launch, not by the package (import time)

        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            start_new_session=True,
        )

    def pid(self) -> int | None:
        """Its pid; ``None`` before launch."""
        return None if self.process is None else self.process.pid

    def readline(self, timeout: float | None = None) -> bytes:
        """The next line of stdout, ``b""`` at its end.

        Raises:
            ResultTimeoutError: nothing came within ``timeout`` seconds.
        """
        stdout = self._running().stdout
        assert stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise ResultTimeoutError(f"localhost: {self.name} wrote no line in {timeout:g} s")
        return stdout.readline()

    def send(self, data: bytes | str) -> None:
        """Write ``data`` to the command's stdin."""
        stdin = self._running().stdin
        assert stdin is not None
        stdin.write(data.encode() if isinstance(data, str) else data)
        stdin.flush()

    def close_stdin(self) -> None:
        """End the command's stdin."""
        process = self.process
        if process is not None and process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def response(self, timeout: float | None = None) -> Ended:
        """Wait at most ``timeout`` seconds for the command to end.

        Raises:
            ResultTimeoutError: it still runs.
        """
        import subprocess

        process = self._running()
        try:
            return Ended(process.wait(timeout), b"")
        except subprocess.TimeoutExpired:
            raise ResultTimeoutError(f"localhost: {self.name} still running after {timeout:g} s") from None

    def kill(self) -> None:
        """SIGKILL the command if it still runs; close its pipes."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait(_WAIT)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not launched")
        return self.process

"""``LocalPipe``: a command on this machine, with :class:`manymap.secure.Pipe`'s interface.

What ``manymap.core.execute`` runs when no host is given, and what runs a
local ``manymap.core.serve``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from manymap.launcher import AbstractLauncher, ResultTimeoutError
from manymap.secure import CommandResult

__all__ = ["LocalPipe"]


class LocalPipe(AbstractLauncher[CommandResult]):
    """A command on this machine, with :class:`manymap.secure.Pipe`'s interface.

    Args:
        command: an argv list (run without a shell), or a string of shell code you wrote.
        env: environment variables added to this process's environment.
        cwd: the directory to run in.
        input: bytes (or text) written to stdin, then end-of-file.
        stdin_open: keep stdin open after ``input`` for :meth:`send`, until :meth:`close_stdin`
            or :meth:`response`.
        background: the command's output goes to ``log`` (default ``/dev/null``) instead of
            being captured.
        log: file for a background command's stdout and stderr.
    """

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        input: bytes | str | None = None,
        stdin_open: bool = False,
        background: bool = False,
        log: str | os.PathLike[str] | None = None,
    ) -> None:
        if background and (input is not None or stdin_open):
            raise ValueError("a background command has no stdin (input / stdin_open)")
        if isinstance(command, str):
            if not command.strip():
                raise ValueError("empty command")
            self._argv: str | list[str] = command
            text = command
        else:
            self._argv = [os.fspath(arg) for arg in command]
            if not self._argv:
                raise ValueError("empty command")
            text = subprocess.list2cmdline(self._argv)
        super().__init__(text[:60])
        self.command = text
        self.background = background
        self._env = dict(env or {})
        self._cwd = cwd
        self._input = input.encode() if isinstance(input, str) else input
        self._log = log
        self._stdin_open = stdin_open
        self._head = b""  # stdout read by readline() and not returned yet
        self._read = bytearray()  # stdout read by readline(), for the result
        self._process: subprocess.Popen[bytes] | None = None
        self._result: CommandResult | None = None
        self._lock = threading.Lock()

    def launch(self) -> None:
        """Start the command in a session of its own (its own process group)."""
        if self._process is not None:
            raise RuntimeError(f"{self!r} was already launched")
        out: Any
        if self.background:
            out = open(self._log, "ab") if self._log is not None else subprocess.DEVNULL  # noqa: SIM115
        else:
            out = subprocess.PIPE
        try:
            self._process = subprocess.Popen(
                self._argv,
                shell=isinstance(self._argv, str),
                stdin=subprocess.PIPE if self._input is not None or self._stdin_open else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if self.background else subprocess.PIPE,
                cwd=self._cwd,
                env={**os.environ, **self._env} if self._env else None,
                start_new_session=True,
            )
        finally:
            if self.background and self._log is not None:
                out.close()
        if self._stdin_open and self._process.stdin is not None:
            if self._input:
                self._process.stdin.write(self._input)
            self._process.stdin.flush()
            self._input = None

    def close_stdin(self) -> None:
        """Send end-of-file to the command's stdin."""
        process = self._process
        if process is not None and process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
            process.stdin = None  # communicate() must not touch it again

    def send(self, data: bytes | str) -> None:
        """Write ``data`` (text as UTF-8) to the command's stdin (``stdin_open=True`` only).

        Raises:
            ValueError: stdin is not open (not requested, or closed).
        """
        process = self._process
        if not self._stdin_open or process is None or process.stdin is None:
            raise ValueError("stdin is not open: create the LocalPipe with stdin_open=True and launch it")
        process.stdin.write(data.encode() if isinstance(data, str) else data)
        process.stdin.flush()

    def readline(self, timeout: float | None = None) -> bytes:
        """The next line of stdout (with its newline), ``b""`` once stdout ended.

        Raises:
            ResultTimeoutError: no full line arrived within ``timeout`` seconds.
        """
        process = self._process
        if process is None or process.stdout is None:
            raise RuntimeError(f"{self!r} is not launched in the foreground")
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = process.stdout.fileno()
        with selectors.DefaultSelector() as selector:  # not select(): descriptors above 1024
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._head:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ResultTimeoutError(
                        f"localhost: no line on stdout of {self.command!r} in {timeout:g} s"
                    )
                if not selector.select(1.0 if remaining is None else min(remaining, 1.0)):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    line, self._head = self._head, b""
                    return line
                self._read += chunk
                self._head += chunk
        line, _, self._head = self._head.partition(b"\n")
        return line + b"\n"

    def response(self, timeout: float | None = None) -> CommandResult:
        """Wait at most ``timeout`` seconds for the command to end; its result.

        Raises:
            ResultTimeoutError: still running after ``timeout`` (it goes on).
        """
        process = self._process
        if process is None:
            raise RuntimeError(f"{self!r} is not launched")
        with self._lock:
            if self._result is None:
                if self._input is None:
                    self.close_stdin()
                try:
                    stdout, stderr = process.communicate(self._input, timeout=timeout)
                except subprocess.TimeoutExpired:
                    raise ResultTimeoutError(
                        f"localhost: {self.command!r} still running after {timeout:g} s"
                    ) from None
                self._result = CommandResult(
                    self.command,
                    "localhost",
                    0,
                    process.returncode,
                    bytes(self._read) + (stdout or b""),
                    stderr or b"",
                    process.pid,
                )
            return self._result

    def running(self) -> bool:
        """Whether it was launched and has not ended."""
        return self._process is not None and self._process.poll() is None

    def pid(self) -> int | None:
        """Its pid (also its process group); ``None`` before launch."""
        return self._process.pid if self._process is not None else None

    def kill(self, sig: int = signal.SIGTERM, grace: float = 3.0) -> None:
        """Signal its process group, then SIGKILL it if it outlives ``grace`` seconds."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        for this_signal in (sig, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, this_signal)
            try:
                process.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        if process.stdout is not None or process.stderr is not None:
            self.response(grace)

"""``Pipe``: a command on a remote host, over a live ssh session channel.

How a command runs. The remote login shell gets a short script built only
from quoted pieces (see :mod:`._shell`): ``printf 'MANYMAP-PID-<nonce> %s\\n' "$$"``,
then ``cd`` / ``export`` lines, then ``exec <command>``. sshd makes the
session's shell a session and process-group leader, so the printed pid is the
command's pid *and* its process group: :meth:`Pipe.kill` signals the whole
group. A reader thread takes stdout / stderr off the channel as they arrive
(the pid line is stripped), feeds the callbacks and the buffers that
:meth:`Pipe.readline` and :meth:`Pipe.response` read. A writer thread feeds
stdin when there is input. The process lives as long as the channel: when the
ssh connection goes, its stdin sees end-of-file.

A command that must outlive the ssh session is a
:class:`~manymap.secure.DetachedCommand` (``_detached.py``).
"""

from __future__ import annotations

import os
import queue
import selectors
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import paramiko

from manymap.launcher import ConnectionLostError, ResultTimeoutError

from ._command import CommandResult, RemoteCommand
from ._connection import Connection
from ._hosts import HostProfile
from ._shell import foreground_script, kill_script, run_script

__all__ = ["Pipe"]

Stream = Literal["stdout", "stderr"]
_CHUNK = 65536
_PID_SEARCH_LIMIT = 1 << 16
_KILL_GRACE = 3.0
_JOIN_TIMEOUT = 10.0


class Pipe(RemoteCommand):
    """Run a command on a remote host over ssh; an :class:`~manymap.launcher.AbstractLauncher`.

    The command lives as long as its ssh channel. For one that must keep
    running after the session ends (a server started for later), use
    :class:`~manymap.secure.DetachedCommand`. ``pid()`` gives the command's
    remote pid (also its process group), ``connection`` the connection handle
    it holds while it runs.

    Args:
        host: a host spec, ssh_config name, :class:`HostProfile` or :class:`Connection`.
        command: an argv list (each item quoted for the remote shell: nothing
            in it is ever interpreted by the shell), or a string of shell code
            run as written (for pipelines and redirections that you write yourself).
        env: environment variables to set for the command (names are checked, values quoted).
        cwd: remote directory to run in (relative to the login directory).
        input: bytes (or text, sent as UTF-8) written to the command's stdin, then end-of-file.
        stdin_open: keep stdin open after ``input`` for :meth:`send`, until :meth:`close_stdin`.
        capture: keep stdout and stderr in memory for :meth:`readline` and the result
            (default); ``False`` only feeds the callbacks.
        on_stdout: called with each chunk of stdout as it arrives (on the reader thread).
        on_stderr: called with each chunk of stderr as it arrives.
        ssh_config: the ssh_config to resolve ``host`` with.
        name: a label for messages.
        **overrides: keyword arguments of :func:`~manymap.secure.resolve` (``user``, ``port``,
            ``through``, ``identity_file``, ``accept_new_host_keys``, ``connect_timeout``...).

    Raises:
        TypeError: ``background=`` or ``log=`` was given: those are
            :class:`~manymap.secure.DetachedCommand`'s.

    Example:
        >>> pipe = Pipe("node7", ["python3", "-c", "print(6 * 7)"])  # doctest: +SKIP
        >>> pipe.run(timeout=30).stdout                             # doctest: +SKIP
        b'42\\n'
    """

    def __init__(
        self,
        host: str | HostProfile | Connection,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input: bytes | str | None = None,
        stdin_open: bool = False,
        capture: bool = True,
        on_stdout: Callable[[bytes], object] | None = None,
        on_stderr: Callable[[bytes], object] | None = None,
        ssh_config: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **overrides: Any,
    ) -> None:
        for word in ("background", "log"):
            if word in overrides:
                raise TypeError(
                    f"Pipe() takes no {word}= any more: a command that keeps running after the ssh "
                    "session ends is a manymap.secure.DetachedCommand(host, command, log=...)"
                )
        super().__init__(
            host, command, env=env, cwd=cwd, ssh_config=ssh_config, name=name, overrides=overrides
        )
        self._input = input.encode() if isinstance(input, str) else input
        self._stdin_open = stdin_open
        self._capture = capture
        self._callbacks: dict[Stream, Callable[[bytes], object] | None] = {
            "stdout": on_stdout,
            "stderr": on_stderr,
        }
        self._cond = threading.Condition(self._lock)
        self._buffers: dict[Stream, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._positions: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        self._head = bytearray()  # stdout until the pid line is found
        self._pid_seen = threading.Event()
        self._ended = threading.Event()
        self._channel: paramiko.Channel | None = None
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._stdin: queue.Queue[bytes | None] = queue.Queue()
        self._callback_error: BaseException | None = None
        self._lost: ConnectionLostError | None = None

    def launch(self) -> None:
        """Start the command and return once its remote pid is known.

        Raises:
            ConnectError, HostKeyError, AuthenticationError: the connection failed.
            ConnectionLostError: the connection dropped before the command started.
            RuntimeError: the pipe was already launched.
        """
        connection = self._connect()
        try:
            self._launch_channel(connection)
        except BaseException:
            self._ended.set()
            self._release()
            raise

    def _launch_channel(self, connection: Connection) -> None:
        channel = connection.open_session()
        self._channel = channel
        try:
            channel.exec_command(foreground_script(self._mark, self._prelude, self.command, self._argv_form))
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise ConnectionLostError(
                f"cannot run {self.command!r}: {error}", host=self.profile.hostname, port=self.profile.port
            ) from None
        label = f"{self.profile.address} {self.name}"
        self._reader = threading.Thread(
            target=self._read_loop, name=f"manymap-pipe-reader {label}", daemon=True
        )
        self._reader.start()
        if self._input is not None or self._stdin_open:
            if self._input:
                self._stdin.put(self._input)
            if not self._stdin_open:
                self._stdin.put(None)
            self._writer = threading.Thread(
                target=self._write_loop, name=f"manymap-pipe-writer {label}", daemon=True
            )
            self._writer.start()
        else:
            channel.shutdown_write()
        limit = max(30.0, self.profile.connect_timeout)
        deadline = time.monotonic() + limit
        while not self._pid_seen.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
            if self._ended.is_set() or time.monotonic() >= deadline:
                break
        if not self._pid_seen.is_set():
            self._pid_seen.set()
            if self._lost is not None:
                raise self._lost
            if not self._ended.is_set():
                raise ConnectionLostError(
                    f"the remote shell did not start {self.command!r} within {limit:g} s",
                    host=self.profile.hostname,
                    port=self.profile.port,
                )
            # The shell ended without the pid line (no shell, refused exec): report what it said.

    # -- reading and writing --------------------------------------------------------------

    def _read_loop(self) -> None:
        channel = self._channel
        assert channel is not None
        waiter = selectors.DefaultSelector()  # no descriptor limit, unlike select()
        try:
            waiter.register(channel, selectors.EVENT_READ)
            while True:
                waiter.select(1.0)
                while channel.recv_ready():
                    self._feed("stdout", channel.recv(_CHUNK))
                while channel.recv_stderr_ready():
                    self._feed("stderr", channel.recv_stderr(_CHUNK))
                if channel.closed and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
                if channel.eof_received and not channel.recv_ready() and not channel.recv_stderr_ready():
                    # stdout is done but the channel is open (stderr, the exit status): the
                    # channel's fd stays readable now, so wait on the status event instead.
                    channel.status_event.wait(0.05)
        except (OSError, EOFError, paramiko.SSHException) as error:
            self._lost = ConnectionLostError(
                f"connection lost while running {self.command!r}: {error}",
                host=self.profile.hostname,
                port=self.profile.port,
            )
        finally:
            waiter.close()
            self._finish_reading()

    def _feed(self, stream: Stream, data: bytes) -> None:
        if not data:
            return
        if stream == "stdout" and not self._pid_seen.is_set():
            self._head += data
            match = self._marker.search(self._head)
            if match is None:
                if len(self._head) < _PID_SEARCH_LIMIT:
                    return
                data, self._head = bytes(self._head), bytearray()  # no pid line: pass everything on
            else:
                self._remote_pid = int(match[1])
                data = bytes(self._head[: match.start()] + self._head[match.end() :])
                self._head = bytearray()
            self._pid_seen.set()
            if not data:
                return
        if self._capture:
            with self._cond:
                self._buffers[stream] += data
                self._cond.notify_all()
        callback = self._callbacks[stream]
        if callback is not None:
            try:
                callback(data)
            except BaseException as error:  # a broken callback must not kill the reader
                if self._callback_error is None:
                    self._callback_error = error

    def _finish_reading(self) -> None:
        if self._head:
            head, self._head = bytes(self._head), bytearray()
            self._pid_seen.set()
            self._feed("stdout", head)
        channel = self._channel
        if (
            channel is not None
            and self._lost is None
            and self._killed_with is None
            and (not channel.exit_status_ready() or channel.exit_status == -1)
            and self._connection is not None
            and not self._connection.alive
        ):
            self._lost = self._connection.lost_error()
        with self._cond:
            self._ended.set()
            self._cond.notify_all()
        if channel is not None:
            channel.close()
        self._release()

    def _write_loop(self) -> None:
        channel = self._channel
        assert channel is not None
        try:
            while not self._ended.is_set():
                try:
                    item = self._stdin.get(timeout=0.5)
                except queue.Empty:
                    continue
                if item is None:
                    channel.shutdown_write()
                    return
                channel.sendall(item)
        except (OSError, EOFError, paramiko.SSHException):
            return  # the channel closed: the reader reports why

    def send(self, data: bytes | str) -> None:
        """Queue ``data`` for the command's stdin (``stdin_open=True`` pipes only).

        Raises:
            ValueError: stdin is not open (not requested, or closed).
        """
        if not self._stdin_open or self._writer is None:
            raise ValueError("stdin is not open: create the Pipe with stdin_open=True and launch it")
        self._stdin.put(data.encode() if isinstance(data, str) else data)

    def close_stdin(self) -> None:
        """Send end-of-file to the command's stdin (after what :meth:`send` queued)."""
        if self._stdin_open and self._writer is not None:
            self._stdin_open = False
            self._stdin.put(None)

    def readline(self, timeout: float | None = None, *, stream: Stream = "stdout") -> bytes:
        """The next line of ``stream`` (with its newline), ``b""`` once the stream ended.

        Lines returned here are still part of the output in the result.

        Raises:
            ResultTimeoutError: no full line arrived within ``timeout`` seconds.
            ValueError: output is not captured (``capture=False``).
        """
        if not self._capture:
            raise ValueError("readline needs a pipe with capture=True")
        self._require_launched()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                buffer, position = self._buffers[stream], self._positions[stream]
                end = buffer.find(b"\n", position)
                if end >= 0 or self._ended.is_set():
                    stop = end + 1 if end >= 0 else len(buffer)
                    self._positions[stream] = stop
                    return bytes(buffer[position:stop])
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise ResultTimeoutError(
                        f"{self.profile.address}: no line on {stream} of {self.command!r} in {timeout:g} s"
                    )
                self._cond.wait(1.0 if remaining is None else min(remaining, 1.0))

    @property
    def stdout(self) -> bytes:
        """The captured stdout so far."""
        with self._cond:
            return bytes(self._buffers["stdout"])

    @property
    def stderr(self) -> bytes:
        """The captured stderr so far."""
        with self._cond:
            return bytes(self._buffers["stderr"])

    # -- results and state ------------------------------------------------------------------

    def response(self, timeout: float | None = None) -> CommandResult:
        """Wait at most ``timeout`` seconds for the command to end; return its result.

        Raises:
            ResultTimeoutError: still running after ``timeout`` (it goes on).
            ConnectionLostError: the ssh connection dropped before the command ended.
        """
        self._require_launched()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended.wait(
            1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
        ):
            if deadline is not None and time.monotonic() >= deadline:
                raise ResultTimeoutError(
                    f"{self.profile.address}: {self.command!r} still running after {timeout:g} s"
                )
        if self._reader is not None:
            self._reader.join(_JOIN_TIMEOUT)
        if self._lost is not None:
            raise self._lost
        if self._callback_error is not None:
            raise self._callback_error
        channel = self._channel
        status = channel.exit_status if channel is not None else -1
        if status == -1 and self._killed_with is not None:
            status = -self._killed_with
        return self._result(status, self.stdout, self.stderr)

    def running(self) -> bool:
        """Whether the command was launched and has not ended."""
        return self._launched and not self._ended.is_set()

    def kill(self, sig: int = signal.SIGTERM, grace: float = _KILL_GRACE) -> None:
        """Signal the command's remote process group, then SIGKILL it if it outlives ``grace`` seconds.

        Harmless if it has ended. Returns once the command is gone, the channel
        closed and the pipe's threads joined.
        """
        if not self._launched:
            return
        pid = self._remote_pid
        connection = self._connection
        if not self._ended.is_set() and pid is not None and connection is not None:
            self._killed_with = int(sig)  # before the signal lands, for the reader to see
            try:
                # A handle of its own: the reader releases the pipe's handle as soon as the
                # command dies, which must not cut this kill command short.
                with connection.share() as control:
                    status, _, _ = run_script(
                        control, kill_script(pid, int(sig), grace), timeout=grace + 30.0
                    )
            except (ConnectionLostError, ResultTimeoutError):
                status = 0  # the connection is gone: nothing can reach the remote process now
            self._note_kill(status, sig)
            self._ended.wait(_JOIN_TIMEOUT)
        if self._channel is not None:
            self._channel.close()
        for thread in (self._reader, self._writer):
            if thread is not None and thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT)
        self._release()

    def _state(self) -> str:
        return "running" if not self._ended.is_set() else "ended"

"""``Pipe``: a command on a remote host, over an ssh session channel.

How a command runs. The remote login shell gets a short script built only
from quoted pieces (``shlex.quote`` / ``shlex.join``), never by pasting user
text into shell code:

- foreground (the default): ``printf 'MANYMAP-PID-<nonce> %s\\n' "$$"``, then
  ``cd`` / ``export`` lines, then ``exec <command>``. sshd makes the session's
  shell a session and process-group leader, so the printed pid is the
  command's pid *and* its process group: :meth:`Pipe.kill` signals the whole
  group. A reader thread takes stdout / stderr off the channel as they
  arrive (the pid line is stripped), feeds the callbacks and the buffers
  that :meth:`Pipe.readline` and :meth:`Pipe.response` read. A writer
  thread feeds stdin when there is input. The process lives as long as the
  channel: when the ssh connection goes, its stdin sees end-of-file.
- background: ``setsid <command> </dev/null >LOG 2>&1 &``, then the pid of
  that new session is printed and the ssh session ends. The process keeps
  running on its own; :meth:`Pipe.running`, :meth:`Pipe.response` and
  :meth:`Pipe.kill` reach it through new short commands on the same (shared)
  ssh connection.
"""

from __future__ import annotations

import math
import os
import queue
import re
import secrets
import selectors
import shlex
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import paramiko

from manymap.launcher import AbstractLauncher, ConnectionLostError, ResultTimeoutError

from ._connection import Connection, connect
from ._errors import RemoteCommandError
from ._hosts import HostProfile, resolve

__all__ = ["CommandResult", "Pipe", "run_script"]

Stream = Literal["stdout", "stderr"]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHUNK = 65536
_PID_SEARCH_LIMIT = 1 << 16
_KILL_GRACE = 3.0
_JOIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class CommandResult:
    """What a remote command left: exit status and output.

    Attributes:
        command: the command as sent (shell-quoted).
        host: the host it ran on.
        port: the ssh port.
        returncode: its exit status; negative when it was killed by a signal (the
            signal number when :meth:`Pipe.kill` sent it, -1 when ssh did not say);
            ``None`` for a background command, whose status nobody collects.
        stdout: everything it wrote to stdout (empty when not captured).
        stderr: everything it wrote to stderr (empty when not captured).
        pid: its remote pid.
    """

    command: str
    host: str
    port: int
    returncode: int | None
    stdout: bytes
    stderr: bytes
    pid: int | None

    @property
    def stdout_text(self) -> str:
        """stdout decoded as UTF-8 (undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        """stderr decoded as UTF-8 (undecodable bytes replaced)."""
        return self.stderr.decode("utf-8", "replace")

    def check(self) -> CommandResult:
        """Return ``self`` if the command succeeded (status 0, or unknown for a background one).

        Raises:
            RemoteCommandError: it exited with another status or was killed.
        """
        if self.returncode not in (0, None):
            assert self.returncode is not None
            raise RemoteCommandError(
                self.returncode, self.command, self.stdout, self.stderr, host=self.host, port=self.port
            )
        return self


def _command_text(command: str | Sequence[str]) -> str:
    if isinstance(command, str):
        if not command.strip():
            raise ValueError("empty command")
        return command
    argv = [os.fspath(arg) for arg in command]
    if not argv:
        raise ValueError("empty command")
    return shlex.join(argv)


def _prelude(cwd: str | None, env: Mapping[str, str] | None) -> str:
    lines = []
    if cwd is not None:
        lines.append(f"cd {shlex.quote(cwd)} || exit 1")
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key):
            raise ValueError(f"not an environment variable name: {key!r}")
        lines.append(f"export {key}={shlex.quote(str(value))}")
    return "".join(line + "\n" for line in lines)


def run_script(
    connection: Connection, script: str, *, timeout: float, stdin: bytes | None = None
) -> tuple[int, bytes, bytes]:
    """Run a short shell script on a new session of ``connection``; ``(status, stdout, stderr)``.

    Meant for small outputs (control commands); waits at most ``timeout`` seconds.

    Raises:
        ResultTimeoutError: it did not finish in time (the channel is closed).
        ConnectionLostError: the connection is down or dropped meanwhile.
    """
    profile = connection.profile
    channel = connection.open_session(timeout=min(timeout, profile.connect_timeout))
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    waiter = selectors.DefaultSelector()  # no descriptor limit, unlike select()
    try:
        channel.exec_command(script)
        if stdin:
            channel.sendall(stdin)
        channel.shutdown_write()
        waiter.register(channel, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeoutError(
                    f"{profile.address}: remote command did not finish within {timeout:g} s"
                )
            waiter.select(min(remaining, 1.0))
            while channel.recv_ready():
                out += channel.recv(_CHUNK)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(_CHUNK)
            if channel.closed and not channel.recv_ready() and not channel.recv_stderr_ready():
                break
            if channel.eof_received and not channel.recv_ready() and not channel.recv_stderr_ready():
                channel.status_event.wait(min(remaining, 0.05))
    except (OSError, EOFError, paramiko.SSHException) as error:
        raise ConnectionLostError(
            f"connection lost running a remote command: {error}", host=profile.hostname, port=profile.port
        ) from None
    finally:
        waiter.close()
        channel.close()
    if (not channel.exit_status_ready() or channel.exit_status == -1) and not connection.alive:
        raise connection.lost_error()
    return channel.exit_status, bytes(out), bytes(err)


# POSIX sh functions for the control commands of remote processes. A process that
# ended is a zombie until its parent reaps it, and a detached one's parent is init,
# which may take its time: ``kill -0`` would call a zombie alive, so where /proc
# exists a process counts as alive only if its state is not Z.
_SHELL_FUNCTIONS = r"""_mm_alive() {
  if [ -r "/proc/$1/stat" ]; then
    { read -r _mm_line < "/proc/$1/stat"; } 2>/dev/null || return 1
    set -- ${_mm_line##*) }
    [ "$1" != Z ]
  elif [ -d /proc/self ]; then
    return 1
  else
    kill -0 "$1" 2>/dev/null
  fi
}
_mm_group_alive() {
  _mm_g=$1
  if [ -d /proc/self ]; then
    for _mm_f in /proc/[0-9]*/stat; do
      { read -r _mm_line < "$_mm_f"; } 2>/dev/null || continue
      set -- ${_mm_line##*) }
      [ "$1" != Z ] && [ "$3" = "$_mm_g" ] && return 0
    done
    return 1
  fi
  kill -0 -"$_mm_g" 2>/dev/null
}
"""


def _kill_script(pid: int, sig: int, grace: float) -> str:
    """Signal process group ``pid`` (or the process, if it leads none); SIGKILL what outlives ``grace``.

    Exits 0 once every process of the group is gone, 9 if SIGKILL was needed,
    2 if nothing was left to signal. No ``--`` after ``kill -SIG``: dash refuses it.
    """
    rounds = max(1, math.ceil(grace / 0.1))
    return (
        _SHELL_FUNCTIONS
        + f"_mm_alive {pid} || _mm_group_alive {pid} || exit 2\n"
        + f"kill -{sig} -{pid} 2>/dev/null || kill -{sig} {pid} 2>/dev/null || exit 2\n"
        + "i=0\n"
        + f"while _mm_group_alive {pid} || _mm_alive {pid}; do\n"
        + "  i=$((i+1))\n"
        + f"  if [ $i -ge {rounds} ]; then\n"
        + f"    kill -9 -{pid} 2>/dev/null; kill -9 {pid} 2>/dev/null; exit 9\n"
        + "  fi\n"
        + "  sleep 0.1\n"
        + "done\n"
        + "exit 0\n"
    )


class Pipe(AbstractLauncher[CommandResult]):
    """Run a command on a remote host over ssh; an :class:`~manymap.launcher.AbstractLauncher`.

    Args:
        host: a host spec, ssh_config name, :class:`HostProfile` or :class:`Connection`.
        command: an argv list (each item quoted for the remote shell: nothing
            in it is ever interpreted by the shell), or a string of shell code
            run as written (for pipelines and redirections that you write yourself).
        env: environment variables to set for the command (names are checked, values quoted).
        cwd: remote directory to run in (relative to the login directory).
        input: bytes (or text, sent as UTF-8) written to the command's stdin, then end-of-file.
        stdin_open: keep stdin open after ``input`` for :meth:`send`, until :meth:`close_stdin`.
        background: detach the command: it keeps running after the ssh session ends,
            in its own session and process group, output to ``log``; its exit status is not kept.
        log: remote file for a background command's stdout and stderr (default ``/dev/null``).
        capture: keep stdout and stderr in memory for :meth:`readline` and the result
            (default); ``False`` only feeds the callbacks.
        on_stdout: called with each chunk of stdout as it arrives (on the reader thread).
        on_stderr: called with each chunk of stderr as it arrives.
        ssh_config: the ssh_config to resolve ``host`` with.
        name: a label for messages.
        **overrides: keyword arguments of :func:`~manymap.secure.resolve` (``user``, ``port``,
            ``through``, ``identity_file``, ``accept_new_host_keys``, ``connect_timeout``...).

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
        background: bool = False,
        log: str | None = None,
        capture: bool = True,
        on_stdout: Callable[[bytes], object] | None = None,
        on_stderr: Callable[[bytes], object] | None = None,
        ssh_config: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **overrides: Any,
    ) -> None:
        self.command = _command_text(command)
        super().__init__(name or self.command[:60])
        self._host = host
        if isinstance(host, Connection):
            if overrides or ssh_config is not None:
                raise ValueError("host is a Connection: give no ssh_config or resolve options")
            self.profile = host.profile
        else:
            self.profile = resolve(host, ssh_config=ssh_config, **overrides)
        if background and (input is not None or stdin_open):
            raise ValueError("a background command has no stdin (input / stdin_open)")
        if log is not None and not background:
            raise ValueError("log is for background commands; a foreground command's output comes back")
        self._argv_form = not isinstance(command, str)
        self._prelude = _prelude(cwd, env)
        self._input = input.encode() if isinstance(input, str) else input
        self._stdin_open = stdin_open
        self.background = background
        self._log = log or "/dev/null"
        self._capture = capture
        self._callbacks: dict[Stream, Callable[[bytes], object] | None] = {
            "stdout": on_stdout,
            "stderr": on_stderr,
        }
        self._nonce = secrets.token_hex(4)
        self._marker = re.compile(rb"MANYMAP-PID-" + self._nonce.encode() + rb" (\d+)\r?\n")
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._buffers: dict[Stream, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self._positions: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        self._head = bytearray()  # stdout until the pid line is found
        self._remote_pid: int | None = None
        self._pid_seen = threading.Event()
        self._ended = threading.Event()
        self._launched = False
        self._killed_with: int | None = None
        self._connection: Connection | None = None
        self._channel: paramiko.Channel | None = None
        self._reader: threading.Thread | None = None
        self._writer: threading.Thread | None = None
        self._stdin: queue.Queue[bytes | None] = queue.Queue()
        self._callback_error: BaseException | None = None
        self._lost: ConnectionLostError | None = None

    # -- script ---------------------------------------------------------------------------

    def _script(self) -> str:
        mark = f"printf 'MANYMAP-PID-{self._nonce} %s\\n'"
        if not self.background:
            body = f"exec {self.command}" if self._argv_form else self.command
            return f'{mark} "$$"\n{self._prelude}{body}\n'
        target = self.command if self._argv_form else f"/bin/sh -c {shlex.quote(self.command)}"
        # Wait (bounded) until setsid has made the new process group, so that a kill right
        # after launch reaches the whole group.
        return (
            f"{self._prelude}"
            f"setsid {target} </dev/null >{shlex.quote(self._log)} 2>&1 &\n"
            "p=$!\n"
            "i=0\n"
            'while ! kill -0 -"$p" 2>/dev/null && kill -0 "$p" 2>/dev/null && [ $i -lt 200 ]; do\n'
            "  i=$((i+1)); sleep 0.01\n"
            "done\n"
            f'{mark} "$p"\n'
        )

    # -- launcher -----------------------------------------------------------------------

    def launch(self) -> None:
        """Start the command and return once its remote pid is known.

        Raises:
            ConnectError, HostKeyError, AuthenticationError: the connection failed.
            ConnectionLostError: the connection dropped before the command started.
            RuntimeError: the pipe was already launched.
        """
        if self._launched:
            raise RuntimeError(f"{self!r} was already launched")
        self._launched = True
        connection = connect(self._host) if isinstance(self._host, Connection) else connect(self.profile)
        self._connection = connection
        try:
            if self.background:
                self._launch_background(connection)
            else:
                self._launch_foreground(connection)
        except BaseException:
            self._ended.set()
            self._release()
            raise

    def _launch_background(self, connection: Connection) -> None:
        timeout = max(30.0, self.profile.connect_timeout)
        status, out, err = run_script(connection, self._script(), timeout=timeout)
        match = self._marker.search(out)
        if match is None:
            raise RemoteCommandError(
                status, self.command, out, err, host=self.profile.hostname, port=self.profile.port
            )
        self._remote_pid = int(match[1])
        self._pid_seen.set()
        # The process runs on its own now. The pipe keeps its connection handle for
        # running(), response() and kill() until the process is known to be gone, or
        # until detach().

    def _launch_foreground(self, connection: Connection) -> None:
        channel = connection.open_session()
        self._channel = channel
        try:
            channel.exec_command(self._script())
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
            ValueError: output is not captured (``capture=False``) or the pipe is in the background.
        """
        if not self._capture or self.background:
            raise ValueError("readline needs a foreground pipe with capture=True")
        if not self._launched:
            raise RuntimeError(f"{self!r} is not launched")
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

        For a background command, wait until its remote process is gone.

        Raises:
            ResultTimeoutError: still running after ``timeout`` (it goes on).
            ConnectionLostError: the ssh connection dropped before the command ended.
        """
        if not self._launched:
            raise RuntimeError(f"{self!r} is not launched")
        if self.background:
            return self._wait_background(timeout)
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
        return CommandResult(
            self.command,
            self.profile.hostname,
            self.profile.port,
            status,
            self.stdout,
            self.stderr,
            self._remote_pid,
        )

    def _wait_background(self, timeout: float | None) -> CommandResult:
        pid = self._remote_pid
        assert pid is not None
        rounds = "" if timeout is None else f' && [ "$i" -lt {max(1, math.ceil(timeout / 0.1))} ]'
        script = (
            f"{_SHELL_FUNCTIONS}i=0\nwhile _mm_alive {pid}{rounds}; do i=$((i+1)); sleep 0.1; done\n"
            f"_mm_alive {pid} && exit 3\nexit 0\n"
        )
        with self._control() as control:
            status, _, _ = run_script(
                control, script, timeout=(timeout + 30.0) if timeout is not None else 365 * 86400.0
            )
        if status == 3:
            raise ResultTimeoutError(
                f"{self.profile.address}: background {self.command!r} (pid {pid}) runs past {timeout:g} s"
            )
        self._release()
        returncode = -self._killed_with if self._killed_with is not None else None
        return CommandResult(
            self.command, self.profile.hostname, self.profile.port, returncode, b"", b"", pid
        )

    def running(self) -> bool:
        """Whether the command was launched and has not ended (for a background one: asks the host)."""
        if not self._launched:
            return False
        if not self.background:
            return not self._ended.is_set()
        if self._remote_pid is None:
            return False
        try:
            with self._control() as control:
                status, _, _ = run_script(
                    control, f"{_SHELL_FUNCTIONS}_mm_alive {self._remote_pid}", timeout=30.0
                )
        except ConnectionLostError:
            return False
        return status == 0

    def pid(self) -> int | None:
        """The command's pid on the remote host (also its process group); ``None`` before launch."""
        return self._remote_pid

    @property
    def connection(self) -> Connection | None:
        """The connection handle this pipe holds while it runs."""
        return self._connection

    def kill(self, sig: int = signal.SIGTERM, grace: float = _KILL_GRACE) -> None:
        """Signal the command's remote process group, then SIGKILL it if it outlives ``grace`` seconds.

        Harmless if it has ended. Returns once the command is gone, the channel
        closed and the pipe's threads joined.
        """
        if not self._launched:
            return
        pid = self._remote_pid
        if self.background:
            if pid is not None:
                with self._control() as control:
                    status, _, _ = run_script(
                        control, _kill_script(pid, int(sig), grace), timeout=grace + 30.0
                    )
                self._note_kill(status, sig)
            self._release()
            return
        connection = self._connection
        if not self._ended.is_set() and pid is not None and connection is not None:
            self._killed_with = int(sig)  # before the signal lands, for the reader to see
            try:
                # A handle of its own: the reader releases the pipe's handle as soon as the
                # command dies, which must not cut this kill command short.
                with connection.share() as control:
                    status, _, _ = run_script(
                        control, _kill_script(pid, int(sig), grace), timeout=grace + 30.0
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

    def _note_kill(self, status: int, sig: int) -> None:
        """Record which signal ended the command, from the kill script's status."""
        if status == 2:  # nothing was left to signal: it had ended by itself
            self._killed_with = None
        elif status == 9:
            self._killed_with = int(signal.SIGKILL)
        else:
            self._killed_with = int(sig)

    def _control(self) -> Connection:
        """A handle for one control command of a background pipe (on the pipe's connection if it is up)."""
        connection = self._connection
        if connection is not None and connection.alive:
            try:
                return connection.share()
            except (ConnectionLostError, ValueError):
                pass
        return connect(self.profile)

    def detach(self) -> None:
        """Let a background command go: release the ssh connection, leave the process running.

        ``running()``, ``response()`` and ``kill()`` still work afterwards (they reconnect).
        """
        if not self.background:
            raise ValueError(
                "only a background command can be detached; a foreground one lives with its channel"
            )
        self._release()

    def _release(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def __repr__(self) -> str:
        if not self._launched:
            state = "idle"
        elif self.background:
            state = f"background pid {self._remote_pid}"
        else:
            state = "running" if not self._ended.is_set() else "ended"
        return f"<Pipe {self.name!r} on {self.profile.address} {state}>"

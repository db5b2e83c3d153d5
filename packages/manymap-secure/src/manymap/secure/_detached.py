"""``DetachedCommand``: a command started on a remote host that outlives the ssh session.

The launch runs one short script (:func:`~._shell.detached_script`):
``setsid <command> </dev/null >LOG 2>&1 &``, then the pid of that new session
is printed and the ssh session ends. The process keeps running on its own, in
its own session and process group; :meth:`DetachedCommand.running`,
:meth:`DetachedCommand.response` and :meth:`DetachedCommand.kill` reach it
through new short commands on the same (shared) ssh connection, or on a new
one after :meth:`DetachedCommand.detach`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence
from typing import Any

from manymap.launcher import ConnectionLostError, ResultTimeoutError

from ._command import CommandResult, RemoteCommand
from ._connection import Connection, connect
from ._errors import RemoteCommandError
from ._hosts import HostProfile
from ._shell import alive_script, detached_script, kill_script, run_script, wait_gone_script

__all__ = ["DetachedCommand"]

_KILL_GRACE = 3.0
_FOREVER = 365 * 86400.0


class DetachedCommand(RemoteCommand):
    """Start a command on a remote host, detached: it keeps running after the ssh session ends.

    An :class:`~manymap.launcher.AbstractLauncher`. The command runs in its own
    session and process group, output to ``log``; its exit status is not kept
    (the result's ``returncode`` is ``None``, or minus the signal that
    :meth:`kill` sent). ``pid()`` gives its remote pid, ``connection`` the
    connection handle it holds until it is known gone or :meth:`detach` is called.

    Args:
        host: a host spec, ssh_config name, :class:`HostProfile` or :class:`Connection`.
        command: an argv list (each item quoted for the remote shell), or a string
            of shell code run as written (by ``/bin/sh -c``).
        env: environment variables to set for the command (names are checked, values quoted).
        cwd: remote directory to run in (relative to the login directory).
        log: remote file for the command's stdout and stderr (default ``/dev/null``).
        ssh_config: the ssh_config to resolve ``host`` with.
        name: a label for messages.
        **overrides: keyword arguments of :func:`~manymap.secure.resolve` (``user``, ``port``,
            ``through``, ``identity_file``, ``accept_new_host_keys``, ``connect_timeout``...).

    Example:
        >>> server = DetachedCommand("node7", ["python3", "-m", "http.server"])  # doctest: +SKIP
        >>> server.launch()  # doctest: +SKIP
        >>> server.kill()  # doctest: +SKIP
    """

    def __init__(
        self,
        host: str | HostProfile | Connection,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        log: str | None = None,
        ssh_config: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **overrides: Any,
    ) -> None:
        for word in ("input", "stdin_open", "capture", "on_stdout", "on_stderr", "background"):
            if word in overrides:
                raise TypeError(
                    f"DetachedCommand() takes no {word}=: a detached command has no stdin and its "
                    "output goes to log=; use manymap.secure.Pipe for a command you talk to"
                )
        super().__init__(
            host, command, env=env, cwd=cwd, ssh_config=ssh_config, name=name, overrides=overrides
        )
        self.log = log or "/dev/null"

    def launch(self) -> None:
        """Start the command and return once its remote pid is known (its session started).

        Raises:
            ConnectError, HostKeyError, AuthenticationError: the connection failed.
            ConnectionLostError: the connection dropped before the command started.
            RemoteCommandError: the remote shell did not start it (it says why).
            RuntimeError: the command was already launched.
        """
        connection = self._connect()
        try:
            script = detached_script(self._mark, self._prelude, self.command, self._argv_form, self.log)
            status, out, err = run_script(connection, script, timeout=max(30.0, self.profile.connect_timeout))
            match = self._marker.search(out)
            if match is None:
                raise RemoteCommandError(
                    status, self.command, out, err, host=self.profile.hostname, port=self.profile.port
                )
            self._remote_pid = int(match[1])
        except BaseException:
            self._release()
            raise
        # The process runs on its own now. The connection handle stays for running(),
        # response() and kill() until the process is known to be gone, or until detach().

    def response(self, timeout: float | None = None) -> CommandResult:
        """Wait at most ``timeout`` seconds until the remote process is gone; return the result.

        Raises:
            ResultTimeoutError: still running after ``timeout`` (it goes on).
            ConnectionLostError: the host cannot be reached to ask.
        """
        self._require_launched()
        pid = self._remote_pid
        assert pid is not None
        limit = (timeout + 30.0) if timeout is not None else _FOREVER
        with self._control() as control:
            status, _, _ = run_script(control, wait_gone_script(pid, timeout), timeout=limit)
        if status == 3:
            raise ResultTimeoutError(
                f"{self.profile.address}: detached {self.command!r} (pid {pid}) runs past {timeout:g} s"
            )
        self._release()
        return self._result(-self._killed_with if self._killed_with is not None else None, b"", b"")

    def running(self) -> bool:
        """Whether the command was launched and its process is alive (asks the host)."""
        if not self._launched or self._remote_pid is None:
            return False
        try:
            with self._control() as control:
                status, _, _ = run_script(control, alive_script(self._remote_pid), timeout=30.0)
        except ConnectionLostError:
            return False
        return status == 0

    def kill(self, sig: int = signal.SIGTERM, grace: float = _KILL_GRACE) -> None:
        """Signal the command's remote process group, then SIGKILL it if it outlives ``grace`` seconds.

        Harmless if it has ended. Returns once the group is gone; the connection
        handle is released.
        """
        if not self._launched:
            return
        pid = self._remote_pid
        if pid is not None:
            with self._control() as control:
                status, _, _ = run_script(control, kill_script(pid, int(sig), grace), timeout=grace + 30.0)
            self._note_kill(status, sig)
        self._release()

    def detach(self) -> None:
        """Let the command go: release the ssh connection, leave the process running.

        :meth:`running`, :meth:`response` and :meth:`kill` still work afterwards (they reconnect).
        """
        self._release()

    def _control(self) -> Connection:
        """A handle for one control command (on the command's connection if it is up)."""
        connection = self._connection
        if connection is not None and connection.alive:
            try:
                return connection.share()
            except (ConnectionLostError, ValueError):
                pass
        return connect(self.profile)

    def _state(self) -> str:
        return f"detached pid {self._remote_pid}"

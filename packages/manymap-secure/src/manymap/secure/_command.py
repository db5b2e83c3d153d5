"""What :class:`Pipe` and :class:`DetachedCommand` share: the result, the target host, the pid.

``CommandResult`` is what a remote command left. ``RemoteCommand`` is the base
of both launchers: it resolves the host once at construction, holds the
connection handle while the command runs, and remembers which signal a kill
sent. How the command runs (on a live channel, or detached) is each subclass's.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from manymap.launcher import AbstractLauncher

from ._connection import Connection, connect
from ._errors import RemoteCommandError
from ._hosts import HostProfile, resolve
from ._shell import command_text, pid_marker, prelude

__all__ = ["CommandResult", "RemoteCommand"]


@dataclass(frozen=True)
class CommandResult:
    """What a remote command left: exit status and output.

    Attributes:
        command: the command as sent (shell-quoted).
        host: the host it ran on.
        port: the ssh port.
        returncode: its exit status; negative when it was killed by a signal (the
            signal number when ``kill()`` sent it, -1 when ssh did not say);
            ``None`` for a :class:`DetachedCommand`, whose status nobody collects.
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
        """Return ``self`` if the command succeeded (status 0, or unknown for a detached one).

        Raises:
            RemoteCommandError: it exited with another status or was killed.
        """
        if self.returncode not in (0, None):
            assert self.returncode is not None
            raise RemoteCommandError(
                self.returncode, self.command, self.stdout, self.stderr, host=self.host, port=self.port
            )
        return self


class RemoteCommand(AbstractLauncher[CommandResult]):
    """The common part of :class:`Pipe` and :class:`DetachedCommand` (not used on its own)."""

    def __init__(
        self,
        host: str | HostProfile | Connection,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None,
        cwd: str | None,
        ssh_config: str | os.PathLike[str] | None,
        name: str | None,
        overrides: dict[str, Any],
    ) -> None:
        self.command = command_text(command)
        super().__init__(name or self.command[:60])
        self._host = host
        if isinstance(host, Connection):
            if overrides or ssh_config is not None:
                raise ValueError("host is a Connection: give no ssh_config or resolve options")
            self.profile = host.profile
        else:
            self.profile = resolve(host, ssh_config=ssh_config, **overrides)
        self._argv_form = not isinstance(command, str)
        self._prelude = prelude(cwd, env)
        self._mark, self._marker = pid_marker(secrets.token_hex(4))
        self._lock = threading.Lock()
        self._remote_pid: int | None = None
        self._launched = False
        self._killed_with: int | None = None
        self._connection: Connection | None = None

    def _connect(self) -> Connection:
        """Mark the command launched (once only) and take a connection handle for it."""
        if self._launched:
            raise RuntimeError(f"{self!r} was already launched")
        self._launched = True
        connection = connect(self._host) if isinstance(self._host, Connection) else connect(self.profile)
        self._connection = connection
        return connection

    def _require_launched(self) -> None:
        if not self._launched:
            raise RuntimeError(f"{self!r} is not launched")

    def pid(self) -> int | None:
        """The command's pid on the remote host (also its process group); ``None`` before launch."""
        return self._remote_pid

    @property
    def connection(self) -> Connection | None:
        """The connection handle this command holds while it runs."""
        return self._connection

    def _note_kill(self, status: int, sig: int) -> None:
        """Record which signal ended the command, from the kill script's status."""
        if status == 2:  # nothing was left to signal: it had ended by itself
            self._killed_with = None
        elif status == 9:
            self._killed_with = int(signal.SIGKILL)
        else:
            self._killed_with = int(sig)

    def _result(self, returncode: int | None, stdout: bytes, stderr: bytes) -> CommandResult:
        return CommandResult(
            self.command,
            self.profile.hostname,
            self.profile.port,
            returncode,
            stdout,
            stderr,
            self._remote_pid,
        )

    def _release(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _state(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "idle" if not self._launched else self._state()
        return f"<{type(self).__name__} {self.name!r} on {self.profile.address} {state}>"

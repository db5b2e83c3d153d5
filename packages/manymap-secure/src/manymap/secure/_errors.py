"""The errors of manymap.secure beyond the launcher's (which are re-exported from the package).

Like the launcher's remote errors, each names the host and port it is about
(``host:port: message``) and keeps them as attributes.
"""

from __future__ import annotations

import subprocess

from manymap.launcher import ManymapError

__all__ = ["ConnectError", "CopyError", "RemoteCommandError", "SourceNotFoundError"]


def _prefixed(message: str, host: str | None, port: int | None) -> str:
    if host is None:
        return message
    where = f"{host}:{port}" if port is not None else host
    return f"{where}: {message}"


class ConnectError(ManymapError, ConnectionError):
    """An ssh server could not be reached: refused, unreachable, timed out, or no ssh handshake.

    Attributes:
        host: the host that was dialled.
        port: its port.
    """

    def __init__(self, message: str, *, host: str | None = None, port: int | None = None) -> None:
        super().__init__(_prefixed(message, host, port))
        self.host = host
        self.port = port

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), str(self), self.host, self.port))


class CopyError(ManymapError, OSError):
    """A file copy failed (the text names the host, port and path).

    Attributes:
        host: the remote host of the copy.
        port: its port.
        path: the path that failed, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        port: int | None = None,
        path: str | None = None,
        errno: int | None = None,
    ) -> None:
        text = _prefixed(message, host, port)
        if errno is not None:
            super().__init__(errno, text)
        else:
            super().__init__(text)
        self.host = host
        self.port = port
        self.path = path

    def __str__(self) -> str:
        return str(self.strerror) if self.strerror is not None else super().__str__()

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_copy, (type(self), str(self), self.host, self.port, self.path, self.errno))


class SourceNotFoundError(CopyError, FileNotFoundError):
    """The source of a copy does not exist, on the local or the remote side."""


class RemoteCommandError(ManymapError, subprocess.CalledProcessError):
    """A remote command exited with a non-zero status (from ``CommandResult.check()``).

    It is a ``subprocess.CalledProcessError`` too, so its ``returncode``,
    ``cmd``, ``output`` / ``stdout`` and ``stderr`` are where code written for
    ``subprocess.run(check=True)`` looks.

    Attributes:
        host: the host the command ran on.
        port: its ssh port.
    """

    def __init__(
        self,
        returncode: int,
        cmd: str,
        output: bytes = b"",
        stderr: bytes = b"",
        *,
        host: str | None = None,
        port: int | None = None,
    ) -> None:
        subprocess.CalledProcessError.__init__(self, returncode, cmd, output, stderr)
        self.host = host
        self.port = port

    def __str__(self) -> str:
        tail = self.stderr.decode("utf-8", "replace").strip()[-500:] if self.stderr else ""
        text = f"remote command {self.cmd!r} exited with status {self.returncode}"
        return _prefixed(text + (f": {tail}" if tail else ""), self.host, self.port)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_command,
            (type(self), self.returncode, self.cmd, self.output, self.stderr, self.host, self.port),
        )


def _rebuild(cls: type[ConnectError], text: str, host: str | None, port: int | None) -> ConnectError:
    error = cls(text)
    error.host, error.port = host, port
    return error


def _rebuild_copy(
    cls: type[CopyError], text: str, host: str | None, port: int | None, path: str | None, errno: int | None
) -> CopyError:
    error = cls(text, errno=errno, path=path)
    error.host, error.port = host, port
    return error


def _rebuild_command(
    cls: type[RemoteCommandError],
    returncode: int,
    cmd: str,
    output: bytes,
    stderr: bytes,
    host: str | None,
    port: int | None,
) -> RemoteCommandError:
    return cls(returncode, cmd, output, stderr, host=host, port=port)

"""manymap.secure's errors: types, host and port in the text, pickling."""

from __future__ import annotations

import errno
import pickle
import subprocess

import pytest

from manymap.launcher import ManymapError
from manymap.secure import (
    AuthenticationError,
    ConnectError,
    ConnectionLostError,
    CopyError,
    HostKeyError,
    RemoteCommandError,
    SourceNotFoundError,
    TunnelError,
)


def test_connect_error() -> None:
    error = ConnectError("refused", host="h", port=22)
    assert isinstance(error, ManymapError)
    assert isinstance(error, ConnectionError)
    assert str(error) == "h:22: refused"
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is ConnectError
    assert str(again) == "h:22: refused"
    assert again.port == 22


def test_copy_errors() -> None:
    error = SourceNotFoundError("no such file: /x", host="h", port=22, path="/x", errno=errno.ENOENT)
    assert isinstance(error, CopyError)
    assert isinstance(error, FileNotFoundError)
    assert isinstance(error, ManymapError)
    assert str(error) == "h:22: no such file: /x"
    assert error.errno == errno.ENOENT
    assert error.path == "/x"
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is SourceNotFoundError
    assert str(again) == str(error)
    assert again.errno == errno.ENOENT
    local = CopyError("cannot read /y")
    assert str(local) == "cannot read /y"


def test_remote_command_error() -> None:
    error = RemoteCommandError(3, "false", b"out", b"it broke\n", host="h", port=2222)
    assert isinstance(error, subprocess.CalledProcessError)
    assert isinstance(error, ManymapError)
    assert (error.returncode, error.cmd, error.stdout, error.stderr) == (3, "false", b"out", b"it broke\n")
    assert str(error) == "h:2222: remote command 'false' exited with status 3: it broke"
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error)
    assert again.returncode == 3


@pytest.mark.parametrize("cls", [AuthenticationError, HostKeyError, ConnectionLostError, TunnelError])
def test_launcher_errors_are_reexported(cls: type[ManymapError]) -> None:
    error = cls("x", host="h", port=1)  # type: ignore[call-arg]
    assert str(error) == "h:1: x"

"""pathos.core's commands on manymap.secure: ``execute``, ``copy``, ``kill``, ``randomport``, ``connect``.

Each runs on this machine (``host=None``) or on a remote one over ssh; a
host is a name of the :mod:`manymap.hosts` registry, an ssh spec or a
:class:`~manymap.secure.HostProfile` (:data:`HostLike`), which :func:`resolve_host`
turns into what manymap.secure takes.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from manymap import hosts as _hosts
from manymap.core._pipe import LocalPipe
from manymap.launcher import ResultTimeoutError
from manymap.portpicker import pick_port
from manymap.secure import (
    CommandResult,
    Copier,
    CopyResult,
    DetachedCommand,
    HostProfile,
    Pipe,
    RemotePath,
    Tunnel,
    parse_location,
    pick_remote_port,
)

__all__ = [
    "TIMEOUT",
    "HostLike",
    "check_pid",
    "connect",
    "copy",
    "execute",
    "kill",
    "randomport",
    "resolve_host",
    "run",
]

HostLike = str | HostProfile | _hosts.Host
TIMEOUT = 60.0  # seconds a helper command (ps, kill) may take on a remote host


def resolve_host(host: HostLike) -> tuple[HostProfile | str, _hosts.Host | None]:
    """A registered name (or :class:`~manymap.hosts.Host`) becomes its profile; anything else passes."""
    registered = _hosts.registry().lookup(host)
    if registered is not None:
        return registered.profile(), registered
    assert not isinstance(host, _hosts.Host)
    return host, None


def execute(
    command: str | Sequence[str],
    host: HostLike | None = None,
    bg: bool = True,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    input: bytes | str | None = None,
    log: str | None = None,
    **overrides: Any,
) -> LocalPipe | Pipe | DetachedCommand:
    """Launch ``command`` on ``host`` (this machine when ``None``); returns the running launcher.

    As ``pathos.core.execute``: the launcher is started, ``response(timeout)``
    waits for its :class:`~manymap.secure.CommandResult`, ``kill()`` stops it.

    Args:
        command: an argv list (nothing in it is interpreted by a shell), or shell code you wrote.
        host: a registered host name, an ssh spec, a profile, or ``None`` for this machine.
        bg: run in the background: detached, output to ``log`` (default ``/dev/null``);
            a remote background command outlives the ssh session. ``False`` captures the output.
        env: environment variables for the command, over a registered host's ``env``.
        cwd: the directory to run in.
        input: bytes or text for the command's stdin (foreground only).
        log: where a background command's output goes.
        **overrides: :func:`manymap.secure.resolve` options for a remote host.

    Example:
        >>> execute(["echo", "hi"], bg=False).response(30).stdout
        b'hi\\n'
    """
    if host is None:
        if overrides:
            raise TypeError(f"ssh options {sorted(overrides)} given for a local command")
        launcher: LocalPipe | Pipe | DetachedCommand = LocalPipe(
            command, env=env, cwd=cwd, input=input, background=bg, log=log if bg else None
        )
    else:
        target, registered = resolve_host(host)
        merged = {**(registered.env if registered is not None else {}), **(env or {})}
        if bg:
            if input is not None:
                raise ValueError("a background command has no stdin (input)")
            launcher = DetachedCommand(target, command, env=merged or None, cwd=cwd, log=log, **overrides)
        else:
            launcher = Pipe(target, command, env=merged or None, cwd=cwd, input=input, **overrides)
    launcher.launch()
    return launcher


def run(argv: Sequence[str], host: HostLike | None, timeout: float, **overrides: Any) -> CommandResult:
    launcher = execute(argv, host, bg=False, **overrides)
    try:
        return launcher.response(timeout)
    except ResultTimeoutError:
        launcher.kill()
        raise


def copy(
    source: str | os.PathLike[str] | RemotePath,
    destination: str | os.PathLike[str] | RemotePath,
    *,
    timeout: float | None = None,
    **options: Any,
) -> CopyResult:
    """Copy a file or directory, possibly to or from a remote host; returns once the copy is done.

    As ``pathos.core.copy``. Either side may be remote: ``host:path`` (``host`` a
    registered name, an ssh spec or ssh_config name), ``ssh://user@host:port/path``
    or a :class:`~manymap.secure.RemotePath`; with both sides local it is a plain
    local copy. An existing directory as destination receives the source under
    its own name.

    Args:
        source: what to copy.
        destination: where to.
        timeout: seconds the whole copy may take (``None``: no limit).
        **options: :class:`~manymap.secure.Copier` options (``preserve``, ``progress``,
            ``io_timeout``) and :func:`~manymap.secure.resolve` options.

    Raises:
        SourceNotFoundError, CopyError: from :class:`~manymap.secure.Copier`.
        ResultTimeoutError: not done within ``timeout`` (the copy is stopped).
    """
    src, dst = parse_location(source), parse_location(destination)
    if isinstance(src, str) and isinstance(dst, str):
        return _local_copy(src, dst)
    src, dst = _registered_location(src), _registered_location(dst)
    return Copier(src, dst, **options).run(timeout)


def _registered_location(location: RemotePath | str) -> RemotePath | str:
    if isinstance(location, RemotePath) and isinstance(location.host, str):
        registered = _hosts.registry().lookup(location.host)
        if registered is not None:
            return RemotePath(registered.profile(), location.path)
    return location


def _local_copy(source: str, destination: str) -> CopyResult:
    src, dst = Path(source).expanduser(), Path(destination).expanduser()
    if not src.exists():
        from manymap.secure import SourceNotFoundError

        raise SourceNotFoundError(f"no such file or directory: {src}")
    if dst.is_dir():
        dst = dst / src.name
    files = size = 0
    if src.is_dir():
        shutil.copytree(src, dst, dirs_exist_ok=True)
        for path in dst.rglob("*"):
            if path.is_file():
                files += 1
                size += path.stat().st_size
    else:
        shutil.copy2(src, dst)
        files, size = 1, dst.stat().st_size
    return CopyResult(str(src), str(dst), files, size)


def kill(
    pid: int,
    host: HostLike | None = None,
    sig: int = signal.SIGTERM,
    *,
    timeout: float = TIMEOUT,
    **overrides: Any,
) -> None:
    """Send ``sig`` (default SIGTERM) to process ``pid`` on ``host`` (this machine when ``None``).

    Raises:
        ProcessLookupError: no such process (locally); RemoteCommandError (remotely).
    """
    pid = check_pid(pid)
    number = int(sig)
    if host is None:
        os.kill(pid, number)
        return
    name = signal.Signals(number).name.removeprefix("SIG")
    run(["kill", "-s", name, str(pid)], host, timeout, **overrides).check()


def check_pid(pid: object) -> int:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
        raise ValueError(f"a pid is a positive integer, not {pid!r}")
    return pid


def randomport(host: HostLike | None = None, **overrides: Any) -> int:
    """A port free for TCP on 127.0.0.1 of ``host`` (this machine when ``None``)."""
    if host is None:
        return pick_port()
    target, registered = resolve_host(host)
    if registered is not None:
        overrides.setdefault("python", registered.python)
    return pick_remote_port(target, **overrides)


def connect(
    host: HostLike,
    port: int,
    through: str | HostProfile | None = None,
    *,
    remote_host: str = "127.0.0.1",
    local_port: int = 0,
    **overrides: Any,
) -> Tunnel:
    """Open a tunnel from a free local port (on 127.0.0.1) to ``port`` on ``host``; returns it launched.

    As ``pathos.core.connect``: ``tunnel.local_port`` is the local end,
    ``tunnel.kill()`` (or ``with``) closes it.

    Args:
        host: the ssh host.
        port: the port to reach, as seen from ``host``.
        through: a jump host.
        remote_host: the address to reach from ``host`` (default its loopback).
        local_port: the local port (0: a free one).
        **overrides: :class:`~manymap.secure.Tunnel` and :func:`~manymap.secure.resolve` options.
    """
    target, _ = resolve_host(host)
    if through is not None:
        overrides["through"] = through
    tunnel = Tunnel(target, port, remote_host=remote_host, local_port=local_port, **overrides)
    tunnel.launch()
    return tunnel

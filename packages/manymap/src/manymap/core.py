"""The high-level command interface of pathos.core, on manymap.secure.

``execute``, ``copy``, ``kill``, ``getpid``, ``getppid``, ``getchild``,
``randomport``, ``connect`` and ``serve`` do what their pathos.core namesakes
do, on this machine (``host=None``) or on a remote one over ssh. A host is a
name of the :mod:`manymap.hosts` registry, an ssh spec (``user@host:port``,
an ssh_config name) or a :class:`manymap.secure.HostProfile`; the remaining
keyword arguments are :func:`manymap.secure.resolve`'s (``ssh_config``,
``user``, ``port``, ``through``...).

No shell string is ever built from what you pass: commands are argv lists
(each item quoted for the remote shell), process listings are parsed in
Python rather than grepped, pids are checked to be integers. A command given
as a *string* is shell code you wrote, run as written, as in pathos.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manymap import hosts as _hosts
from manymap._rpc import require_rpc
from manymap.launcher import AbstractLauncher, ResultTimeoutError
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
    "LocalPipe",
    "Server",
    "connect",
    "copy",
    "execute",
    "getchild",
    "getpid",
    "getppid",
    "kill",
    "randomport",
    "serve",
]

HostLike = str | HostProfile | _hosts.Host
_TIMEOUT = 60.0  # seconds a helper command (ps, kill) may take on a remote host


class LocalPipe(AbstractLauncher[CommandResult]):
    """A command on this machine, with :class:`manymap.secure.Pipe`'s interface.

    Args:
        command: an argv list (run without a shell), or a string of shell code you wrote.
        env: environment variables added to this process's environment.
        cwd: the directory to run in.
        input: bytes (or text) written to stdin, then end-of-file.
        stdin_open: keep stdin open after ``input``, until :meth:`close_stdin` or :meth:`response`.
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


def _target(host: HostLike) -> tuple[HostProfile | str, _hosts.Host | None]:
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
        target, registered = _target(host)
        merged = {**(registered.env if registered is not None else {}), **(env or {})}
        if bg:
            if input is not None:
                raise ValueError("a background command has no stdin (input)")
            launcher = DetachedCommand(target, command, env=merged or None, cwd=cwd, log=log, **overrides)
        else:
            launcher = Pipe(target, command, env=merged or None, cwd=cwd, input=input, **overrides)
    launcher.launch()
    return launcher


def _run(argv: Sequence[str], host: HostLike | None, timeout: float, **overrides: Any) -> CommandResult:
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
    timeout: float = _TIMEOUT,
    **overrides: Any,
) -> None:
    """Send ``sig`` (default SIGTERM) to process ``pid`` on ``host`` (this machine when ``None``).

    Raises:
        ProcessLookupError: no such process (locally); RemoteCommandError (remotely).
    """
    pid = _check_pid(pid)
    number = int(sig)
    if host is None:
        os.kill(pid, number)
        return
    name = signal.Signals(number).name.removeprefix("SIG")
    _run(["kill", "-s", name, str(pid)], host, timeout, **overrides).check()


def _check_pid(pid: object) -> int:
    if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
        raise ValueError(f"a pid is a positive integer, not {pid!r}")
    return pid


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    pgid: int
    args: str


# A fixed script (nothing of the caller's in it): ps where there is one, else Linux's /proc.
_PS_SCRIPT = """if command -v ps >/dev/null 2>&1; then exec ps -ww -eo pid=,ppid=,pgid=,args=; fi
for d in /proc/[0-9]*; do
  s=$(cat "$d/stat" 2>/dev/null) || continue
  set -- ${s##*) }
  printf '%s %s %s %s\\n' "${d#/proc/}" "$2" "$3" "$(tr '\\000\\n' '  ' < "$d/cmdline" 2>/dev/null)"
done
"""


def _processes(host: HostLike | None, timeout: float, **overrides: Any) -> list[_Proc]:
    """Every process of ``host`` (without the lister itself): ``ps``, or ``/proc`` where there is no ps."""
    if host is None and shutil.which("ps") is None:
        return _proc_table()
    result = _run(_PS_SCRIPT, host, timeout, **overrides).check()
    found = []
    for line in result.stdout_text.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
            continue
        proc = _Proc(int(parts[0]), int(parts[1]), int(parts[2]), parts[3].strip() if len(parts) > 3 else "")
        if proc.pid != result.pid:
            found.append(proc)
    return found


def _proc_table() -> list[_Proc]:
    """This machine's processes from /proc (Linux), for machines without ``ps``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            raw = (entry / "cmdline").read_bytes().replace(b"\0", b" ").replace(b"\n", b" ")
            args = raw.decode("utf-8", "replace").strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        found.append(_Proc(int(entry.name), int(fields[1]), int(fields[2]), args))
    return found


def getpid(
    target: str | int | None = None,
    host: HostLike | None = None,
    all: bool = False,
    *,
    timeout: float = _TIMEOUT,
    **overrides: Any,
) -> int | list[int]:
    """The pid of the process whose command line contains ``target``, on ``host``.

    As ``pathos.core.getpid``: with no ``target``, this process's pid (locally)
    or, with ``all``, every pid of the host; an integer ``target`` is a pid whose
    existence is checked.

    Args:
        target: text to find in the command lines, or a pid.
        host: where to look (``None``: this machine).
        all: return every matching pid (a sorted list) instead of the first.

    Raises:
        OSError: no matching process (errno ESRCH).
    """
    if target is None and host is None and not all:
        return os.getpid()
    if target is None and not all:
        raise ValueError("getpid on a remote host needs a target (a command-line text or a pid)")
    procs = _processes(host, timeout, **overrides)
    if target is None:
        matches = [p.pid for p in procs]
    elif isinstance(target, int) and not isinstance(target, bool):
        matches = [p.pid for p in procs if p.pid == target]
    else:
        matches = [p.pid for p in procs if str(target) in p.args]
    if not matches:
        import errno

        raise OSError(errno.ESRCH, f"no process matching {target!r} on {host or 'localhost'}")
    return sorted(matches) if all else min(matches)


def getppid(
    pid: int | None = None,
    host: HostLike | None = None,
    group: bool = False,
    *,
    timeout: float = _TIMEOUT,
    **overrides: Any,
) -> int:
    """The parent pid of ``pid`` on ``host`` (with ``group``: its process group id instead).

    With no ``pid``, this process's parent (or group) locally.

    Raises:
        OSError: no such process (errno ESRCH).
    """
    if pid is None:
        if host is not None:
            raise ValueError("getppid on a remote host needs a pid")
        return os.getpgid(0) if group else os.getppid()
    pid = _check_pid(pid)
    for proc in _processes(host, timeout, **overrides):
        if proc.pid == pid:
            return proc.pgid if group else proc.ppid
    import errno

    raise OSError(errno.ESRCH, f"no process {pid} on {host or 'localhost'}")


def getchild(
    pid: int | None = None,
    host: HostLike | None = None,
    group: bool = True,
    *,
    timeout: float = _TIMEOUT,
    **overrides: Any,
) -> list[int]:
    """The pids of the children of ``pid`` on ``host``, sorted.

    Args:
        pid: the parent (``None``: this process, locally).
        host: where (``None``: this machine).
        group: all descendants (children, their children, ...); ``False``: direct children only.
    """
    if pid is None:
        if host is not None:
            raise ValueError("getchild on a remote host needs a pid")
        pid = os.getpid()
    pid = _check_pid(pid)
    procs = _processes(host, timeout, **overrides)
    children: dict[int, list[int]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        if group:
            todo.extend(children.get(child, []))
    return sorted(found)


def randomport(host: HostLike | None = None, **overrides: Any) -> int:
    """A port free for TCP on 127.0.0.1 of ``host`` (this machine when ``None``)."""
    if host is None:
        return pick_port()
    target, registered = _target(host)
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
    target, _ = _target(host)
    if through is not None:
        overrides["through"] = through
    tunnel = Tunnel(target, port, remote_host=remote_host, local_port=local_port, **overrides)
    tunnel.launch()
    return tunnel


class Server:
    """A ``manymap-server`` started by :func:`serve`; :meth:`stop` (or ``with``) stops it.

    Attributes:
        host: where it runs (``None``: this machine).
        port: its port on that host's loopback.
        secret: the secret its clients authenticate with (it never was on a command line).
        launcher: the :class:`LocalPipe` or :class:`~manymap.secure.Pipe` running it.
    """

    def __init__(self, host: HostLike | None, port: int, secret: str, launcher: LocalPipe | Pipe) -> None:
        self.host = host
        self.port = port
        self.secret = secret
        self.launcher = launcher

    @property
    def address(self) -> str:
        """``127.0.0.1:port``: where a local server is reached (for a remote one, tunnel to ``port``)."""
        return f"127.0.0.1:{self.port}"

    def running(self) -> bool:
        """Whether the server process is still there."""
        return self.launcher.running()

    def pid(self) -> int | None:
        """The server's pid on its host."""
        return self.launcher.pid()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server: end its stdin (it stops at end of input), then kill what is left."""
        launcher = self.launcher
        launcher.close_stdin()
        try:
            launcher.response(timeout)
        except ResultTimeoutError:
            launcher.kill()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = "localhost" if self.host is None else str(self.host)
        return f"<Server {where} port={self.port} pid={self.pid()}>"


def serve(
    host: HostLike | None = None,
    port: int | None = None,
    *,
    workers: int | None = None,
    python: str | None = None,
    secret: str | None = None,
    timeout: float = 60.0,
    **overrides: Any,
) -> Server:
    """Start ``manymap-server`` on ``host`` (this machine when ``None``); returns a handle that stops it.

    As ``pathos.core.serve``, securely: the server listens on the host's
    127.0.0.1 only, its secret goes to it over its stdin (never on a command
    line), and it stops when its stdin ends, i.e. with :meth:`Server.stop` or
    when this process or the ssh connection is gone. Reach a local server with
    ``ParallelPool(0, servers=[server.address], secret=server.secret)``; a remote
    one through ``connect(host, server.port)``, or let ``ParallelPool(servers=
    ["ssh://host"])`` start its own.

    Args:
        host: a registered host name, an ssh spec, a profile, or ``None``.
        port: the port to listen on (``None``: a free one).
        workers: its ppft workers (``None``: the host's registered ``workers``, else its cores).
        python: the interpreter with manymap-pools-rpc installed (default: this one locally,
            the registered host's ``python`` or ``python3`` remotely).
        secret: the secret (default: 256 random bits).
        timeout: seconds to wait for the server to say its port.
        **overrides: :func:`manymap.secure.resolve` options for a remote host.

    Raises:
        RpcUnavailableError: manymap-pools-rpc has no ``ParallelPool`` in this installation.
        ResultTimeoutError: the server did not start within ``timeout`` (it is killed).
        RuntimeError: the server exited before saying its port (its stderr is in the message).
    """
    require_rpc("manymap.core.serve")
    import secrets as _secrets

    secret = secret or _secrets.token_hex(32)
    registered = None if host is None else _hosts.registry().lookup(host)
    if workers is None and registered is not None:
        workers = registered.workers
    interpreter = python or (registered.python if registered is not None else None)
    argv = [interpreter or (sys.executable if host is None else "python3"), "-m", "manymap.pools.rpc"]
    argv += ["--port", str(port or 0), "--secret-file", "-"]
    if workers is not None:
        argv += ["--workers", str(int(workers))]
    launcher: LocalPipe | Pipe
    if host is None:
        launcher = LocalPipe(argv, input=secret + "\n", stdin_open=True)
        launcher.launch()
    else:
        target, registered = _target(host)
        launcher = Pipe(
            target,
            argv,
            env=dict(registered.env) if registered is not None and registered.env else None,
            input=secret + "\n",
            stdin_open=True,
            **overrides,
        )
        launcher.launch()
    try:
        line = launcher.readline(timeout)
    except BaseException:
        launcher.kill()
        raise
    if not line.strip().isdigit():
        try:
            result = launcher.response(timeout)
            stderr = result.stderr_text.strip()
        except ResultTimeoutError:
            launcher.kill()
            stderr = ""
        where = "localhost" if host is None else str(host)
        raise RuntimeError(f"manymap-server on {where} did not start: {line!r} {stderr}".strip())
    return Server(host, int(line), secret, launcher)

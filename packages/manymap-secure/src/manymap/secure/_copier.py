"""``Copier``: files and directories to and from a remote host over SFTP.

A copy runs on its own thread once launched; :meth:`Copier.response` waits
for it and returns only when every byte is written and every file closed
(paramiko confirms each upload's size with a ``stat``). Sources are
followed through symlinks, as ``scp -r`` does. Modes (and modification
times) are copied, directories' last so a read-only directory still gets
its content. Destination rules are those of ``cp -r`` / ``scp -r``: into an
existing directory, the source keeps its name; otherwise it is created
under the destination's name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import socket
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paramiko

from manymap.launcher import AbstractLauncher, ConnectionLostError, ManymapError, ResultTimeoutError

from ._connection import Connection, connect
from ._copyplan import plan_local, plan_remote, remote_mkdir
from ._errors import CopyError, SourceNotFoundError
from ._hosts import resolve
from ._location import RemotePath, parse_location, remote_path

__all__ = ["Copier", "CopyResult"]

Progress = Callable[[int, int], object]


@dataclass(frozen=True)
class CopyResult:
    """What a finished copy did.

    Attributes:
        source: where it copied from (``host:path`` for the remote side).
        destination: the path it created or overwrote (``host:path`` for the remote side).
        files: how many files it copied.
        bytes: how many bytes.
    """

    source: str
    destination: str
    files: int
    bytes: int


class _Cancelled(Exception):
    pass


class Copier(AbstractLauncher[CopyResult]):
    """Copy a file or a directory between this machine and a remote host, over SFTP.

    Exactly one of ``source`` and ``destination`` is remote: a
    :class:`RemotePath`, ``host:path``, or ``ssh://[user@]host[:port]/path``.

    Args:
        source: what to copy (a file or a directory, copied whole).
        destination: where to; an existing directory receives the source under its own name.
        progress: called as ``progress(bytes_done, bytes_total)`` while data flows (on the copy thread).
        preserve: copy permission bits and modification times (default).
        io_timeout: seconds any single network read or write may take before the copy fails.
        ssh_config: the ssh_config to resolve the host with.
        name: a label for messages.
        **overrides: keyword arguments of :func:`~manymap.secure.resolve`.

    Example:
        >>> Copier("results/", RemotePath("node7", "runs/")).run(timeout=600)  # doctest: +SKIP
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | RemotePath,
        destination: str | os.PathLike[str] | RemotePath,
        *,
        progress: Progress | None = None,
        preserve: bool = True,
        io_timeout: float = 60.0,
        ssh_config: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **overrides: Any,
    ) -> None:
        src, dst = parse_location(source), parse_location(destination)
        if isinstance(src, RemotePath) == isinstance(dst, RemotePath):
            raise ValueError("exactly one of source and destination must be remote (host:path or RemotePath)")
        self.upload = isinstance(dst, RemotePath)
        remote = dst if isinstance(dst, RemotePath) else src
        assert isinstance(remote, RemotePath)
        self._host = remote.host
        if isinstance(remote.host, Connection):
            if overrides or ssh_config is not None:
                raise ValueError("host is a Connection: give no ssh_config or resolve options")
            self.profile = remote.host.profile
        else:
            self.profile = resolve(remote.host, ssh_config=ssh_config, **overrides)
        self.remote_path = remote_path(remote.path)
        local = src if isinstance(src, str) else dst
        assert isinstance(local, str)
        self.local_path = os.path.expanduser(local)
        self._progress = progress
        self._preserve = preserve
        self._io_timeout = io_timeout
        where = f"{self.profile.address}:{self.remote_path}"
        self.source = where if not self.upload else self.local_path
        self.destination = where if self.upload else self.local_path
        super().__init__(name or f"{self.source} -> {self.destination}")
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._cancel = threading.Event()
        self._result: CopyResult | None = None
        self._error: BaseException | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._bytes_done = 0
        self._bytes_total = 0

    # -- launcher -----------------------------------------------------------------------

    def launch(self) -> None:
        """Start the copy on its own thread.

        Raises:
            RuntimeError: already launched.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self!r} was already launched")
        self._thread = threading.Thread(target=self._run, name=f"manymap-copier {self.name}", daemon=True)
        self._thread.start()

    def response(self, timeout: float | None = None) -> CopyResult:
        """Wait at most ``timeout`` seconds for the copy to complete; return what it did.

        Raises:
            ResultTimeoutError: still copying after ``timeout`` (it goes on).
            SourceNotFoundError: the source does not exist.
            CopyError: another file system problem, on either side.
            ConnectionLostError, ConnectError, HostKeyError, AuthenticationError: ssh failed.
        """
        if self._thread is None:
            raise RuntimeError(f"{self!r} is not launched")
        if not self._done.wait(timeout):
            raise ResultTimeoutError(
                f"{self.profile.address}: copy {self.name} still running after {timeout:g} s"
            )
        self._thread.join(10.0)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def running(self) -> bool:
        """Whether the copy was launched and has not finished."""
        return self._thread is not None and not self._done.is_set()

    def pid(self) -> int | None:
        """This process's pid once launched: the copy runs on a thread here."""
        return os.getpid() if self._thread is not None else None

    def kill(self) -> None:
        """Cancel the copy (what was written so far stays) and wait for its thread to end."""
        if self._thread is None or self._done.is_set():
            return
        self._cancel.set()
        # The copy checks the flag every chunk; if it is stuck in a network wait instead, waking
        # it means closing its channel. Either way the copy thread may be closing it too.
        if not self._done.wait(1.0):
            sftp = self._sftp
            if sftp is not None:
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    sftp.close()
        self._done.wait(30.0)
        self._thread.join(10.0)

    # -- the copy -----------------------------------------------------------------------

    def _fail(self, error: BaseException, path: str | None = None) -> BaseException:
        host, port = self.profile.hostname, self.profile.port
        if isinstance(error, ManymapError):
            return error
        if self._cancel.is_set():
            return CopyError(f"copy {self.name} was cancelled", host=host, port=port, path=path)
        if isinstance(error, (socket.timeout, TimeoutError)):
            return ConnectionLostError(
                f"copy stalled for {self._io_timeout:g} s on {path}", host=host, port=port
            )
        if isinstance(error, (EOFError, paramiko.SSHException)):
            return ConnectionLostError(f"connection lost copying {path}: {error}", host=host, port=port)
        if isinstance(error, OSError):
            code = error.errno
            text = error.strerror or str(error)
            return CopyError(f"{text}: {path}", host=host, port=port, path=path, errno=code)
        return error

    def _run(self) -> None:
        try:
            with (
                connect(self._host)
                if isinstance(self._host, Connection)
                else connect(self.profile) as connection
            ):
                sftp = connection.open_sftp()
                self._sftp = sftp
                try:
                    channel = sftp.get_channel()
                    if channel is not None:
                        channel.settimeout(self._io_timeout)
                    self._result = self._upload(sftp) if self.upload else self._download(sftp)
                finally:
                    self._sftp = None
                    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                        sftp.close()
        except BaseException as error:
            self._error = self._fail(error, self.remote_path)
        finally:
            self._done.set()

    def _tick(self, done_in_file: int, _total_in_file: int, base: list[int]) -> None:
        if self._cancel.is_set():
            raise _Cancelled
        if self._progress is not None:
            self._progress(base[0] + done_in_file, self._bytes_total)

    def _upload(self, sftp: paramiko.SFTPClient) -> CopyResult:
        source = self.local_path
        try:
            top = os.stat(source)
        except FileNotFoundError:
            raise SourceNotFoundError(
                f"no such local file or directory: {source}", path=source, errno=errno.ENOENT
            ) from None
        except OSError as error:
            raise CopyError(
                f"cannot read {source}: {error.strerror}", path=source, errno=error.errno
            ) from None
        target = self._target_remote(sftp, os.path.basename(os.path.normpath(source)))
        plan: list[tuple[str, str, os.stat_result]] = []  # (local, remote, stat); dirs have S_ISDIR
        if stat.S_ISDIR(top.st_mode):
            plan_local(source, target, top, plan, set(), 0)
        else:
            plan.append((source, target, top))
        self._bytes_total = sum(st.st_size for _, _, st in plan if not stat.S_ISDIR(st.st_mode))
        files = 0
        base = [0]
        for local, remote, st in plan:
            if self._cancel.is_set():
                raise _Cancelled
            if stat.S_ISDIR(st.st_mode):
                try:
                    remote_mkdir(sftp, remote)
                except (OSError, paramiko.SSHException, EOFError) as error:
                    raise self._fail(error, remote) from None
                continue
            try:
                handle = open(local, "rb")  # noqa: SIM115 - closed below, errors told apart from remote ones
            except OSError as error:
                raise CopyError(
                    f"cannot read {local}: {error.strerror}", path=local, errno=error.errno
                ) from None
            with handle:
                try:
                    sftp.putfo(
                        handle,
                        remote,
                        file_size=st.st_size,
                        callback=lambda d, t: self._tick(d, t, base),
                        confirm=True,
                    )
                    if self._preserve:
                        sftp.chmod(remote, stat.S_IMODE(st.st_mode))
                        sftp.utime(remote, (st.st_atime, st.st_mtime))
                except (OSError, paramiko.SSHException, EOFError, _Cancelled) as error:
                    raise self._fail(error, remote) from None
            files += 1
            base[0] += st.st_size
        if self._preserve:  # directories last, deepest first, so read-only ones were writable while filling
            for _, remote, st in reversed(plan):
                if stat.S_ISDIR(st.st_mode):
                    sftp.chmod(remote, stat.S_IMODE(st.st_mode))
                    sftp.utime(remote, (st.st_atime, st.st_mtime))
        self._report_end()
        return CopyResult(self.source, f"{self.profile.address}:{target}", files, base[0])

    def _target_remote(self, sftp: paramiko.SFTPClient, name: str) -> str:
        destination = self.remote_path
        try:
            if stat.S_ISDIR(sftp.stat(destination).st_mode or 0):
                return posixpath.join(destination, name)
        except FileNotFoundError:
            parent = posixpath.dirname(destination.rstrip("/")) or "."
            try:
                sftp.stat(parent)
            except FileNotFoundError:
                raise CopyError(
                    f"the destination's directory does not exist: {parent}",
                    host=self.profile.hostname,
                    port=self.profile.port,
                    path=parent,
                    errno=errno.ENOENT,
                ) from None
        return destination

    def _download(self, sftp: paramiko.SFTPClient) -> CopyResult:
        source = self.remote_path
        try:
            top = sftp.stat(source)
        except FileNotFoundError:
            raise SourceNotFoundError(
                f"no such remote file or directory: {source}",
                host=self.profile.hostname,
                port=self.profile.port,
                path=source,
                errno=errno.ENOENT,
            ) from None
        target = self._target_local(posixpath.basename(posixpath.normpath(source)))
        plan: list[tuple[str, str, paramiko.SFTPAttributes]] = []
        if stat.S_ISDIR(top.st_mode or 0):
            plan_remote(sftp, self.profile, source, target, top, plan, 0)
        else:
            plan.append((source, target, top))
        self._bytes_total = sum(a.st_size or 0 for _, _, a in plan if not stat.S_ISDIR(a.st_mode or 0))
        files = 0
        base = [0]
        for remote, local, attrs in plan:
            if self._cancel.is_set():
                raise _Cancelled
            mode = attrs.st_mode or 0
            if stat.S_ISDIR(mode):
                try:
                    os.makedirs(local, exist_ok=True)
                except OSError as error:
                    raise CopyError(
                        f"cannot create {local}: {error.strerror}", path=local, errno=error.errno
                    ) from None
                continue
            try:
                handle = open(local, "wb")  # noqa: SIM115 - closed below, errors told apart from remote ones
            except OSError as error:
                raise CopyError(
                    f"cannot write {local}: {error.strerror}", path=local, errno=error.errno
                ) from None
            with handle:
                try:
                    sftp.getfo(remote, handle, callback=lambda d, t: self._tick(d, t, base))
                except (OSError, paramiko.SSHException, EOFError, _Cancelled) as error:
                    raise self._fail(error, remote) from None
            if self._preserve:
                os.chmod(local, stat.S_IMODE(mode))
                if attrs.st_mtime is not None:
                    os.utime(local, (attrs.st_atime or attrs.st_mtime, attrs.st_mtime))
            files += 1
            base[0] += attrs.st_size or 0
        if self._preserve:
            for _, local, attrs in reversed(plan):
                if stat.S_ISDIR(attrs.st_mode or 0):
                    os.chmod(local, stat.S_IMODE(attrs.st_mode or 0o755))
                    if attrs.st_mtime is not None:
                        os.utime(local, (attrs.st_atime or attrs.st_mtime, attrs.st_mtime))
        self._report_end()
        return CopyResult(f"{self.profile.address}:{source}", target, files, base[0])

    def _target_local(self, name: str) -> str:
        destination = self.local_path
        if os.path.isdir(destination):
            return os.path.join(destination, name)
        parent = os.path.dirname(os.path.abspath(destination))
        if not os.path.isdir(parent):
            raise CopyError(
                f"the destination's directory does not exist: {parent}", path=parent, errno=errno.ENOENT
            )
        return destination

    def _report_end(self) -> None:
        if self._progress is not None:
            self._progress(self._bytes_total, self._bytes_total)

    def __repr__(self) -> str:
        state = "idle" if self._thread is None else "running" if not self._done.is_set() else "done"
        return f"<Copier {self.name!r} {state}>"

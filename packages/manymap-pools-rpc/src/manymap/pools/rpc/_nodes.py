"""Where a ParallelPool's workers live: the local server, running servers, servers over ssh.

Each node kind knows how to start (or find) its ``manymap-server``, how to
open one more authenticated connection to it (one connection is one ppft
worker there) and how to stop what it started.

A ``servers`` entry that is a bare name is first looked up in the host
registries that installed packages offer under the ``manymap.hosts`` entry
point group (the meta package's :mod:`manymap.hosts` is one): a registered
host brings its own interpreter, environment, worker count and jump host.
"""

from __future__ import annotations

import abc
import contextlib
import os
import re
import socket
import sys
import threading
from collections.abc import Callable, Mapping

from manymap.launcher import AuthenticationError, ConnectionLostError
from manymap.pools.rpc import _deferred, bootstrap
from manymap.pools.rpc._auth import Connection, ServerBusy, handshake, load_modules, new_secret

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    from manymap.pools.rpc._fork_launcher import ForkLauncher
    from manymap.pools.rpc._local_launcher import LocalLauncher
    from manymap.pools.rpc._remote_host import RemoteHost
    from manymap.secure import HostProfile

__all__ = [
    "HOSTS_GROUP",
    "Connection",
    "DirectNode",
    "LocalNode",
    "Node",
    "ServerBusy",
    "SshNode",
    "find_host",
    "handshake",
    "parse_server",
]

#: The entry point group of host registries: each entry is ``lookup(name) -> RemoteHost | None``.
HOSTS_GROUP = "manymap.hosts"

CONNECT_TIMEOUT = 20.0  # seconds to connect and authenticate (on a connecting thread, never the manager)


class Node(abc.ABC):
    """A manymap-server the pool uses."""

    #: what the node is called in messages and in ``stats()``
    label: str = "?"
    #: the host, as ``stats()`` reports it
    host: str = "?"
    #: workers the server announced
    workers: int = 0

    def __init__(self) -> None:
        self._start_lock = threading.Lock()
        self._started = False
        self._stopped = False

    def ensure_started(self) -> None:
        """Start or find the server, once, whichever thread asks first (the others wait).

        Raises:
            ConnectionLostError: the node was stopped.
        """
        with self._start_lock:
            if self._stopped:
                raise ConnectionLostError(f"{self.label} was stopped")
            if not self._started:
                self.start()
                self._started = True

    def start(self) -> None:  # noqa: B027 - most nodes have nothing to start
        """Start or find the server (see :meth:`ensure_started`)."""

    @abc.abstractmethod
    def connect(self, timeout: float | None = None) -> Connection:
        """One more authenticated connection, within ``timeout`` seconds (default :data:`CONNECT_TIMEOUT`)."""

    def shutdown(self) -> None:
        """Stop what :meth:`start` started; a node stopped never starts again."""
        with self._start_lock:
            self._stopped = True
        self.stop()

    def stop(self) -> None:  # noqa: B027 - most nodes have nothing to stop
        """Stop what :meth:`start` started."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"


def _connect(host: str, port: int, timeout: float, unix: str | None) -> socket.socket:
    """``socket.create_connection((host, port), timeout)``, but to the unix socket
    ``unix`` instead where there is one (a local server's), and to a numeric IPv4
    address without a name lookup, which loads the idna codec (about 1 ms of the
    first connection)."""
    if unix is None:
        try:
            socket.inet_pton(socket.AF_INET, host)
        except OSError:
            return socket.create_connection((host, port), timeout=timeout)
    sock = socket.socket(socket.AF_INET if unix is None else socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port) if unix is None else unix)
        if unix is None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _open(host: str, port: int, secret: str, timeout: float | None, unix: str | None = None) -> Connection:
    """An authenticated connection to the server at ``host:port`` (through ``unix`` if given)."""
    wait = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        sock = _connect(host, port, wait, unix)
    except OSError as error:
        raise ConnectionLostError(
            f"cannot connect to manymap-server: {error}", host=host, port=port
        ) from error
    try:
        sock.setblocking(False)
        return handshake(sock, secret, host, port, wait)
    except BaseException:
        sock.close()
        raise


class DirectNode(Node):
    """A server already running at ``host:port`` (pathos' ``servers=("host:port",)``)."""

    def __init__(self, host: str, port: int, secret: str | None) -> None:
        super().__init__()
        self.label = f"{host}:{port}"
        self.host = host
        self.port = port
        self.secret = secret

    def connect(self, timeout: float | None = None) -> Connection:
        if self.secret is None:
            raise AuthenticationError(
                "no secret for this server: give ParallelPool(secret=...)", host=self.host, port=self.port
            )
        return _open(self.host, self.port, self.secret, timeout)


class LocalNode(Node):
    """A manymap-server started on this host for the pool's local workers.

    Where the platform can (Linux), the server is a fork of this process
    (``_fork_launcher.py``), whose ppft workers are forks of a warm template
    of its own: no interpreter starts and nothing is imported again, so a
    local pool serves within milliseconds. Elsewhere it is ``python -m
    manymap.pools.rpc`` with this process's ``sys.path``.
    """

    def __init__(self, workers: int, *, max_tasks: int | None = None) -> None:
        super().__init__()
        self.max_tasks = max_tasks
        self.label = "localhost"
        self.host = "localhost"
        self.workers = workers
        self.secret = ""  # made once the server is forked: its memory never holds it unasked
        self.port = 0
        self.process: LocalLauncher | ForkLauncher | None = None

    def start(self) -> None:
        # (a launcher loads with the first local node, not with the package)
        from manymap.pools.rpc._fork_launcher import ForkLauncher

        if ForkLauncher.available():
            forked = ForkLauncher(
                workers=self.workers, max_connections=4096, max_tasks_per_worker=self.max_tasks
            )
            self.process = forked
            load_modules()  # before the fork: the server, its template and workers inherit them
            forked.launch()
        else:
            from manymap.pools.rpc._local_launcher import LocalLauncher

            command = bootstrap.server_command(
                sys.executable,
                workers=self.workers,
                max_connections=4096,
                max_tasks_per_worker=self.max_tasks,
            )
            # The local workers import what this process can: its sys.path, as a forked worker would.
            path = os.pathsep.join(entry for entry in sys.path if entry and os.path.isdir(entry))
            self.process = LocalLauncher(
                command, {**os.environ, "PYTHONPATH": path}, name="the local manymap-server"
            )

        self.secret = new_secret()
        self.port = bootstrap.start_server(self.process, self.secret, where="localhost", host="127.0.0.1")

    def connect(self, timeout: float | None = None) -> Connection:
        unix = getattr(self.process, "unix", None)  # a forked server's: no TCP in the way
        return _open("127.0.0.1", self.port, self.secret, timeout, unix)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            bootstrap.stop_server(process, 10.0)


def find_host(name: str) -> RemoteHost | None:
    """The host that an installed registry (:data:`HOSTS_GROUP`) knows as ``name``, if any."""
    for entry in _deferred.entry_points(HOSTS_GROUP):
        lookup: Callable[[str], RemoteHost | None] = entry.load()
        found = lookup(name)
        if found is not None:
            return found
    return None


class SshNode(Node):
    """A manymap-server started over ssh on ``profile``, reached through an ssh tunnel.

    The secret goes to the server over the ssh channel (its stdin), never on
    a command line; the server stops when that channel closes.
    """

    def __init__(
        self,
        profile: HostProfile,
        *,
        label: str,
        python: str,
        workers: int | None,
        env: Mapping[str, str] | None = None,
        max_tasks: int | None = None,
    ) -> None:
        super().__init__()
        self.max_tasks = max_tasks
        self.profile = profile
        self.label = label
        self.host = label
        self.python = python
        self.want_workers = workers
        self.env = dict(env or {})

        self.secret = new_secret()
        self.pipe: Any = None
        self.tunnel: Any = None

    def start(self) -> None:
        from manymap.secure import Pipe, Tunnel

        command = bootstrap.server_command(
            self.python, workers=self.want_workers or None, max_tasks_per_worker=self.max_tasks
        )
        name = f"manymap-server on {self.label}"
        # The tunnel first: its logins (the OpenSSH client's takes the longest) run
        # while the server starts; it learns the server's port then.
        self.tunnel = Tunnel(self.profile, None, name=name)
        try:
            self.tunnel.launch()
            self.pipe = Pipe(self.profile, command, env=self.env, stdin_open=True, name=name)
            self.tunnel.remote_port = bootstrap.start_server(
                self.pipe, self.secret, where=self.label, host=self.profile.hostname, port=self.profile.port
            )
        except BaseException:
            self.stop()
            raise

    def connect(self, timeout: float | None = None) -> Connection:
        tunnel = self.tunnel
        if tunnel is None:
            raise ConnectionLostError(f"{self.label} was stopped", host=self.profile.hostname)
        sock: socket.socket = tunnel.connect(CONNECT_TIMEOUT if timeout is None else timeout)
        try:
            sock.setblocking(False)
            timeout = CONNECT_TIMEOUT if timeout is None else timeout
            return handshake(sock, self.secret, self.profile.hostname, tunnel.remote_port, timeout)
        except ConnectionLostError:
            # Through the OpenSSH client a lost ssh connection, or a server gone, shows
            # only as an end of file here: the tunnel knows which.
            sock.close()
            tunnel.check()
            raise
        except BaseException:
            sock.close()
            raise

    def stop(self) -> None:
        tunnel, self.tunnel = self.tunnel, None
        pipe, self.pipe = self.pipe, None
        if tunnel is not None:
            with contextlib.suppress(Exception):
                tunnel.kill()
        if pipe is not None:
            with contextlib.suppress(Exception):
                bootstrap.stop_server(pipe, 0.0)


# Compiled by the first parse (re caches it), not at import time.
_HOST_PORT = r"^(?P<host>[^/@\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$"


def parse_server(
    spec: str | RemoteHost,
    *,
    secret: str | None,
    python: str,
    workers: int | None,
    ssh_config: str | None,
    max_tasks: int | None = None,
) -> Node:
    """A node for a ``servers`` entry.

    ``host:port`` is a running server (its own ``--max-tasks-per-worker``
    holds); a :class:`RemoteHost`, or a name that a host registry knows, is
    started over ssh with that host's settings; anything else is an ssh host
    spec started with ``python`` and ``workers``. A server started over ssh
    replaces its workers after ``max_tasks`` tasks.
    """
    if not isinstance(spec, str):
        return SshNode(
            spec.profile(),
            label=spec.name,
            python=spec.python,
            workers=spec.workers,
            env=spec.env,
            max_tasks=max_tasks,
        )
    match = re.match(_HOST_PORT, spec)
    if match and not spec.startswith("ssh://"):
        return DirectNode(match["host"].strip("[]"), int(match["port"]), secret)
    registered = None if spec.startswith("ssh://") else find_host(spec)
    if registered is not None:
        return parse_server(
            registered,
            secret=secret,
            python=python,
            workers=workers,
            ssh_config=ssh_config,
            max_tasks=max_tasks,
        )
    from manymap.secure import resolve

    profile = resolve(spec, ssh_config=ssh_config)
    return SshNode(
        profile, label=spec.removeprefix("ssh://"), python=python, workers=workers, max_tasks=max_tasks
    )

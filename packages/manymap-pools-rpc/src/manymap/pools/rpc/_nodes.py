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
import hmac
import json
import os
import re
import secrets
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from manymap.launcher import AuthenticationError, ConnectionLostError, ManymapError
from manymap.pools.rpc import _deferred
from manymap.pools.rpc import _protocol as proto

if TYPE_CHECKING:
    from manymap.secure import HostProfile

__all__ = [
    "HOSTS_GROUP",
    "Connection",
    "DirectNode",
    "LocalNode",
    "Node",
    "RemoteHost",
    "SshNode",
    "find_host",
    "handshake",
    "parse_server",
]

#: The entry point group of host registries: each entry is ``lookup(name) -> RemoteHost | None``.
HOSTS_GROUP = "manymap.hosts"

START_TIMEOUT = 60.0  # seconds a server may take to start and report its port
CONNECT_TIMEOUT = 20.0  # seconds to connect and authenticate (on a connecting thread, never the manager)


class ServerBusy(ManymapError):
    """The server serves as many clients as it takes."""


class Connection(NamedTuple):
    """An authenticated connection to a server."""

    sock: socket.socket
    info: dict[str, Any]
    session: proto.Session
    reader: proto.FrameReader
    leftover: list[bytearray]  # frames that arrived with the handshake's last one


def _next_frame(
    sock: socket.socket, reader: proto.FrameReader, queue: list[bytearray], deadline: float
) -> bytes:
    timeout = deadline - time.monotonic()
    """The next frame of the handshake, waiting at most until ``deadline``."""
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while not queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError(f"no answer within {timeout:.3g} s")
            queue.extend(reader.pump())
    return bytes(queue.pop(0))


def handshake(
    sock: socket.socket, secret: str, host: str, port: int | None, timeout: float | None = None
) -> Connection:
    """Run the mutual handshake on a fresh connection (see ``_protocol.py``).

    Nothing of the work is sent, and nothing the peer sends is loaded, before
    the server has proved it knows ``secret``; what the client sends before
    that (a nonce and a proof bound to this connection) is useless anywhere else.

    Raises:
        AuthenticationError: the server refused the secret, or did not prove it knows it.
        ConnectionLostError: the peer is not a manymap-server, or went away.
    """
    deadline = time.monotonic() + (CONNECT_TIMEOUT if timeout is None else timeout)
    reader = proto.FrameReader.for_socket(sock, proto.HANDSHAKE_LIMIT)
    queue: list[bytearray] = []
    try:
        hello = _next_frame(sock, reader, queue, deadline)
        if not hello.startswith(proto.HELLO) or len(hello) != len(proto.HELLO) + proto.NONCE:
            other = " (another version of its protocol)" if hello.startswith(b"MMRPC") else ""
            raise ConnectionLostError(f"the peer is not a manymap-server{other}", host=host, port=port)
        server_nonce = hello[len(proto.HELLO) :]
        client_nonce = proto.new_nonce()
        mine = proto.proof(secret, b"client", server_nonce, client_nonce)
        proto.send_plain(sock, proto.PROVE, client_nonce, mine)
        reply = _next_frame(sock, reader, queue, deadline)
        if reply.startswith(proto.OK):
            theirs = proto.proof(secret, b"server", server_nonce, client_nonce)
            if len(reply) != len(proto.OK) + proto.PROOF or not hmac.compare_digest(
                reply[len(proto.OK) :], theirs
            ):
                raise AuthenticationError(
                    "the server did not prove that it knows the secret: it is not the "
                    "manymap-server it claims to be, or holds another secret; nothing was sent to it",
                    host=host,
                    port=port,
                )
            session = proto.Session(secret, server_nonce, client_nonce, client=True)
            reader.limit = proto.HANDSHAKE_LIMIT + proto.PROOF
            info: dict[str, Any] = json.loads(bytes(session.open(_next_frame(sock, reader, queue, deadline))))
            return Connection(sock, info, session, reader, queue)
    except (OSError, EOFError) as error:
        if isinstance(error, ManymapError):
            raise
        raise ConnectionLostError(
            f"the handshake with the server failed: {error}", host=host, port=port
        ) from error
    if not reply.startswith(proto.NO):
        raise ConnectionLostError("the peer is not a manymap-server", host=host, port=port)
    reason = reply[len(proto.NO) :].decode("utf-8", "replace")
    if reason.startswith("busy"):
        raise ServerBusy(reason)
    raise AuthenticationError(f"manymap-server refused the client: {reason}", host=host, port=port)


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


def _tcp(host: str, port: int, secret: str, timeout: float | None) -> Connection:
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT if timeout is None else timeout)
    except OSError as error:
        raise ConnectionLostError(
            f"cannot connect to manymap-server: {error}", host=host, port=port
        ) from error
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        return handshake(sock, secret, host, port, timeout)
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
        return _tcp(self.host, self.port, self.secret, timeout)


class LocalNode(Node):
    """A manymap-server started on this host for the pool's local workers."""

    def __init__(self, workers: int, *, max_tasks: int | None = None) -> None:
        super().__init__()
        self.max_tasks = max_tasks
        self.label = "localhost"
        self.host = "localhost"
        self.workers = workers
        self.secret = secrets.token_hex(32)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "manymap.pools.rpc", "--secret-file", "-", "--workers"]
        command += [str(self.workers), "--max-connections", "4096"]
        if self.max_tasks is not None:
            command += ["--max-tasks-per-worker", str(self.max_tasks)]
        # The local workers import what this process can: its sys.path, as a forked worker would.
        path = os.pathsep.join(entry for entry in sys.path if entry and os.path.isdir(entry))
        env = {**os.environ, "PYTHONPATH": path}
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Its own session: a Ctrl-C at our terminal is ours to handle; the
            # server stops when we close its stdin, or when we are gone.
            start_new_session=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdin is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(START_TIMEOUT)
        line = self.process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise ConnectionLostError(
                f"the local manymap-server did not start (it said {line!r})", host="127.0.0.1"
            )
        self.port = int(line)
        self.process.stdin.write(self.secret.encode() + b"\n")
        self.process.stdin.flush()

    def connect(self, timeout: float | None = None) -> Connection:
        return _tcp("127.0.0.1", self.port, self.secret, timeout)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()  # end of stdin: the server stops
        try:
            process.wait(10.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10.0)
        if process.stdout is not None:
            process.stdout.close()


@runtime_checkable
class RemoteHost(Protocol):
    """A named host profile, such as :class:`manymap.hosts.Host`: where and how to run a server."""

    @property
    def name(self) -> str:
        """What the host is called in messages and in ``stats()``."""

    @property
    def python(self) -> str:
        """The interpreter that runs ``manymap-server`` there."""

    @property
    def workers(self) -> int | None:
        """The server's workers (``None``: as many as the host has cores)."""

    @property
    def env(self) -> Mapping[str, str]:
        """Environment variables for the server."""

    def profile(self) -> HostProfile:
        """How to reach the host over ssh."""


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
        self.secret = secrets.token_hex(32)
        self.pipe: Any = None
        self.tunnel: Any = None

    def start(self) -> None:
        from manymap.secure import Pipe, Tunnel

        command = [self.python, "-m", "manymap.pools.rpc", "--secret-file", "-"]
        if self.want_workers:
            command += ["--workers", str(self.want_workers)]
        if self.max_tasks is not None:
            command += ["--max-tasks-per-worker", str(self.max_tasks)]
        self.pipe = Pipe(
            self.profile, command, env=self.env, stdin_open=True, name=f"manymap-server on {self.label}"
        )
        self.pipe.launch()
        try:
            line = self.pipe.readline(START_TIMEOUT)
        except ManymapError as error:
            raise ConnectionLostError(
                f"manymap-server did not start: {error}", host=self.profile.hostname, port=self.profile.port
            ) from error
        if not line.strip().isdigit():
            error_text = bytes(self.pipe.stderr)[-500:].decode("utf-8", "replace").strip()
            raise ConnectionLostError(
                f"manymap-server did not start: it said {line!r} {error_text}",
                host=self.profile.hostname,
                port=self.profile.port,
            )
        port = int(line)
        self.pipe.send(self.secret + "\n")
        self.tunnel = Tunnel(self.profile, port, name=f"manymap-server on {self.label}")
        self.tunnel.launch()

    def connect(self, timeout: float | None = None) -> Connection:
        tunnel = self.tunnel
        if tunnel is None:
            raise ConnectionLostError(f"{self.label} was stopped", host=self.profile.hostname)
        sock: socket.socket = tunnel.connect(CONNECT_TIMEOUT if timeout is None else timeout)
        try:
            sock.setblocking(False)
            return handshake(sock, self.secret, self.profile.hostname, tunnel.remote_port, timeout)
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
                pipe.close_stdin()
            with contextlib.suppress(Exception):
                pipe.kill()


_HOST_PORT = re.compile(r"^(?P<host>[^/@\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


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
    match = _HOST_PORT.match(spec)
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

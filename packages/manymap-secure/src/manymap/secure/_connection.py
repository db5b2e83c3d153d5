"""ssh connections: one paramiko transport per host profile, shared by every pipe, copier and tunnel.

How it fits together:

- :func:`connect` resolves a host into a :class:`HostProfile` and returns a
  :class:`Connection`, a *handle* on the one :class:`_Client` (a paramiko
  ``SSHClient`` and its transport) that the process holds for that profile.
  The registry counts handles: the transport opens with the first handle
  and closes when the last one is closed. Nothing lingers unused, and two
  handles to the same host never open two ssh connections (pass
  ``shared=False`` for a private one).
- Host keys are checked against the profile's known_hosts files (``_hostkeys``),
  the handshake and login run in ``_login`` (each failure named), on the
  transport ``_sshtransport`` builds (cipher order, socket options).
- A connection through a jump host rides on a ``direct-tcpip`` channel of
  the jump host's own (shared) connection.
- Liveness: paramiko notices a closed TCP connection by itself; a silent
  peer (a partition, a frozen host) is caught by a keepalive thread that
  opens a probe channel every ``keepalive_interval`` seconds and declares the
  connection lost when no answer comes within
  ``keepalive_interval * keepalive_count_max`` seconds.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from types import TracebackType
from typing import Any

import paramiko

from manymap.launcher import ConnectionLostError

from ._hostkeys import trust_known_hosts
from ._hosts import HostProfile, resolve
from ._login import identity_files, login
from ._sshtransport import fatal_exception

__all__ = ["Connection", "connect"]

_JOIN_TIMEOUT = 10.0


class _Client:
    """One live ssh connection for one profile; owned by the registry, used through Connection handles."""

    def __init__(self, profile: HostProfile) -> None:
        self.profile = profile
        self.refs = 0
        self.lost_reason: str | None = None
        self._closed = threading.Event()
        # One session open at a time: paramiko keeps one pending error per transport,
        # so two opens at once can take each other's refusal (one then reads only
        # "Unable to open channel").
        self.opening = threading.Lock()
        self._jump: Connection | None = None
        self._keepalive: threading.Thread | None = None
        self.client = paramiko.SSHClient()
        try:
            self._open()
        except BaseException:
            self._shutdown()
            raise
        interval = profile.keepalive_interval
        if interval > 0:
            self._keepalive = threading.Thread(
                target=self._keepalive_loop, name=f"manymap-ssh-keepalive {profile.address}", daemon=True
            )
            self._keepalive.start()

    # -- opening ------------------------------------------------------------------------

    def _open(self) -> None:
        profile = self.profile
        trust_known_hosts(self.client, profile)
        present = identity_files(profile)
        sock: paramiko.Channel | None = None
        if profile.jump is not None:
            self._jump = connect(profile.jump)
            sock = self._jump.open_channel(profile.hostname, profile.port, timeout=profile.connect_timeout)
        login(self.client, profile, present, sock)

    # -- state --------------------------------------------------------------------------

    @property
    def transport(self) -> paramiko.Transport:
        transport = self.client.get_transport()
        if transport is None:
            raise self.lost_error()
        return transport

    @property
    def alive(self) -> bool:
        if self._closed.is_set() or self.lost_reason is not None:
            return False
        transport = self.client.get_transport()
        return transport is not None and transport.is_active() and fatal_exception(transport) is None

    def why_lost(self) -> str:
        """Why the connection is down, in words (without host and port)."""
        if self.lost_reason is not None:
            return self.lost_reason
        if self._closed.is_set() and self.refs <= 0:
            return "the ssh connection was closed"
        transport = self.client.get_transport()
        exception = fatal_exception(transport) if transport is not None else None
        if exception is None:
            return "the ssh connection dropped"
        return f"the ssh connection dropped ({str(exception) or type(exception).__name__})"

    def lost_error(self) -> ConnectionLostError:
        return ConnectionLostError(self.why_lost(), host=self.profile.hostname, port=self.profile.port)

    def _keepalive_loop(self) -> None:
        interval = self.profile.keepalive_interval
        patience = interval * max(1, self.profile.keepalive_count_max)
        while not self._closed.wait(interval):
            transport = self.client.get_transport()
            if transport is None or not transport.is_active():
                return
            if not self.opening.acquire(blocking=False):
                continue  # a session is being opened: that is a probe of its own
            try:
                probe = transport.open_session(timeout=patience)
            except paramiko.ChannelException:
                continue  # refused (MaxSessions reached): the server answered, so it is alive
            except (paramiko.SSHException, OSError, EOFError):
                if self._closed.is_set():
                    return
                self.lost_reason = f"no answer to keepalive probes for {patience:g} s: the connection is lost"
                transport.close()
                return
            finally:
                self.opening.release()
            probe.close()

    def close(self) -> None:
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed.set()
        transport = self.client.get_transport()
        self.client.close()
        if (
            transport is not None
            and transport.ident is not None
            and transport is not threading.current_thread()
        ):
            transport.join(_JOIN_TIMEOUT)
        if self._keepalive is not None and self._keepalive is not threading.current_thread():
            self._keepalive.join(_JOIN_TIMEOUT)
        if self._jump is not None:
            self._jump.close()
            self._jump = None


class _Registry:
    """The process's shared clients, one per profile, counted by handle."""

    def __init__(self) -> None:
        # Reentrant: a handle's finalizer may run (garbage collection) while this thread holds it.
        self._lock = threading.RLock()
        self._clients: dict[HostProfile, _Client] = {}
        self._opening: dict[HostProfile, threading.Lock] = {}

    def acquire(self, profile: HostProfile) -> _Client:
        with self._lock:
            opening = self._opening.setdefault(profile, threading.Lock())
        # One connect per profile at a time; other profiles connect in parallel.
        with opening:
            with self._lock:
                client = self._clients.get(profile)
                if client is not None and client.alive:
                    client.refs += 1
                    return client
            client = _Client(profile)
            with self._lock:
                client.refs += 1
                self._clients[profile] = client
            return client

    def release(self, client: _Client) -> None:
        with self._lock:
            client.refs -= 1
            if client.refs > 0:
                return
            if self._clients.get(client.profile) is client:
                del self._clients[client.profile]
        client.close()

    def open_count(self) -> int:
        with self._lock:
            return len(self._clients)


_REGISTRY = _Registry()


def _release(client: _Client, shared: bool) -> None:
    if shared:
        _REGISTRY.release(client)
        return
    with _REGISTRY._lock:
        client.refs -= 1
        last = client.refs <= 0
    if last:
        client.close()


class Connection:
    """A handle on an ssh connection to one host; close it when done (or use ``with``).

    Handles to the same :class:`HostProfile` share one ssh transport: it opens
    with the first handle and closes with the last. Obtain handles with
    :func:`connect` (or :meth:`share`); pipes, copiers and tunnels take their
    own.

    Attributes:
        profile: the host profile this connection reaches.
    """

    def __init__(self, client: _Client, *, shared: bool) -> None:
        self._client: _Client | None = client
        self._shared = shared
        self.profile = client.profile
        # A handle dropped without close() still releases its share of the connection.
        self._finalizer = weakref.finalize(self, _release, client, shared)

    def _live_client(self) -> _Client:
        client = self._client
        if client is None:
            raise ConnectionLostError(
                "this connection handle is closed", host=self.profile.hostname, port=self.profile.port
            )
        if not client.alive:
            raise client.lost_error()
        return client

    @property
    def alive(self) -> bool:
        """Whether the handle is open and the ssh connection up."""
        return self._client is not None and self._client.alive

    @property
    def closed(self) -> bool:
        """Whether this handle was closed."""
        return self._client is None

    def check(self) -> None:
        """Raise :class:`~manymap.launcher.ConnectionLostError` unless the connection is up."""
        self._live_client()

    @property
    def transport(self) -> paramiko.Transport:
        """The paramiko transport (shared: do not close it, close the handle)."""
        return self._live_client().transport

    @property
    def client_address(self) -> tuple[str, int]:
        """The local ``(address, port)`` of the TCP connection to the first hop."""
        hop: Connection = self
        while hop._client is not None and hop._client._jump is not None:
            hop = hop._client._jump
        sock: Any = hop.transport.sock
        address = sock.getsockname()
        return str(address[0]), int(address[1])

    def share(self) -> Connection:
        """Another handle on the same ssh connection (closed independently; private ones stay private)."""
        client = self._live_client()
        with _REGISTRY._lock:
            client.refs += 1
        return Connection(client, shared=self._shared)

    def open_session(self, timeout: float | None = None) -> paramiko.Channel:
        """A new session channel (for one command or the sftp subsystem).

        Raises:
            ConnectionLostError: the connection is down, or the server did not answer in time.
        """
        client = self._live_client()
        limit = timeout if timeout is not None else self.profile.connect_timeout
        deadline = time.monotonic() + limit
        pause = 0.01
        while True:
            try:
                with client.opening:
                    return client.transport.open_session(timeout=max(0.1, deadline - time.monotonic()))
            except paramiko.ChannelException as error:
                # Refused: the server's MaxSessions (10 by default) is reached. Sessions
                # just closed free their slots a moment later: try again until the limit.
                if time.monotonic() + pause >= deadline:
                    raise ConnectionLostError(
                        f"the server refused a new session ({error.text}) for {limit:g} s; "
                        "too many at once for its MaxSessions?",
                        host=self.profile.hostname,
                        port=self.profile.port,
                    ) from None
            except (paramiko.SSHException, OSError, EOFError) as error:
                raise ConnectionLostError(
                    f"cannot open an ssh session: {error}", host=self.profile.hostname, port=self.profile.port
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    def open_channel(self, host: str, port: int, timeout: float | None = None) -> paramiko.Channel:
        """A ``direct-tcpip`` channel to ``host:port`` as seen from the ssh server.

        Raises:
            paramiko.ChannelException: the server could not (or would not) connect there.
            ConnectionLostError: the ssh connection is down or did not answer in time.
        """
        client = self._live_client()
        limit = timeout if timeout is not None else self.profile.connect_timeout
        try:
            with client.opening:  # (see _Client.opening)
                return client.transport.open_channel(
                    "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=limit
                )
        except paramiko.ChannelException:
            raise
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise ConnectionLostError(
                f"cannot open a channel to {host}:{port}: {error}",
                host=self.profile.hostname,
                port=self.profile.port,
            ) from None

    def open_sftp(self) -> paramiko.SFTPClient:
        """An SFTP client on a new session channel (close it when done)."""
        channel = self.open_session()
        try:
            channel.invoke_subsystem("sftp")
            sftp = paramiko.SFTPClient(channel)
        except (paramiko.SSHException, OSError, EOFError) as error:
            channel.close()
            raise ConnectionLostError(
                f"cannot start sftp: {error}", host=self.profile.hostname, port=self.profile.port
            ) from None
        return sftp

    def lost_error(self) -> ConnectionLostError:
        """The error describing why this connection is down (for callers that noticed it)."""
        return ConnectionLostError(self.why_lost(), host=self.profile.hostname, port=self.profile.port)

    def why_lost(self) -> str:
        """Why this connection is down, in words (without host and port)."""
        client = self._client
        return "this connection handle is closed" if client is None else client.why_lost()

    def close(self) -> None:
        """Release this handle; the ssh connection closes with its last handle. Idempotent."""
        self._client = None
        self._finalizer()  # runs _release once, whoever calls first

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "alive" if self.alive else "closed" if self.closed else "lost"
        return f"<Connection {self.profile} {state}>"


def connect(
    host: str | HostProfile | Connection,
    *,
    ssh_config: str | os.PathLike[str] | None = None,
    shared: bool = True,
    **overrides: Any,
) -> Connection:
    """Open (or share) the ssh connection to ``host`` and return a handle on it.

    Args:
        host: a host spec or ssh_config name (see :func:`resolve`), a profile, or a
            connection (then a new handle on it).
        ssh_config: the ssh_config to read (default ``$MANYMAP_SSH_CONFIG`` or ``~/.ssh/config``).
        shared: share the connection with every other handle to the same profile
            (default); ``False`` opens a private one.
        **overrides: keyword arguments of :func:`resolve` (``user``, ``port``,
            ``identity_file``, ``through``, ``accept_new_host_keys``, ``connect_timeout``,
            ``keepalive_interval``).

    Raises:
        ConnectError: the host cannot be reached or speaks no ssh.
        HostKeyError: its key is unknown (and not accepted) or changed.
        AuthenticationError: the login was refused.
    """
    if isinstance(host, Connection):
        if not overrides and ssh_config is None and shared:
            return host.share()
        host = host.profile
    profile = resolve(host, ssh_config=ssh_config, **overrides)
    if shared:
        return Connection(_REGISTRY.acquire(profile), shared=True)
    client = _Client(profile)
    client.refs = 1
    return Connection(client, shared=False)

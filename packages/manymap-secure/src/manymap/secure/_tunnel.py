"""``Tunnel``: a local port on 127.0.0.1 forwarded over ssh to a ``host:port`` seen from the ssh server.

How data flows. :meth:`Tunnel.launch` takes a port reservation from
``manymap.portpicker`` (the socket is bound before anyone learns the port,
so nothing can take it in between) and listens on it, on 127.0.0.1 only.
A watcher thread accepts local connections and keeps an eye on the ssh
connection. Each accepted connection gets a ``direct-tcpip`` channel to the
target and two link threads (``_link.py``), one per direction, that copy
bytes (half-closes included) until both directions end; a full direction
never stalls the other. :meth:`Tunnel.connect` does the same for a
socket pair, so the caller gets a socket and any error synchronously.

Bulk data. Where the machine has the OpenSSH client, :meth:`Tunnel.connect`
goes through it instead (``client="auto"``, the default): the watcher also
starts one ``ssh`` client that forwards a private unix socket to the target
(``_openssh.py``: the host key the paramiko connection verified, no config
file, no prompt, killed with the watcher), and each connection is a plain
socket to it, whose bytes never enter Python: about half the CPU of
paramiko's channels for the same data. A target that refuses then shows as
an end of file on that socket (and in :attr:`Tunnel.last_error`), as it does
for a connection through the local port. If the client cannot start, or
stops while the paramiko connection lives, ``connect`` goes on through
paramiko and :attr:`Tunnel.openssh_error` says why.

When the ssh connection drops (the server died, the network went, the
keepalive probes went unanswered), every open link ends (its local socket
sees end-of-file) and, without ``reconnect``, the tunnel stops: it closes
its port (new connections are refused, never left hanging) and every use
raises :class:`~manymap.launcher.TunnelError`. With ``reconnect=True`` the
port stays open and the next connection opens a new ssh connection.
:meth:`Tunnel.kill` closes everything and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from typing import Any, Literal

import paramiko

from manymap.launcher import (
    AbstractLauncher,
    ConnectionLostError,
    ManymapError,
    ResultTimeoutError,
    TunnelError,
)
from manymap.portpicker import NoFreePortError, reserve

from ._connection import Connection, connect
from ._hosts import HostProfile, resolve
from ._link import Link
from ._openssh import OpenSSHForward, unusable_reason

__all__ = ["Tunnel"]

_BIND = "127.0.0.1"
_WATCH_INTERVAL = 0.25
_JOIN_TIMEOUT = 10.0
_CLIENTS = ("auto", "openssh", "paramiko")

_log = logging.getLogger("manymap.secure")


class Tunnel(AbstractLauncher[None]):
    """Forward a local port on 127.0.0.1 over ssh to ``remote_host:remote_port`` as the ssh server sees it.

    Args:
        host: the ssh server: a host spec, ssh_config name, profile or connection.
        remote_port: the port to reach from the ssh server; ``None`` when it is not
            known yet (a server still starting): launch first, so that the ssh
            logins run meanwhile, then set :attr:`remote_port` before connecting.
        remote_host: the host to reach from the ssh server (default its own loopback).
        local_port: the local port (default 0: a free one, reserved race-free).
        through: jump host(s) to reach ``host`` through (``"jump1,jump2"`` or a profile).
        reconnect: after the ssh connection drops, open a new one for the next
            connection instead of stopping.
        client: what carries the bytes of :meth:`connect`: ``"openssh"`` (the
            OpenSSH client, required), ``"paramiko"``, or ``"auto"`` (the default:
            OpenSSH where it can run, else paramiko). Connections through the
            local port always go through paramiko.
        ssh_config: the ssh_config to resolve the hosts with.
        name: a label for messages.
        **overrides: keyword arguments of :func:`~manymap.secure.resolve`.

    Attributes:
        local_port: the local port, once launched.
        remote_host, remote_port: the target.
        reconnects: how many times a dropped ssh connection was replaced.
        client: what was asked for.

    Example:
        >>> with Tunnel("node7", 8080) as tunnel:  # doctest: +SKIP
        ...     tunnel.launch()
        ...     urllib.request.urlopen(f"http://127.0.0.1:{tunnel.local_port}/")
    """

    def __init__(
        self,
        host: str | HostProfile | Connection,
        remote_port: int | None,
        *,
        remote_host: str = "127.0.0.1",
        local_port: int = 0,
        through: str | HostProfile | None = None,
        reconnect: bool = False,
        client: Literal["auto", "openssh", "paramiko"] = "auto",
        ssh_config: str | os.PathLike[str] | None = None,
        name: str | None = None,
        **overrides: Any,
    ) -> None:
        _check_port(remote_port)
        if not 0 <= local_port < 65536:
            raise ValueError(f"local_port must be between 0 and 65535, not {local_port}")
        if client not in _CLIENTS:
            raise ValueError(f"client must be one of {', '.join(map(repr, _CLIENTS))}, not {client!r}")
        self._host = host
        if isinstance(host, Connection):
            if overrides or ssh_config is not None or through is not None:
                raise ValueError("host is a Connection: give no ssh_config, through or resolve options")
            self.profile = host.profile
        else:
            self.profile = resolve(host, ssh_config=ssh_config, through=through, **overrides)
        self.remote_host = remote_host
        self._remote_port = remote_port
        self.local_port = local_port
        self.reconnect = reconnect
        self.reconnects = 0
        self.client = client
        super().__init__(name or f"{remote_host}:{remote_port or '?'} via {self.profile.address}")
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._watcher: threading.Thread | None = None
        self._links: set[Link] = set()
        self._threads: set[threading.Thread] = set()
        self._stopped = threading.Event()  # stop asked for (kill, or the ssh connection lost)
        self._closed = threading.Event()  # ... and done: port, links and threads all closed
        self._error: TunnelError | None = None
        self._last_error: TunnelError | None = None
        self._launched = False
        self._forward: OpenSSHForward | None = None
        self._forward_deadline = 0.0
        self._openssh_error: str | None = None

    # -- errors -------------------------------------------------------------------------

    def _tunnel_error(self, message: str) -> TunnelError:
        return TunnelError(
            f"tunnel 127.0.0.1:{self.local_port} -> {self.remote_host}:{self.remote_port or '?'}: {message}",
            host=self.profile.hostname,
            port=self.profile.port,
        )

    @property
    def last_error(self) -> TunnelError | None:
        """Why the latest forwarded connection failed (target refused, ssh down), if one did."""
        return self._last_error

    @property
    def transport(self) -> str:
        """What carries :meth:`connect`'s bytes now: ``"openssh"``, ``"paramiko"``, or
        ``"starting"`` while the OpenSSH client logs in."""
        forward = self._forward
        if forward is None:
            return "paramiko"
        if not forward.settled.is_set():
            return "starting"
        return "openssh" if forward.ready else "paramiko"

    @property
    def openssh_error(self) -> str | None:
        """Why :meth:`connect` does not go through the OpenSSH client, when it does not."""
        forward = self._forward
        if forward is not None and forward.failure is not None:
            return forward.failure
        return self._openssh_error

    # -- launcher -----------------------------------------------------------------------

    def launch(self) -> None:
        """Connect over ssh and start listening on the local port.

        Raises:
            TunnelError: the local port is taken.
            ConnectError, HostKeyError, AuthenticationError: the ssh connection failed.
        """
        if self._launched:
            raise RuntimeError(f"{self!r} was already launched")
        self._launched = True
        try:
            self._connection = (
                connect(self._host) if isinstance(self._host, Connection) else connect(self.profile)
            )
            try:
                listener = reserve(_BIND, self.local_port).take()
            except NoFreePortError as error:
                raise self._tunnel_error(f"the local port is not free ({error})") from None
            listener.listen(128)
            self._listener = listener
            self.local_port = int(listener.getsockname()[1])
            self._forward = self._new_forward(self._connection)
        except BaseException:
            self._stopped.set()
            self._close_all()
            raise
        self._watcher = threading.Thread(target=self._watch, name=f"manymap-tunnel {self.name}", daemon=True)
        self._watcher.start()

    def _new_forward(self, connection: Connection) -> OpenSSHForward | None:
        """The OpenSSH forward to start, unless ``client`` or this machine rules it out."""
        if self.client == "paramiko":
            self._openssh_error = "client='paramiko' was asked for"
            return None
        why = unusable_reason(self.profile)
        if why is not None:
            if self.client == "openssh":
                raise self._tunnel_error(f"client='openssh' cannot be used: {why}")
            self._openssh_error = why
            return None
        key = connection.transport.get_remote_server_key()
        return OpenSSHForward(self.profile, f"{key.get_name()} {key.get_base64()}")

    @property
    def remote_port(self) -> int | None:
        """The port reached from the ssh server (``None``: not set yet)."""
        return self._remote_port

    @remote_port.setter
    def remote_port(self, port: int) -> None:
        """Set the port once, for a tunnel made with ``remote_port=None``."""
        if self._remote_port is not None:
            raise RuntimeError(f"{self!r} already leads to port {self._remote_port}")
        _check_port(port)
        self._remote_port = port

    def _target_port(self) -> int:
        port = self._remote_port
        if port is None:
            raise self._tunnel_error("no remote_port yet: set tunnel.remote_port before connecting")
        return port

    @property
    def address(self) -> tuple[str, int]:
        """``("127.0.0.1", local_port)``: where to connect."""
        return (_BIND, self.local_port)

    @property
    def connection(self) -> Connection | None:
        """The ssh connection handle the tunnel uses now."""
        return self._connection

    def _watch(self) -> None:
        listener = self._listener
        assert listener is not None
        selector = selectors.DefaultSelector()
        forward = self._forward
        try:
            selector.register(listener, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            if forward is not None:
                self._start_forward(forward, selector)
            while not self._stopped.is_set():
                try:
                    events = selector.select(_WATCH_INTERVAL)
                except (OSError, ValueError):
                    return  # the listener was closed under us (a _die from a link thread)
                if self._stopped.is_set():
                    return
                readable = {key.fileobj for key, _ in events}
                for key, _ in events:
                    if key.data is not None and key.fd in selector.get_map():
                        assert forward is not None  # (not yet unregistered by an earlier event)
                        self._read_forward(forward, key, selector)
                starting = forward is not None and not forward.settled.is_set()
                if starting and time.monotonic() > self._forward_deadline:
                    assert forward is not None
                    self._forward_failed(forward, "the ssh client did not open its forward in time", selector)
                if listener in readable:
                    try:
                        sock, _ = listener.accept()
                    except OSError:
                        continue
                    if not self._spawn(self._serve_accepted, sock):
                        sock.close()
                connection = self._connection
                if not self.reconnect and connection is not None and not connection.alive:
                    self._die(connection.why_lost())
                    return
        finally:
            # The watcher owns the listener and the wake-up pair while it runs: it closes
            # them on its way out, so no select() of its ever sees a closed socket. It
            # started the OpenSSH client, whose life ends with this thread in any case.
            selector.close()
            if forward is not None:
                forward.stop()
            with self._lock:
                self._listener = None
            listener.close()
            self._wake_r.close()
            self._wake_w.close()

    def _start_forward(self, forward: OpenSSHForward, selector: selectors.BaseSelector) -> None:
        """Start the OpenSSH client on this (the watcher's) thread and watch its output."""
        self._forward_deadline = time.monotonic() + 2 * self.profile.connect_timeout
        try:
            forward.start()
        except OSError as error:
            self._forward_failed(forward, f"the ssh client did not start: {error}")
            return
        assert forward.process is not None
        for data, pipe in (("out", forward.process.stdout), ("err", forward.process.stderr)):
            assert pipe is not None
            selector.register(pipe, selectors.EVENT_READ, data)

    def _read_forward(
        self, forward: OpenSSHForward, key: selectors.SelectorKey, selector: selectors.BaseSelector
    ) -> None:
        if forward.read(key.data):
            if forward.refused is not None:  # the client could not open a connection to the target
                self._last_error = self._tunnel_error(
                    f"the ssh server could not connect to {self.remote_host}:{self.remote_port} "
                    f"({forward.refused}; is anything listening there?)"
                )
                forward.refused = None
            return
        selector.unregister(key.fileobj)
        if key.data == "err":  # only the client holds its stderr: it is gone
            self._forward_failed(forward, forward.why_ended(), selector)

    def _forward_failed(
        self, forward: OpenSSHForward, reason: str, selector: selectors.BaseSelector | None = None
    ) -> None:
        """The OpenSSH client failed or ended: go on through paramiko, or stop (``client="openssh"``)."""
        forward.fail(reason)
        if selector is not None:  # its pipes close now: the watcher's selector lets them go first
            for key in list(selector.get_map().values()):
                if key.data is not None:
                    selector.unregister(key.fd)
        forward.stop()
        if self._stopped.is_set():
            return
        if self.client == "openssh":
            self._die(reason)
        else:
            _log.info("%s: connections go through paramiko: %s", self.name, reason)

    def _die(self, reason: str) -> None:
        """Stop because the ssh connection is gone: record why, refuse new connections."""
        with self._lock:
            if self._error is None:
                self._error = self._tunnel_error(reason)
                self._last_error = self._error
        self._stopped.set()
        self._close_all()

    def _spawn(self, target: Any, *args: Any) -> bool:
        """Run ``target(*args)`` on a tracked thread (joined by kill); False once stopped."""

        def main() -> None:
            try:
                target(*args)
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=main, name=f"manymap-tunnel-link {self.name}", daemon=True)
        with self._lock:
            if self._stopped.is_set():
                return False
            self._threads.add(thread)
        thread.start()
        return True

    def _serve_accepted(self, sock: socket.socket) -> None:
        try:
            channel = self._open_channel()
        except TunnelError as error:
            self._last_error = error
            sock.close()
            return
        self._pump(Link(sock, channel))

    def _pump(self, link: Link) -> None:
        with self._lock:
            if self._stopped.is_set():
                link.close()
                return
            self._links.add(link)

        def ended() -> None:
            with self._lock:
                self._links.discard(link)

        link.ended = ended
        link.pump(lambda direction: self._spawn(direction))

    def _ssh(self) -> Connection:
        """The live ssh connection, replaced first when it dropped and ``reconnect`` is on."""
        with self._lock:
            connection = self._connection
            if connection is not None and connection.alive:
                return connection
            if self._error is not None:
                raise self._error
            if self._stopped.is_set():
                raise self._tunnel_error("the tunnel is closed")
            if not self.reconnect:
                raise self._tunnel_error(connection.why_lost() if connection is not None else "not connected")
            if connection is not None:
                connection.close()
                self._connection = None
            try:
                self._connection = connect(self.profile)
            except ManymapError as error:
                raise self._tunnel_error(
                    f"the ssh connection was lost and reconnecting failed: {error}"
                ) from None
            self.reconnects += 1
            return self._connection

    def _open_channel(self, timeout: float | None = None) -> paramiko.Channel:
        connection = self._ssh()
        try:
            return connection.open_channel(self.remote_host, self._target_port(), timeout=timeout)
        except paramiko.ChannelException as error:
            raise self._tunnel_error(
                f"the ssh server could not connect to {self.remote_host}:{self.remote_port} "
                f"({error.text or 'refused'}; is anything listening there?)"
            ) from None
        except ConnectionLostError:
            reason = connection.why_lost()
            if not self.reconnect:
                self._die(reason)
            raise self._tunnel_error(reason) from None

    def connect(self, timeout: float | None = None) -> socket.socket:
        """A socket connected through the tunnel to the target.

        The caller owns (and closes) the returned socket: a connection to the
        OpenSSH client's forward (see :attr:`transport`), or one end of a local
        socket pair whose other end the tunnel pumps to the target through
        paramiko. Through the OpenSSH client a target that refuses shows as an
        end of file on the socket, and :attr:`last_error` says why; through
        paramiko it is raised here.

        Args:
            timeout: seconds to wait for the channel to open (paramiko), or for
                the OpenSSH client to finish logging in (for that, ``None`` means
                twice the profile's ``connect_timeout``).

        Raises:
            TunnelError: the tunnel is stopped, the ssh connection is lost,
                ``client="openssh"`` and its client is gone, or (paramiko) the ssh
                server cannot connect to the target (nothing listens there).
        """
        if not self._launched:
            raise RuntimeError(f"{self!r} is not launched")
        forward = self._forward
        if forward is not None:
            sock = self._connect_forward(forward, timeout)
            if sock is not None:
                return sock
        channel = self._open_channel(timeout)
        ours, theirs = socket.socketpair()
        link = Link(theirs, channel)
        if not self._spawn(self._pump, link):
            link.close()
            ours.close()
            raise self._error or self._tunnel_error("the tunnel is closed")
        return ours

    def _connect_forward(self, forward: OpenSSHForward, timeout: float | None) -> socket.socket | None:
        """A socket to the OpenSSH forward; ``None`` to go through paramiko instead."""
        self._ssh()  # a lost ssh connection is this tunnel's end, whichever client carries the bytes
        port = self._target_port()
        wait = self.profile.connect_timeout * 2 if timeout is None else timeout
        forward.settled.wait(wait)
        try:
            if not forward.ready:
                raise ConnectionRefusedError(forward.failure or "the ssh client has not logged in")
            forward.forward(self.remote_host, port, wait)
            return forward.connect()
        except OSError as error:
            if self.client == "openssh":
                raise self._error or self._tunnel_error(
                    f"the OpenSSH forward is not there: {error}"
                ) from None
            return None

    def check(self) -> None:
        """Raise :class:`~manymap.launcher.TunnelError` unless the tunnel is up (with ``reconnect``:
        unless it can reconnect)."""
        if not self._launched:
            raise RuntimeError(f"{self!r} is not launched")
        self._ssh()

    @property
    def connections(self) -> int:
        """How many forwarded connections are open now."""
        with self._lock:
            return len(self._links)

    def response(self, timeout: float | None = None) -> None:
        """Wait at most ``timeout`` seconds for the tunnel to stop.

        Returns ``None`` once it was killed.

        Raises:
            TunnelError: it stopped because the ssh connection was lost.
            ResultTimeoutError: it is still up after ``timeout``.
        """
        if not self._launched:
            raise RuntimeError(f"{self!r} is not launched")
        if not self._closed.wait(timeout):
            raise ResultTimeoutError(
                f"{self.profile.address}: tunnel {self.name} still open after {timeout:g} s"
            )
        if self._error is not None:
            raise self._error

    def running(self) -> bool:
        """Whether the tunnel was launched and has not stopped."""
        return self._launched and not self._stopped.is_set()

    def pid(self) -> int | None:
        """This process's pid once launched: the tunnel's threads run here."""
        return os.getpid() if self._launched else None

    def kill(self) -> None:
        """Close the port, every forwarded connection and the ssh connection handle; join every thread."""
        self._stopped.set()
        self._close_all()

    def _close_all(self) -> None:
        with contextlib.suppress(OSError):  # the watcher may have closed it already
            self._wake_w.send(b"x")
        current = threading.current_thread()
        watcher = self._watcher
        with self._lock:
            links = list(self._links)
            threads = list(self._threads)
            # Without a watcher (or from the watcher itself) nobody is in select(): close here.
            listener = self._listener if watcher is None or watcher is current else None
            if listener is not None:
                self._listener = None
        if listener is not None:
            listener.close()
        for link in links:
            link.stop()
        if watcher is None:
            self._wake_r.close()
            self._wake_w.close()
        elif watcher is not current:
            watcher.join(_JOIN_TIMEOUT)  # it closes the listener and the wake-up pair
        for thread in threads:
            if thread is not current:
                thread.join(_JOIN_TIMEOUT)
        for link in links:
            link.close()
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        self._closed.set()

    def __repr__(self) -> str:
        state = "idle" if not self._launched else "running" if not self._stopped.is_set() else "stopped"
        target = f"{self.remote_host}:{self.remote_port or '?'}"
        return f"<Tunnel 127.0.0.1:{self.local_port} -> {target} via {self.profile} {state}>"


def _check_port(port: int | None) -> None:
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"remote_port must be between 1 and 65535, not {port}")

"""``manymap.core.serve``: a ``manymap-server`` on this machine or on a host, and its handle.

The command line, the port and the secret are manymap-pools-rpc's
(:mod:`manymap.pools.rpc.bootstrap`); here the server runs under a
:class:`~manymap.core.LocalPipe` or a :class:`manymap.secure.Pipe`, and
:class:`Server` stops it.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any

from manymap import hosts as _hosts
from manymap.core._commands import HostLike, resolve_host
from manymap.core._pipe import LocalPipe
from manymap.pools.rpc.bootstrap import server_command, start_server, stop_server
from manymap.secure import Pipe

__all__ = ["Server", "serve"]


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
        """Stop the server: end its stdin (it stops at end of input), wait at most
        ``timeout`` seconds for it to end, then kill what is left."""
        stop_server(self.launcher, timeout)

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
        ResultTimeoutError: the server did not start within ``timeout`` (it is killed).
        RuntimeError: the server exited before saying its port (its stderr is in the
            message): a :class:`manymap.pools.rpc.bootstrap.ServerStartError`.
        ValueError: ``secret`` is more than one line.
    """
    secret = secret or secrets.token_hex(32)
    registered = None if host is None else _hosts.registry().lookup(host)
    if workers is None and registered is not None:
        workers = registered.workers
    interpreter = python or (registered.python if registered is not None else None)
    argv = server_command(
        interpreter or (sys.executable if host is None else "python3"), port=port or 0, workers=workers
    )
    launcher: LocalPipe | Pipe
    if host is None:
        launcher = LocalPipe(argv, stdin_open=True)
    else:
        where, registered = resolve_host(host)
        launcher = Pipe(
            where,
            argv,
            env=dict(registered.env) if registered is not None and registered.env else None,
            stdin_open=True,
            **overrides,
        )
    name = "localhost" if host is None else str(host)
    return Server(host, start_server(launcher, secret, where=name, timeout=timeout), secret, launcher)

"""Free TCP ports, race-free: picked by binding port 0, and held bound until the caller takes them over."""

from __future__ import annotations

import socket
from importlib import resources
from types import TracebackType

from manymap.launcher import ManymapError

from . import _standalone

__all__ = [
    "NoFreePortError",
    "Reservation",
    "is_port_free",
    "parse_ports",
    "pick_port",
    "pick_ports",
    "remote_source",
    "reserve",
]


class NoFreePortError(ManymapError, OSError):
    """No port could be bound: the host is not an address of this machine, or the port is taken.

    Attributes:
        host: the address asked for.
        port: the port asked for (0: any).
    """

    def __init__(self, message: str, *, host: str, port: int = 0) -> None:
        super().__init__(message)
        self.host = host
        self.port = port


def _bind(host: str, port: int) -> socket.socket:
    try:
        return _standalone.bind_free(host, port)
    except OSError as error:
        what = f"port {port}" if port else "a free port"
        raise NoFreePortError(f"cannot bind {what} on {host!r}: {error}", host=host, port=port) from error


class Reservation:
    """A TCP port held bound, so nothing else can take it, until released or taken over.

    Use it as a context manager: leaving the block closes the socket unless
    :meth:`take` handed it over. A server can simply ``listen()`` on the
    socket :meth:`take` returns: there is no moment where the port is free.

    Attributes:
        host: the address the port is bound on.
        port: the reserved port.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket: socket.socket | None = _bind(host, port)
        self.host = host
        self.port: int = int(self._socket.getsockname()[1])

    @property
    def held(self) -> bool:
        """Whether the reservation still holds the port (not released, not taken)."""
        return self._socket is not None

    def take(self) -> socket.socket:
        """Hand the bound (not listening) socket over to the caller, who now owns and closes it.

        Raises:
            ValueError: the reservation was already released or taken.
        """
        sock = self._socket
        if sock is None:
            raise ValueError(f"port {self.port} on {self.host} is no longer held")
        self._socket = None
        return sock

    def release(self) -> None:
        """Close the socket and free the port; harmless if already released or taken."""
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> Reservation:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else "released"
        return f"<Reservation {self.host}:{self.port} {state}>"


def reserve(host: str = "127.0.0.1", port: int = 0) -> Reservation:
    """Reserve a free TCP port on ``host`` (or exactly ``port``), held until released or taken.

    Args:
        host: a local address to bind: ``127.0.0.1`` (the default), ``::1``, ``0.0.0.0``...
        port: 0 for any free port (the kernel picks it), or a specific port to hold.

    Raises:
        NoFreePortError: the address is not local, or ``port`` is taken.

    Example:
        >>> with reserve() as reservation:
        ...     server = reservation.take()
        ...     server.listen()
        >>> server.close()
    """
    return Reservation(host, port)


def pick_port(host: str = "127.0.0.1") -> int:
    """A port free for TCP on ``host`` now, found by binding port 0 (never by guessing).

    The port is released on return, so another program could in principle
    take it before the caller binds it; :func:`reserve` closes that gap.

    Raises:
        NoFreePortError: ``host`` is not an address of this machine.
    """
    with reserve(host) as reservation:
        return reservation.port


def pick_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports on ``host`` (each held until all are picked, then released).

    Raises:
        ValueError: ``count`` is less than 1.
        NoFreePortError: ``host`` is not an address of this machine.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    reservations: list[Reservation] = []
    try:
        for _ in range(count):
            reservations.append(reserve(host))
        return [r.port for r in reservations]
    finally:
        for reservation in reservations:
            reservation.release()


def is_port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind ``host:port`` for TCP now.

    The check binds with ``SO_REUSEADDR``, as nearly every server does, so a
    port held only by connections in ``TIME_WAIT`` counts as free; one that a
    socket is bound to or listening on (a :class:`Reservation` included) does not.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, not {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return False
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


def remote_source() -> str:
    """The stdlib-only source of the port picker, to stream to a remote ``python3 -``.

    Run as ``python3 - [--count N] [--host H]`` with this text on standard
    input, it prints N distinct free ports on H, one per line; parse them
    with :func:`parse_ports`. It imports nothing that needs installing.
    """
    return resources.files("manymap.portpicker").joinpath("_standalone.py").read_text(encoding="utf-8")


def parse_ports(output: str | bytes, count: int | None = None) -> list[int]:
    """The ports printed by the remote picker (one per line).

    Raises:
        ValueError: the output is not a list of ports (or not ``count`` of them).
    """
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        ports = [int(line) for line in lines]
    except ValueError:
        raise ValueError(f"the port picker printed something else than ports: {text[:200]!r}") from None
    if not ports or any(not 0 < p < 65536 for p in ports) or (count is not None and len(ports) != count):
        raise ValueError(f"expected {count or 'some'} ports from the port picker, got {text[:200]!r}")
    return ports

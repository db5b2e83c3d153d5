"""Stdlib-only port picking: the part of manymap-portpicker that also runs on a remote host.

This module imports nothing but the standard library and nothing of manymap,
so its source can be streamed to any remote ``python3`` over an ssh channel
(``python3 - --count 2`` reading it from standard input) with nothing
installed there; :func:`manymap.portpicker.remote_source` returns it and
``manymap.secure.pick_remote_ports`` runs it. Run as a script it prints
``--count`` distinct free TCP ports on ``--host``, one per line.

A port is found by binding port 0 and reading what the kernel gave, never by
guessing; distinct ports are found by holding every socket bound until all
are picked.
"""

from __future__ import annotations

import argparse
import socket
import sys

__all__ = ["bind_free", "main", "pick_ports"]


def bind_free(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one chosen by the kernel), not listening.

    The socket does not set ``SO_REUSEADDR``, so while it stays open no
    other socket can bind the same port, with or without that option.

    Raises:
        OSError: ``host`` is not an address of this machine, or the port is taken.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def pick_ports(count: int = 1, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free for TCP on ``host`` now (all sockets held until every one is picked)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(bind_free(host))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def main(argv: list[str] | None = None) -> int:
    """Print ``--count`` free ports on ``--host``, one per line; exit 1 with the reason on stderr if none."""
    parser = argparse.ArgumentParser(description="Print free TCP ports, one per line.")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        ports = pick_ports(args.count, args.host)
    except (OSError, ValueError) as error:
        print(f"no free port on {args.host}: {error}", file=sys.stderr)
        return 1
    print("\n".join(str(port) for port in ports), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

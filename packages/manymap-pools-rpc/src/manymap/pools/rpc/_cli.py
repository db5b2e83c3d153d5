"""``manymap-server``: run an RPC server for ParallelPool clients."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from manymap.pools.rpc.__about__ import __version__
from manymap.pools.rpc._server import DEFAULT_FRAME_LIMIT, RPCServer

__all__ = ["main"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="manymap-server",
        description=(
            "Serve ParallelPool clients on ppft workers. Prints the port as its first line of "
            "output. The secret is read from --secret-file ('-': the first line of stdin, and the "
            "server then stops at the end of stdin), or generated and printed on stderr; "
            "it is never taken from the command line."
        ),
    )
    parser.add_argument("--version", action="version", version=f"manymap-pools-rpc {__version__}")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default 0: a free one)")
    parser.add_argument("--workers", type=int, default=None, help="ppft workers (default: the cores)")
    parser.add_argument(
        "--max-connections", type=int, default=None, help="clients at once (default: workers)"
    )
    parser.add_argument("--secret-file", default=None, help="file holding the secret, or - for stdin")
    parser.add_argument(
        "--idle-timeout", type=float, default=None, help="stop after S seconds without clients"
    )
    parser.add_argument(
        "--auth-timeout", type=float, default=5.0, help="seconds a client has to authenticate"
    )
    parser.add_argument(
        "--max-pending",
        type=int,
        default=128,
        help="connections that may be authenticating at once; more push the oldest out",
    )
    parser.add_argument(
        "--max-tasks-per-worker",
        type=int,
        default=None,
        metavar="N",
        help="replace a ppft worker by a fresh process after it ran N tasks (default: never)",
    )
    parser.add_argument("--frame-limit", type=int, default=DEFAULT_FRAME_LIMIT, help="largest frame in bytes")
    parser.add_argument("--pid-file", default=None, help="write the server's pid to this file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``manymap-server``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.workers is not None and args.workers < 1:
        print("manymap-server: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.max_tasks_per_worker is not None and args.max_tasks_per_worker < 1:
        print("manymap-server: --max-tasks-per-worker must be at least 1", file=sys.stderr)
        return 2
    if args.bind not in _LOOPBACK:
        # A command's warning reads as the command's, not as a line of manymap's source.
        print(
            f"manymap-server: warning: listening on {args.bind}, not only on the loopback: other hosts "
            "can try to connect (the secret still guards it; prefer an ssh tunnel)",
            file=sys.stderr,
            flush=True,
        )
    server = RPCServer(
        bind=args.bind,
        port=args.port,
        workers=args.workers,
        max_connections=args.max_connections,
        idle_timeout=args.idle_timeout,
        auth_timeout=args.auth_timeout,
        frame_limit=args.frame_limit,
        max_pending=args.max_pending,
        max_tasks_per_worker=args.max_tasks_per_worker,
    )
    if args.pid_file:
        # Whole or absent: a reader polling for the file never sees it empty.
        partial = f"{args.pid_file}.{os.getpid()}.tmp"
        with open(partial, "w") as file:
            file.write(f"{os.getpid()}\n")
        os.replace(partial, args.pid_file)
    print(server.port, flush=True)
    if args.secret_file == "-":
        secret = sys.stdin.readline().strip()
        if not secret:
            print("manymap-server: no secret on stdin", file=sys.stderr)
            return 2
        server.secret = secret
        server.stop_at_eof(sys.stdin.fileno())  # no thread reading stdin: nothing to trip finalization
    elif args.secret_file:
        with open(args.secret_file) as file:
            server.secret = file.read().strip()
        if not server.secret:
            print(f"manymap-server: {args.secret_file} holds no secret", file=sys.stderr)
            return 2
    else:
        print(f"manymap-server: secret {server.secret}", file=sys.stderr, flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        if args.pid_file:
            with contextlib.suppress(OSError):
                os.unlink(args.pid_file)
    return 0

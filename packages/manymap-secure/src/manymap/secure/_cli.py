"""The ``manymap-connect`` command (also ``python -m manymap.secure``).

It opens a tunnel and / or starts a command on a remote host, prints the
local port, then holds until Ctrl-C (or SIGTERM), end of standard input, the
remote command's exit or the ssh connection's loss, and tears everything
down: the tunnel closes and the remote command's process group is killed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from manymap.launcher import ManymapError, TunnelError

from .__about__ import __version__
from ._connection import connect
from ._hosts import resolve
from ._pipe import Pipe
from ._tunnel import Tunnel

_POLL = 0.5


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Open an ssh tunnel from a local port on 127.0.0.1 to a port reachable from HOST, and/or start "
            "a command on HOST. Prints the local port on stdout, then holds until Ctrl-C, end of input, "
            "the remote command's exit or the connection's loss, and tears everything down (the remote "
            "command's process group is killed)."
        ),
        epilog=(
            "Host keys are checked against known_hosts; unknown hosts are refused unless "
            "--accept-new-host-key. Example: manymap-connect node7 --remote-port 8080 "
            "--server 'python3 -m http.server 8080 --bind 127.0.0.1'"
        ),
    )
    parser.add_argument(
        "host", metavar="HOST", help="[user@]host[:port], ssh://user@host:port or an ssh_config name"
    )
    parser.add_argument("--remote-port", "-r", type=int, metavar="P", help="the port to reach from HOST")
    parser.add_argument(
        "--remote-host",
        default="127.0.0.1",
        metavar="RH",
        help="the host to reach from HOST (default 127.0.0.1: HOST's own loopback)",
    )
    parser.add_argument(
        "--local-port", "-l", type=int, default=0, metavar="L", help="the local port (default: a free one)"
    )
    parser.add_argument(
        "--through", "-J", metavar="JUMP", help="jump host(s) to go through: jump1[,jump2...]"
    )
    parser.add_argument(
        "--server",
        "-s",
        metavar="CMD",
        help="a shell command to run on HOST for as long as this command holds",
    )
    parser.add_argument("--ssh-config", "-F", metavar="FILE", help="ssh_config file (default ~/.ssh/config)")
    parser.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="accept and record the key of a host missing from known_hosts (changed keys are always refused)",
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=None, metavar="S", help="seconds to connect (default 10)"
    )
    parser.add_argument("--reconnect", action="store_true", help="reopen the ssh connection if it drops")
    parser.add_argument("--version", action="version", version=f"manymap-secure {__version__}")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the command; returns its exit status.

    0 after Ctrl-C or end of input; the remote command's status when it ended
    by itself; 1 when the connection failed or was lost; 2 on bad usage.
    """
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    # paramiko logs transport failures with tracebacks; this command reports them itself.
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    logging.getLogger("paramiko").propagate = False
    if args.remote_port is None and args.server is None:
        parser.error("nothing to do: give --remote-port and/or --server")
    if args.remote_port is None and args.local_port:
        parser.error("--local-port needs --remote-port")
    name = parser.prog
    try:
        profile = resolve(
            args.host,
            ssh_config=args.ssh_config,
            through=args.through,
            accept_new_host_keys=True if args.accept_new_host_key else None,
            connect_timeout=args.connect_timeout,
        )
    except (ValueError, OSError) as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2

    stop = threading.Event()
    reason: list[str] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        reason.append(signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    pipe: Pipe | None = None
    tunnel: Tunnel | None = None
    try:
        with connect(profile) as connection:
            if args.server is not None:
                pipe = Pipe(
                    connection,
                    args.server,
                    on_stdout=lambda data: _forward(sys.stderr, data),
                    on_stderr=lambda data: _forward(sys.stderr, data),
                    capture=False,
                )
                pipe.launch()
                print(
                    f"{name}: started {args.server!r} on {profile.address}, pid {pipe.pid()}", file=sys.stderr
                )
            if args.remote_port is not None:
                tunnel = Tunnel(
                    connection,
                    args.remote_port,
                    remote_host=args.remote_host,
                    local_port=args.local_port,
                    reconnect=args.reconnect,
                )
                tunnel.launch()
                print(tunnel.local_port, flush=True)
                print(
                    f"{name}: 127.0.0.1:{tunnel.local_port} -> {args.remote_host}:{args.remote_port} "
                    f"via {profile}; Ctrl-C or end of input to stop",
                    file=sys.stderr,
                    flush=True,
                )
            threading.Thread(
                target=_wait_for_eof, args=(stop, reason), name="manymap-connect-stdin", daemon=True
            ).start()
            return _hold(stop, reason, pipe, tunnel, name)
    except ManymapError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 1
    finally:
        if tunnel is not None:
            tunnel.kill()
        if pipe is not None and pipe.running():
            pipe.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _hold(
    stop: threading.Event, reason: list[str], pipe: Pipe | None, tunnel: Tunnel | None, name: str
) -> int:
    while not stop.wait(_POLL):
        if pipe is not None and not pipe.running():
            result = pipe.response(10.0)
            print(f"{name}: the remote command exited with status {result.returncode}", file=sys.stderr)
            return result.returncode if result.returncode is not None and result.returncode >= 0 else 1
        if tunnel is not None and not tunnel.running():
            try:
                tunnel.response(0)
            except TunnelError as error:
                print(f"{name}: {error}", file=sys.stderr)
            return 1
    print(f"{name}: stopping ({reason[0] if reason else 'stop'})", file=sys.stderr)
    return 0


def _wait_for_eof(stop: threading.Event, reason: list[str]) -> None:
    stream = sys.stdin
    if stream is None:
        return
    try:
        while stream.buffer.read1(65536):  # type: ignore[union-attr]  # a BufferedReader
            pass
    except (OSError, ValueError):
        pass
    reason.append("end of input")
    stop.set()


def _forward(stream: object, data: bytes) -> None:
    target = getattr(stream, "buffer", None)
    if target is not None:
        target.write(data)
        target.flush()

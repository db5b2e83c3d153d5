"""The ``manymap-portpicker`` command (also ``python -m manymap.portpicker``)."""

from __future__ import annotations

import argparse
import sys

from .__about__ import __version__
from ._core import NoFreePortError, pick_ports, remote_source


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Print free TCP ports, one per line, each found by binding port 0 (never by guessing). "
            "With --count N the N ports are distinct: every one is held until all are picked."
        ),
        epilog=(
            "On a remote host with nothing installed: "
            "manymap-portpicker --script | ssh HOST python3 - --count 2"
        ),
    )
    parser.add_argument("--count", "-n", type=int, default=1, metavar="N", help="how many ports (default 1)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="H",
        help="the local address the ports must be free on (default 127.0.0.1; ::1, 0.0.0.0 ...)",
    )
    parser.add_argument(
        "--script",
        action="store_true",
        help="print the stdlib-only picker source instead, to stream to a remote python3 (see below)",
    )
    parser.add_argument("--version", action="version", version=f"manymap-portpicker {__version__}")
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the command; returns its exit status (1 when no port could be picked, 2 on bad usage)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.script:
        sys.stdout.write(remote_source())
        return 0
    if args.count < 1:
        parser.error(f"--count must be at least 1, not {args.count}")
    try:
        ports = pick_ports(args.count, args.host)
    except NoFreePortError as error:
        print(f"manymap-portpicker: {error}", file=sys.stderr)
        return 1
    print("\n".join(str(port) for port in ports), flush=True)
    return 0

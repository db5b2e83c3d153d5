"""``python -m manymap_testhosts``: start a test sshd (and namespace hosts) by hand, for manual testing.

It prints the ssh_config to use (``ssh -F CONFIG manymap-sshd``) and holds
until Ctrl-C or end of input, then tears everything down.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path

from ._common import Unavailable
from ._netns import HostNetwork
from ._sshd import Keyring, SSHServer, write_ssh_config


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m manymap_testhosts",
        description="Start a private sshd on 127.0.0.1 and optionally N network namespace hosts, "
        "print the ssh_config that reaches them, hold until Ctrl-C or end of input, then tear down.",
    )
    parser.add_argument(
        "--hosts", type=int, default=0, metavar="N", help="namespace hosts to add (root only)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="manymap-testhosts-") as tmp:
        root = Path(tmp)
        try:
            keyring = Keyring(root / "keys")
            with SSHServer(root / "sshd", keyring) as server:
                entries = [(server.alias, server.client_options())]
                network = HostNetwork(root / "hosts", keyring, args.hosts) if args.hosts else None
                try:
                    if network is not None:
                        network.start()
                        for host in network:
                            options = host.sshd.client_options()
                            options["UserKnownHostsFile"] = str(network.known_hosts)
                            entries.append((host.alias, options))
                    config = write_ssh_config(root / "ssh_config", entries)
                    print(f"ssh_config: {config}")
                    for alias, options in entries:
                        print(f"  {alias}: {options['User']}@{options['HostName']}:{options['Port']}")
                    print(
                        f"try: ssh -F {config} {server.alias} true   (Ctrl-C or end of input stops)",
                        flush=True,
                    )
                    _hold()
                finally:
                    if network is not None:
                        network.stop()
        except Unavailable as error:
            print(f"cannot start test hosts: {error}", file=sys.stderr)
            return 1
    return 0


def _hold() -> None:
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def read_to_eof() -> None:
        for _ in sys.stdin:
            pass
        done.set()

    threading.Thread(target=read_to_eof, daemon=True).start()
    while not done.wait(1.0):
        pass


if __name__ == "__main__":
    sys.exit(main())

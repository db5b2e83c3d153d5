"""Benchmark bulk data through manymap.secure's ssh tunnel: where the time of an ssh payload goes.

Usage: ``python tools/bench/bench_ssh.py [--arrays N] [--repeat R] [--ciphers a,b]``
(``nox -s bench -- ssh`` runs it, with the private sshd of tools/testhosts).

It starts a real sshd on 127.0.0.1 (tools/testhosts) and an echo server (a
separate process, as a manymap-server is), then pushes ``--arrays`` blocks
of 8 MB to the echo server and reads them back, the writes on a thread of
their own so both directions flow at once (as tasks and results do):

- ``direct``: over a plain loopback TCP connection, the physical floor;
- ``tunnel <cipher>``: through :class:`manymap.secure.Tunnel` with
  ``client="paramiko"``, one row per cipher offered first (the server must
  allow it);
- ``tunnel openssh``: through the tunnel's OpenSSH forward (``client="openssh"``,
  its default where the client exists), the ssh client's CPU counted as this
  process's.

Each row is the median of ``--repeat`` rounds (rows take turns within a
round, so a loaded machine skews them alike) of the wall time, and of the
CPU seconds spent by this process (paramiko), by the sshd process serving
the connection, and by the echo server. On a loaded machine the wall time
follows the CPU time: compare the rows' CPU, and the ratios to ``direct`` of
the same run. The ParallelPool payload row of ``bench_pools.py`` (``--only
payload --contenders stdlib,manymap-parallel``) tells how much of an ssh
pool's payload time is the tunnel's at all.

It prints a markdown table and writes it as JSON to
``$MANYMAP_BENCH_DIR/ssh.json`` (default ``build/bench/``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BLOCK = 8 * 1024 * 1024
WAIT = float(os.environ.get("BENCH_SSH_WAIT", 120.0))  # seconds any one read or write may take

_ECHO = """
import socket
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(8)
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    buffer = bytearray(1 << 20)
    with conn:
        while size := conn.recv_into(buffer):
            conn.sendall(memoryview(buffer)[:size])
"""


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ssh_clients() -> list[int]:
    """This process's ``ssh`` children: the tunnel's OpenSSH client."""
    return [pid for pid in _children(os.getpid()) if Path(f"/proc/{pid}/comm").read_text().strip() == "ssh"]


def _cpu_of(pids: list[int]) -> float:
    return sum(_cpu(pid) for pid in pids)


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            with open(task / "children") as handle:
                found += [int(child) for child in handle.read().split()]
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
    return found


def _descendants(pid: int) -> list[int]:
    pending, found = [pid], []
    while pending:
        for child in _children(pending.pop()):
            found.append(child)
            pending.append(child)
    return found


def _echo_round(sock: socket.socket, arrays: int, payload: bytes) -> None:
    """Write ``arrays`` payloads (on a thread) while reading them back; check they came back whole."""
    sock.settimeout(WAIT)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(arrays):
                sock.sendall(payload)
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    buffer = bytearray(len(payload))
    for _ in range(arrays):
        view, got = memoryview(buffer), 0
        while got < len(buffer):
            size = sock.recv_into(view[got:])
            if not size:
                raise EOFError(f"the echo ended after {got} bytes")
            got += size
        if buffer != payload:
            raise AssertionError("the echo came back changed")
    writer.join(WAIT)
    if errors:
        raise errors[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--arrays", type=int, default=40, help="8 MB blocks each way per round (40)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds, median taken (default 5, min 3)")
    parser.add_argument("--quick", action="store_true", help="one round of 5 blocks: a smoke check")
    parser.add_argument(
        "--ciphers",
        default="aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr",
        help="ciphers to offer first, one row each (comma-separated)",
    )
    parser.add_argument("--window", type=int, default=None, help="receive window per channel (bytes)")
    parser.add_argument("--packet", type=int, default=None, help="largest packet accepted (bytes)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default $MANYMAP_BENCH_DIR/ssh.json)"
    )
    args, _ = parser.parse_known_args(argv)  # `nox -s bench -- ...` passes other scripts' options too
    repeat, arrays = (1, 5) if args.quick else (max(3, args.repeat), max(1, args.arrays))
    out = args.out or Path(os.environ.get("MANYMAP_BENCH_DIR", ROOT / "build" / "bench")) / "ssh.json"

    import manymap_testhosts as testhosts

    import manymap.secure._sshtransport as sshtransport  # the cipher order, patched per row
    from manymap.secure import Tunnel, connect

    directory = Path(tempfile.mkdtemp(prefix="manymap-bench-ssh-"))
    server = testhosts.SSHServer(directory / "sshd", testhosts.Keyring(directory / "keys"))
    echo: subprocess.Popen[str] | None = None
    tunnels: dict[str, Any] = {}
    default_order = sshtransport.PREFERRED_CIPHERS
    if args.window:
        sshtransport.WINDOW_SIZE = args.window
    if args.packet:
        sshtransport.MAX_PACKET_SIZE = args.packet
    try:
        server.start()
        echo = subprocess.Popen(
            [sys.executable, "-c", _ECHO], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        assert echo.stdout is not None
        port = int(echo.stdout.readline())
        sshd_pid = server.pid
        assert sshd_pid is not None
        rows: dict[str, Callable[[], socket.socket]] = {
            "direct": lambda: socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        }
        sessions: dict[str, list[int]] = {"direct": []}
        for cipher in [c.strip() for c in args.ciphers.split(",") if c.strip()]:
            before = set(_descendants(sshd_pid))
            sshtransport.PREFERRED_CIPHERS = (cipher,)
            # A private connection per row: shared ones would all ride on the first row's cipher.
            with connect(server.alias, ssh_config=str(server.ssh_config), shared=False) as connection:
                tunnel = Tunnel(connection, port, client="paramiko")
                tunnel.launch()  # holds a handle of its own on the connection
            negotiated = tunnel.connection.transport.local_cipher
            if negotiated != cipher:
                print(f"skipping {cipher}: the server chose {negotiated}", file=sys.stderr)
                tunnel.kill()
                continue
            key = f"tunnel {cipher}"
            tunnels[key] = tunnel
            rows[key] = lambda tunnel=tunnel: tunnel.connect(timeout=WAIT)
            sessions[key] = sorted(set(_descendants(sshd_pid)) - before)
        sshtransport.PREFERRED_CIPHERS = default_order
        if shutil.which("ssh") and shutil.which("setpriv"):
            before = set(_descendants(sshd_pid))
            tunnel = Tunnel(server.alias, port, ssh_config=str(server.ssh_config), client="openssh")
            tunnel.launch()
            tunnels["tunnel openssh"] = tunnel
            rows["tunnel openssh"] = lambda tunnel=tunnel: tunnel.connect(timeout=WAIT)
            tunnel.connect(timeout=WAIT).close()  # the client logged in and listens
            sessions["tunnel openssh"] = sorted(set(_descendants(sshd_pid)) - before)
        payload = os.urandom(BLOCK)
        samples: dict[str, list[dict[str, float]]] = {key: [] for key in rows}
        load = [os.getloadavg()[0]]
        for round_no in range(repeat):
            keys = list(rows)
            keys = keys[round_no % len(keys) :] + keys[: round_no % len(keys)]
            for key in keys:
                alive = [pid for pid in sessions[key] if Path(f"/proc/{pid}").exists()]
                watched = {"sshd": alive, "echo": [echo.pid], "ssh": _ssh_clients()}
                cpu0 = {name: _cpu_of(pids) for name, pids in watched.items()}
                own0 = os.times()
                started = time.perf_counter()
                with rows[key]() as sock:
                    _echo_round(sock, arrays, payload)
                wall = time.perf_counter() - started
                own1 = os.times()
                own = own1.user + own1.system - own0.user - own0.system
                sample = {"wall": wall, "client_cpu": own + _cpu_of(watched["ssh"]) - cpu0["ssh"]}
                sample.update({f"{name}_cpu": _cpu_of(pids) - cpu0[name] for name, pids in watched.items()})
                samples[key].append(sample)
            print(
                f"[round {round_no + 1}/{repeat}] "
                + ", ".join(f"{k} {samples[k][-1]['wall']:.2f} s" for k in rows),
                file=sys.stderr,
            )
        load.append(os.getloadavg()[0])
    finally:
        for tunnel in tunnels.values():
            tunnel.kill()
        if echo is not None:
            echo.kill()
            echo.wait(10)
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    medians = {
        key: {name: statistics.median(s[name] for s in runs) for name in runs[0]}
        for key, runs in samples.items()
    }
    floor = medians["direct"]["wall"]
    megabytes = 2 * arrays * BLOCK / 1e6
    print(f"## Bulk through the ssh tunnel: {arrays} x 8 MB each way, median of {repeat} rounds\n")
    print(
        f"load average {load[0]:.1f} at the start, {load[-1]:.1f} at the end; {platform.python_version()}\n"
    )
    print("| path | wall | vs direct | MB/s | CPU: this process (with its ssh client) | sshd | echo |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, m in medians.items():
        print(
            f"| {key} | {m['wall']:.2f} s | {m['wall'] / floor:.1f}x | {megabytes / m['wall']:.0f} | "
            f"{m['client_cpu']:.2f} s | {m['sshd_cpu']:.2f} s | {m['echo_cpu']:.2f} s |"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "arrays": arrays,
        "block": BLOCK,
        "repeat": repeat,
        "load": load,
        "samples": samples,
        "medians": medians,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

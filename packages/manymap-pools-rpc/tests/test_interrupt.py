"""Ctrl-C to a script using a ParallelPool (fault table, issue 12 row 10).

A real script with a local pool, interrupted mid-map by SIGINT to its whole
process group, as a terminal's Ctrl-C does, several times: no "Fatal Python
error" from the script or its server, and no process of the pool left.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from manymap_testhosts import process_gone, wait_until
from manymap_testhosts._common import descendants, kill_pids

from manymap.pools.rpc import ParallelPool

WAIT = 60.0

SCRIPT = """
import time
from manymap.pools.rpc import ParallelPool

pool = ParallelPool(2)
pool.map(abs, [1, 2])
print(pool._local.process.pid(), flush=True)
pool.map(time.sleep, [60] * 4, chunksize=1)
"""


def read_line(process: subprocess.Popen[bytes]) -> bytes:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(WAIT), "the script did not start its pool"
    return process.stdout.readline()


def busy_workers(server: int) -> list[int]:
    """The server's ppft workers (they run the sleeping tasks)."""
    return descendants(server)


@pytest.mark.parametrize("run", range(5))
def test_ctrl_c_to_the_process_group_mid_map(run: int) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group, as a terminal gives a job
    )
    left: list[int] = []
    try:
        server = int(read_line(process))
        wait_until(lambda: len(busy_workers(server)) >= 2, WAIT, "the map to start on the server's workers")
        left = [server, *busy_workers(server)]
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=WAIT)  # to the end of stderr: the server's too
        assert b"KeyboardInterrupt" in err
        assert b"Fatal Python error" not in err, err.decode(errors="replace")[-3000:]
        for pid in left:
            wait_until(lambda pid=pid: process_gone(pid), WAIT, f"process {pid} of the pool to exit")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(WAIT)
        kill_pids([pid for pid in left if not process_gone(pid)])


def test_sigint_and_sigterm_stop_the_server_cleanly(tmp_path: Path) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        secret = os.urandom(16).hex()
        process = subprocess.Popen(
            [sys.executable, "-m", "manymap.pools.rpc", "--secret-file", "-", "--workers", "2"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdin is not None
        try:
            port = int(read_line(process))
            process.stdin.write(secret.encode() + b"\n")
            process.stdin.flush()
            with (
                warnings.catch_warnings(),  # the pool may see its server go before it closes
                ParallelPool(0, servers=[f"127.0.0.1:{port}"], secret=secret) as pool,
            ):
                warnings.simplefilter("ignore", RuntimeWarning)
                assert pool.map(abs, [-1, -2]) == [1, 2]
                workers = descendants(process.pid)
                process.send_signal(signum)
                _, err = process.communicate(timeout=WAIT)
            assert process.returncode == 0, err.decode(errors="replace")[-3000:]
            assert b"Fatal Python error" not in err
            for pid in workers:
                wait_until(lambda pid=pid: process_gone(pid), WAIT, f"ppft worker {pid} to exit")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(WAIT)

"""The private sshd goes away with the process that started it, however that process ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from manymap_testhosts import process_gone, wait_until

STARTER = """
import sys, time
from pathlib import Path
from manymap_testhosts import Keyring, SSHServer

root = Path(sys.argv[1])
server = SSHServer(root / "sshd", Keyring(root / "keys")).start()
print(server.pid, flush=True)
time.sleep(600)
"""


def test_sshd_exits_when_its_starter_is_killed(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert starter.stdout is not None
    try:
        sshd = int(starter.stdout.readline())
        os.kill(sshd, 0)  # it runs
    finally:
        starter.kill()  # SIGKILL: no atexit, no finally, no fixture teardown
        starter.wait(10)
        starter.stdout.close()
    wait_until(lambda: process_gone(sshd), 10.0, f"sshd (pid {sshd}) exiting after its starter was killed")

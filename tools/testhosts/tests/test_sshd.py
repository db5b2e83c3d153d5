"""The private sshd goes away with the process that started it, however that process ends;
its sessions compute as this process does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_the_hosts_sessions_get_this_processs_numeric_library_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A namespace host is this machine: its OpenBLAS must pick the kernel this process's does.
    from manymap_testhosts._common import sshd_config_text

    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("NPY_WEIRD", 'has "quotes"')  # what sshd_config cannot quote is left out
    config = sshd_config_text(
        listen="127.0.0.1",
        port=2222,
        host_key=tmp_path / "k",
        authorized_keys=tmp_path / "a",
        home=tmp_path,
        token="t",
    )
    (setenv,) = [line for line in config.splitlines() if line.startswith("SetEnv ")]
    assert ' OPENBLAS_CORETYPE="Haswell"' in setenv
    assert ' OMP_NUM_THREADS="1"' in setenv
    assert "NPY_WEIRD" not in setenv
    assert setenv.startswith(f"SetEnv HOME={tmp_path} MANYMAP_TESTHOSTS=t")

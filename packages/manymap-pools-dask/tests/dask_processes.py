"""A Dask scheduler and workers started by hand, as real processes on 127.0.0.1.

Started as a user would (``dask scheduler``, ``dask worker``), each in a
process group of its own, and killed by pid (with that group) at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from manymap.launcher.testing import eventually

START = 60.0  # seconds a scheduler or worker may take to come up on a loaded machine


@dataclass
class HandCluster:
    """A scheduler and its workers; ``address`` is the scheduler's."""

    directory: Path
    address: str = ""
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, workers: int = 2) -> HandCluster:
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        scheduler_file = self.directory / "scheduler.json"
        self._spawn(
            [
                "distributed.cli.dask_scheduler",
                "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                "--scheduler-file", str(scheduler_file),
            ],
            env,
        )  # fmt: skip
        assert eventually(scheduler_file.exists, START), "the dask scheduler did not start"
        assert eventually(lambda: bool(_read(scheduler_file)), START)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for _ in range(workers):
            self._spawn(
                [
                    "distributed.cli.dask_worker", self.address,
                    "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                    "--no-dashboard", "--local-directory", str(self.directory),
                ],
                env,
            )  # fmt: skip
        return self

    def _spawn(self, args: list[str], env: dict[str, str]) -> None:
        log = open(self.directory / f"process-{len(self.processes)}.log", "wb")  # noqa: SIM115
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own group: teardown kills what it started
            )
        finally:
            log.close()
        self.processes.append(process)

    def kill_scheduler(self) -> None:
        """SIGKILL the scheduler (with its group) and reap it."""
        _kill(self.processes[0])

    def stop(self) -> None:
        """Kill every process started, by pid, with its group."""
        for process in reversed(self.processes):
            _kill(process)


def _kill(process: subprocess.Popen[bytes]) -> None:
    for call in (os.killpg, os.kill):
        with contextlib.suppress(OSError):
            call(process.pid, signal.SIGKILL)
    process.wait(START)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def wait_for_workers(address: str, count: int) -> None:
    """Wait until ``count`` workers have joined the scheduler at ``address``."""
    from distributed import Client

    with Client(address, set_as_default=False, timeout=START) as client:
        client.wait_for_workers(count, timeout=START)

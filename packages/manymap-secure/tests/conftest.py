"""Fixtures of manymap-secure's tests.

The ssh servers are real: ``sshd`` (one per session, on 127.0.0.1),
``testhosts`` (network namespace hosts, per module) and ``no_leaks`` come from
the monorepo's private ``testhosts-manymap`` pytest plugin (tools/testhosts),
which nox installs into this package's test session.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
from manymap_testhosts import SSHServer

from manymap.secure import HostProfile, resolve


@pytest.fixture(scope="session")
def profile(sshd: SSHServer) -> HostProfile:
    """The session sshd's profile, resolved through its ssh_config by alias."""
    return resolve(sshd.alias, ssh_config=sshd.ssh_config)


@pytest.fixture(scope="module")
def local_server() -> Iterator[Callable[[str], int]]:
    """``local_server(code)`` runs ``python -c code`` (a server that prints its port first)
    on 127.0.0.1, where the session's sshd runs, and gives its port; killed after the module."""
    processes: list[subprocess.Popen[str]] = []

    def start(code: str) -> int:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        processes.append(process)
        assert process.stdout is not None
        return int(process.stdout.readline())

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=10)

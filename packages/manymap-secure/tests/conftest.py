"""Fixtures of manymap-secure's tests.

The ssh servers are real: ``sshd`` (one per session, on 127.0.0.1),
``testhosts`` (network namespace hosts, per module) and ``no_leaks`` come from
the monorepo's private ``testhosts-manymap`` pytest plugin (tools/testhosts),
which nox installs into this package's test session.
"""

from __future__ import annotations

import pytest
from manymap_testhosts import SSHServer

from manymap.secure import HostProfile, resolve


@pytest.fixture(scope="session")
def profile(sshd: SSHServer) -> HostProfile:
    """The session sshd's profile, resolved through its ssh_config by alias."""
    return resolve(sshd.alias, ssh_config=sshd.ssh_config)

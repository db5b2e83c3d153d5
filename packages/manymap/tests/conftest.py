"""Fixtures of the meta package's tests.

``sshd`` (a real OpenSSH server on 127.0.0.1) comes from the monorepo's
private ``testhosts-manymap`` pytest plugin (tools/testhosts), which nox
installs into this package's test session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from manymap_testhosts import SSHServer

from manymap import hosts


@pytest.fixture
def node(sshd: SSHServer) -> Iterator[hosts.Host]:
    """The session sshd registered in the default host registry as ``test-node``."""
    host = hosts.register(
        "test-node", sshd.alias, ssh_config=sshd.ssh_config, env={"MANYMAP_TEST_NODE": "yes"}, workers=2
    )
    yield host
    hosts.unregister("test-node")

"""ParallelPool passes the launcher's conformance suite: local ppft workers, and remote
workers only, on a manymap-server started over ssh on the loopback sshd and reached
through a tunnel."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from manymap_testhosts import SSHServer

from manymap.launcher.testing import PoolConformance
from manymap.pools.rpc import ParallelPool


class TestParallelPoolLocal(PoolConformance):
    def make_pool(self, nodes: int = 2, **options: Any) -> ParallelPool:
        return ParallelPool(nodes, **options)


class TestParallelPoolOverSsh(PoolConformance):
    """``nodes=0``: every worker is on a server started over ssh (the suite's ``nodes`` of them)."""

    sshd: ClassVar[SSHServer]

    @pytest.fixture(autouse=True)
    def _server(self, sshd: SSHServer) -> Iterator[None]:
        type(self).sshd = sshd
        return

    def make_pool(self, nodes: int = 2, **options: Any) -> ParallelPool:
        if nodes < 1:  # the suite's size is the remote workers'; 0 of them is no pool
            raise ValueError(f"nodes must be a positive integer, got {nodes!r}")
        return ParallelPool(
            0,
            servers=[self.sshd.alias],
            ssh_config=self.sshd.ssh_config,
            python=sys.executable,
            server_workers=nodes,
            **options,
        )

"""The fault table of docs/faults.md (``manymap.launcher.testing.FaultConformance``)
against ParallelPool: local ppft workers, and workers of a manymap-server started
over ssh on the loopback sshd (same machine: the table kills them by pid)."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

import pytest
from manymap_testhosts import SSHServer

from manymap.launcher.testing import FaultConformance
from manymap.pools.rpc import ParallelPool


class TestParallelPoolLocalFaults(FaultConformance):
    owner_source = "from manymap.pools.rpc import ParallelPool\npool = ParallelPool(2)"

    def make_pool(self, nodes: int = 2, **options: Any) -> ParallelPool:
        return ParallelPool(nodes, **options)


class TestParallelPoolOverSshFaults(FaultConformance):
    """``nodes=0``: every worker is on a server started over ssh."""

    sshd: ClassVar[SSHServer]

    @pytest.fixture(autouse=True)
    def _server(self, sshd: SSHServer) -> None:
        type(self).sshd = sshd

    def _arguments(self) -> str:
        return (
            f"0, servers=[{self.sshd.alias!r}], ssh_config={str(self.sshd.ssh_config)!r}, "
            f"python={sys.executable!r}, server_workers=2"
        )

    @property  # type: ignore[misc]
    def owner_source(self) -> str:  # type: ignore[override]
        return f"from manymap.pools.rpc import ParallelPool\npool = ParallelPool({self._arguments()})"

    def make_pool(self, nodes: int = 2, **options: Any) -> ParallelPool:
        return ParallelPool(
            0,
            servers=[self.sshd.alias],
            ssh_config=self.sshd.ssh_config,
            python=sys.executable,
            server_workers=nodes,
            **options,
        )

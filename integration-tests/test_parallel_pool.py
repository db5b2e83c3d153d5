"""ParallelPool with the family: pools nest across hosts (a remote map whose tasks run a
local ProcessPool on their host), and work spreads over local workers and namespace hosts."""

from __future__ import annotations

import sys

from manymap_testhosts import HostNetwork

from manymap.pools.rpc import ParallelPool

TESTHOSTS = 2


def test_a_remote_map_whose_tasks_run_a_process_pool(testhosts: HostNetwork) -> None:
    factor = 3

    def inner(n: int) -> tuple[int, list[int]]:
        import os

        from manymap.pools.local import ProcessPool

        with ProcessPool(2) as pool:
            values = pool.map(lambda x: x * factor, range(n))
        return os.getpid(), values

    servers = [host.alias for host in testhosts]
    with ParallelPool(
        0, servers=servers, ssh_config=testhosts.ssh_config, python=sys.executable, server_workers=1
    ) as pool:
        results = pool.map(inner, [3, 4, 5, 6], chunksize=1)
        hosts = {w.host for w in pool.stats().workers.values() if w.tasks}
    assert [values for _, values in results] == [[x * factor for x in range(n)] for n in (3, 4, 5, 6)]
    assert hosts == set(servers)

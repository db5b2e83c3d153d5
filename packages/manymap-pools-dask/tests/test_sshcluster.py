"""DaskPool on an ``SSHCluster`` over two network-namespace test hosts (each its
own address and a real sshd), TLS between client, scheduler and workers.

The scheduler and one worker run on the first host, one worker on the second;
all of them are started by distributed's ``SSHCluster`` through the hosts'
sshd (asyncssh), as ``sys.executable -m distributed.cli.dask_spec`` (the hosts
share this machine's filesystem). The credentials are made for the module
(``Security.temporary()``: one self-signed certificate and key for every
role), written to private files; the remote processes get only the paths,
through the Dask configuration ``SSHCluster`` hands them, never the key.
"""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from manymap_testhosts import HostNetwork, wait_until

from manymap.launcher import ConnectionLostError
from manymap.launcher.testing import FaultConformance, PoolConformance
from manymap.launcher.testing import _tasks as tasks
from manymap.pools.dask import DaskPool

TESTHOSTS = 2
WAIT = 60.0
WORKERS = 2


def write_credentials(directory: Path) -> dict[str, Any]:
    """A CA, certificate and key for every role, in private files; the Dask
    configuration that requires TLS with them."""
    from distributed.security import Security

    made: Any = Security.temporary()  # untyped in distributed
    directory.mkdir(mode=0o700)
    ca = directory / "ca.pem"
    cert = directory / "cert.pem"
    key = directory / "key.pem"
    ca.write_text(made.tls_ca_file)
    cert.write_text(made.tls_client_cert)
    key.touch(mode=0o600)
    key.write_text(made.tls_client_key)
    config: dict[str, Any] = {
        "distributed.comm.require-encryption": True,
        "distributed.comm.tls.ca-file": str(ca),
    }
    for role in ("client", "scheduler", "worker"):
        config[f"distributed.comm.tls.{role}.cert"] = str(cert)
        config[f"distributed.comm.tls.{role}.key"] = str(key)
    return config


def client_security(config: dict[str, Any]) -> Any:
    from distributed.security import Security

    return Security(
        require_encryption=True,
        tls_ca_file=config["distributed.comm.tls.ca-file"],
        tls_client_cert=config["distributed.comm.tls.client.cert"],
        tls_client_key=config["distributed.comm.tls.client.key"],
    )


def worker_count(cluster: Any) -> int:
    return len(cluster.scheduler_info.get("workers", {}))


@pytest.fixture(scope="module")
def tls_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return write_credentials(tmp_path_factory.mktemp("dask-tls") / "credentials")


@pytest.fixture(scope="module")
def ssh_cluster(testhosts: HostNetwork, tls_config: dict[str, Any]) -> Iterator[Any]:
    import dask
    import distributed

    first, second = testhosts
    connect = {
        "username": getpass.getuser(),
        "port": first.port,
        "known_hosts": str(testhosts.known_hosts),
        "client_keys": [str(testhosts.keyring.client_key)],
        "config": [],  # none of this machine's ssh configuration
    }
    with dask.config.set(tls_config):  # what SSHCluster hands the remote processes
        cluster: Any = distributed.SSHCluster(  # untyped in distributed
            [first.address, first.address, second.address],
            connect_options=connect,
            scheduler_options={"protocol": "tls", "host": first.address, "port": 0, "dashboard": False},
            worker_options={"nthreads": 1, "n_workers": 1},
            remote_python=sys.executable,
            security=client_security(tls_config),
        )
    try:
        wait_until(lambda: worker_count(cluster) == WORKERS, WAIT, "the SSHCluster's workers")
        yield cluster
    finally:
        cluster.close(timeout=30)


class _OverSSH:
    cluster: ClassVar[Any]
    security: ClassVar[Any]

    @pytest.fixture(autouse=True)
    def _cluster(self, ssh_cluster: Any, tls_config: dict[str, Any]) -> None:
        type(self).cluster = ssh_cluster
        type(self).security = client_security(tls_config)
        # a worker restarted by an earlier test is back
        wait_until(lambda: worker_count(ssh_cluster) == WORKERS, WAIT, "the SSHCluster's workers")

    def make_pool(self, nodes: int = 2, **options: Any) -> DaskPool:
        return DaskPool(nodes, address=self.cluster.scheduler_address, security=self.security, **options)


class TestSSHClusterTLS(_OverSSH, PoolConformance):
    timeout = 2.0


class TestSSHClusterTLSFaults(_OverSSH, FaultConformance):
    # Not the pool's workers: it does not reap them when dropped, nor kill what
    # a task started on them (see the docs' "What the pool pins").
    reaps_on_gc = False
    child_kinds = ()


def test_everything_speaks_tls_on_the_hosts_addresses(ssh_cluster: Any, testhosts: HostNetwork) -> None:
    first, second = testhosts
    address = ssh_cluster.scheduler_address
    assert address.startswith(f"tls://{first.address}:"), address
    expected = {f"tls://{first.address}", f"tls://{second.address}"}

    def worker_hosts() -> set[str]:
        return {re.sub(r":\d+$", "", worker) for worker in ssh_cluster.scheduler_info.get("workers", {})}

    # A worker killed by an earlier fault test may still be on its way back.
    wait_until(lambda: worker_hosts() == expected, 60, "a worker on each host")
    with DaskPool(cluster=ssh_cluster) as pool:  # the cluster object brings its Security
        assert pool.map(tasks.square, range(20), chunksize=1) == [x * x for x in range(20)]
        workers = pool.stats().workers
        hosts = {re.sub(r":\d+\[.*$", "", name) for name in workers}
        assert hosts, "no worker ran a task"
        assert hosts <= expected, sorted(workers)  # whichever ran them, each on its host over TLS
        assert pool.scheduler_address == address


def test_a_client_without_the_credentials_is_refused(ssh_cluster: Any, tmp_path: Path) -> None:
    import dask

    address = ssh_cluster.scheduler_address
    with pytest.raises(ValueError, match=r"needs security="):
        DaskPool(address=address)
    stranger = write_credentials(tmp_path / "other")  # a certificate of another CA
    pool = DaskPool(address=address, security=client_security(stranger))
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "3s"}),
        pytest.raises(ConnectionLostError, match=re.escape(address)),
    ):
        pool.map(tasks.square, range(2))
    pool.terminate()
    pool.join()

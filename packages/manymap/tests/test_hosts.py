"""manymap.hosts: the registry in code and from TOML, and resolution to manymap.secure profiles."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from manymap_testhosts import SSHServer

from manymap import hosts
from manymap.hosts import Host, HostRegistry
from manymap.secure import HostProfile

TOML = """
[hosts.node7]
ssh = "alice@node7.example.org:2222"
python = "/opt/py/bin/python3"
workers = 16
env = { OMP_NUM_THREADS = "1", LANG = "C.UTF-8" }

[hosts.lab]
ssh_config = "lab.ssh_config"
through = "bob@gateway:2200"
"""


def test_load_from_toml(tmp_path: Path) -> None:
    file = tmp_path / "hosts.toml"
    file.write_text(TOML)
    registry = HostRegistry()
    assert registry.load(file) == ["node7", "lab"]
    node7 = registry.get("node7")
    assert node7 == Host(
        "node7",
        "alice@node7.example.org:2222",
        "/opt/py/bin/python3",
        16,
        {"OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"},
    )
    assert dict(node7.env) == {"OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"}
    lab = registry.get("lab")
    assert lab.ssh == "lab", "the ssh target defaults to the name"
    assert lab.python == "python3"
    assert lab.workers is None
    assert lab.ssh_config == str(tmp_path / "lab.ssh_config"), "relative to the hosts file"
    assert registry.names() == ["lab", "node7"]
    assert "lab" in registry
    assert "nope" not in registry
    assert [h.name for h in registry] == ["lab", "node7"]


def test_profiles_come_from_manymap_secure(tmp_path: Path) -> None:
    (tmp_path / "ssh_config").write_text("Host lab\n    HostName 10.1.2.3\n    User carol\n    Port 2022\n")
    registry = HostRegistry()
    registry.register("n7", "alice@node7:2222", python="python3.12")
    registry.register("lab", ssh_config=tmp_path / "ssh_config", through="bob@gateway:2200")
    profile = registry.resolve("n7")
    assert isinstance(profile, HostProfile)
    assert (profile.user, profile.hostname, profile.port, profile.alias) == ("alice", "node7", 2222, "n7")
    lab = registry.resolve("lab")
    assert (lab.user, lab.hostname, lab.port) == ("carol", "10.1.2.3", 2022)
    assert lab.jump is not None
    assert (lab.jump.user, lab.jump.hostname, lab.jump.port) == (
        "bob",
        "gateway",
        2200,
    )
    # Not a registered name: an ssh spec, as manymap.secure reads it.
    other = registry.resolve("dave@elsewhere:23")
    assert (other.user, other.hostname, other.port) == ("dave", "elsewhere", 23)
    assert registry.resolve(other) is other


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[hosts.a]\nworkers = 0\n", "workers must be a positive integer"),
        ("[hosts.a]\nflavour = 'x'\n", r"unknown key\(s\) \['flavour'\]"),
        ("[hosts.a]\nenv = { 'BAD NAME' = 'x' }\n", "not an environment variable name"),
        ("[hosts.a]\nenv = { A = 1 }\n", "env A must be a string"),
        ("[hosts]\na = 3\n", "hosts.a is not a table"),
        ("[other]\nx = 1\n", r"expected only \[hosts.NAME\] tables"),
        ("[hosts.a\n", "not valid TOML"),
        ("[hosts.'a b']\n", "not a host name"),
    ],
)
def test_malformed_files_name_the_file_and_the_host(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        HostRegistry().load(file)
    assert str(file) in str(info.value)


def test_register_replace_and_unregister() -> None:
    registry = HostRegistry()
    registry.register("a", "x@y")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", "x@z", replace=False)
    registry.register("a", "x@y", replace=False)  # the same entry again is fine
    registry.register("a", "x@z")
    assert registry.get("a").ssh == "x@z"
    registry.unregister("a")
    with pytest.raises(KeyError, match="no host named 'a'"):
        registry.get("a")
    with pytest.raises(KeyError):
        registry.unregister("a")


def test_hosts_pickle() -> None:
    host = Host("a", "x@y", "py", 3, {"K": "v"}, "j", "/c")
    assert pickle.loads(pickle.dumps(host)) == host
    assert hash(pickle.loads(pickle.dumps(host))) == hash(host)


def test_default_registry_reads_the_hosts_file_from_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "hosts.toml"
    file.write_text(TOML)
    code = "from manymap import hosts; print(hosts.names(), hosts.get('node7').workers)"
    env = {**os.environ, hosts.HOSTS_ENV: str(file)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["['lab',", "'node7']", "16"]


def test_registered_name_resolves_to_the_real_sshd(node: Host, sshd: SSHServer) -> None:
    from manymap.secure import Pipe

    profile = hosts.resolve("test-node")
    assert (profile.hostname, profile.port) == (sshd.host, sshd.port)
    result = Pipe(profile, [sys.executable, "-c", "print('up')"]).run(timeout=30)
    assert result.stdout == b"up\n"


def test_parallel_pool_starts_servers_on_registered_hosts(node: Host, sshd: SSHServer) -> None:
    """A registered name in ``servers``: the host's own python, env and worker count, no other option."""
    from manymap.pools.rpc import ParallelPool, RemoteHost

    assert isinstance(node, RemoteHost)
    hosts.register(node.name, node.ssh, python=sys.executable, workers=2, env=dict(node.env),
                   ssh_config=node.ssh_config)  # fmt: skip
    with ParallelPool(0, servers=["test-node"]) as pool:
        marks = pool.map(lambda _: os.environ.get("MANYMAP_TEST_NODE"), range(4), chunksize=1)
        assert marks == ["yes"] * 4, "the host's env reaches the server's workers"
        assert pool.capacity == 2, "the host's worker count"
        assert {worker.host for worker in pool.stats().workers.values()} == {"test-node"}
    with ParallelPool(0, servers=[hosts.get("test-node")]) as pool:  # a Host entry itself
        assert pool.pipe(lambda name: os.environ.get(name), "MANYMAP_TEST_NODE") == "yes"

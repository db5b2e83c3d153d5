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


def test_server_options_for_parallel_pool() -> None:
    registry = HostRegistry()
    registry.register("a", "alice@a", python="/py", workers=3, ssh_config="/cfg")
    registry.register("b", "bob@b:2200", python="/py", workers=3, ssh_config="/cfg")
    registry.register("c", "c", python="/other/py")
    registry.register("d", "d", python="/py", workers=3, ssh_config="/cfg", env={"X": "1"})
    assert hosts.server_options(["a", "b"], registry) == {
        "servers": ["alice@a", "bob@b:2200"],
        "python": "/py",
        "server_workers": 3,
        "ssh_config": "/cfg",
    }
    assert hosts.server_options(["c"], registry) == {"servers": ["c"], "python": "/other/py"}
    with pytest.raises(ValueError, match="one python for all its servers"):
        hosts.server_options(["a", "c"], registry)
    with pytest.raises(ValueError, match="sets no env"):
        hosts.server_options(["a", "d"], registry)
    with pytest.raises(ValueError, match="no hosts"):
        hosts.server_options([], registry)
    with pytest.raises(KeyError, match="no host named 'z'"):
        hosts.server_options(["z"], registry)

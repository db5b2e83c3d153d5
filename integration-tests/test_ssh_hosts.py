"""The ssh side of the family on real hosts: secure + portpicker + serialize, and the test hosts.

``nox -s integration`` installs every distribution plus the private test hosts
(tools/testhosts) into one environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from manymap_testhosts import HostNetwork, Keyring, SSHServer, process_gone

from manymap.launcher import ManymapError
from manymap.portpicker import remote_source
from manymap.secure import HostKeyError, Pipe, Tunnel, TunnelError, pick_remote_ports, resolve

TESTHOSTS = 2


def test_openssh_itself_accepts_the_test_sshd_and_its_files(sshd: SSHServer) -> None:
    """The written ssh_config / known_hosts / key work for the OpenSSH client, with strict host keys."""
    done = subprocess.run(sshd.ssh_argv("echo", "openssh-ok"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "openssh-ok\n"


def test_openssh_reaches_every_namespace_host(testhosts: HostNetwork) -> None:
    for host in testhosts:
        argv = ["ssh", "-F", str(testhosts.ssh_config), host.alias, "hostname -I"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [host.address]  # its own namespace: one address, its own


def test_a_lambda_runs_on_a_remote_host_through_ssh(testhosts: HostNetwork) -> None:
    """serialize ships a closure by value; secure carries it to a namespace host's Python and back."""
    serialize = pytest.importorskip("manymap.serialize")
    offset = 40
    payload = serialize.dumps((lambda x: x + offset, 2))
    remote = (
        "import sys\nfrom manymap.serialize import dumps, loads\n"
        "f, x = loads(sys.stdin.buffer.read())\nsys.stdout.buffer.write(dumps(f(x)))\n"
    )
    result = Pipe(
        testhosts[0].alias, [sys.executable, "-c", remote], input=payload, ssh_config=testhosts.ssh_config
    )
    assert serialize.loads(result.run(timeout=60).check().stdout) == 42


def test_remote_ports_come_from_portpickers_standalone_source(testhosts: HostNetwork) -> None:
    assert "import manymap" not in remote_source()
    ports = pick_remote_ports(
        testhosts[1].alias,
        2,
        python="/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable,
        ssh_config=testhosts.ssh_config,
    )
    assert len(set(ports)) == 2


def test_every_ssh_error_is_a_manymap_error(sshd: SSHServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    profile = resolve(sshd.alias, ssh_config=sshd.ssh_config, known_hosts=empty)
    with pytest.raises(HostKeyError) as info:
        Pipe(profile, ["true"]).run(timeout=30)
    assert isinstance(info.value, ManymapError)
    assert f"127.0.0.1:{sshd.port}" in str(info.value)


def test_a_tunnel_dies_with_its_host(testhosts_keyring: Keyring, tmp_path: Path) -> None:
    """A test host torn down under a live tunnel: TunnelError, no hang; teardown leaves nothing behind."""
    network = HostNetwork(tmp_path / "net", testhosts_keyring, 1)
    network.start()
    try:
        host = network[0]
        sshd_pid = host.sshd.pid
        assert sshd_pid is not None
        tunnel = Tunnel(host.alias, 22, ssh_config=network.ssh_config, keepalive_interval=0.5)
        tunnel.launch()
    finally:
        network.stop()
    try:
        with pytest.raises(TunnelError):
            tunnel.response(timeout=20)
    finally:
        tunnel.kill()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    assert host.netns not in listed
    links = subprocess.run(["ip", "link", "show"], capture_output=True, text=True, timeout=30).stdout
    assert network.bridge not in links
    assert process_gone(sshd_pid)


@pytest.mark.parametrize(("required", "outcome"), [("", "1 skipped"), ("1", "1 failed")])
def test_missing_test_hosts_skip_loudly_or_fail_when_required(
    tmp_path: Path, required: str, outcome: str
) -> None:
    """The policy of the fixtures when a machine cannot host them: skip with the reason, fail in CI."""
    test = tmp_path / "test_policy.py"
    test.write_text(
        "from manymap_testhosts import unavailable\n\n"
        "def test_it():\n    unavailable('no sshd on this machine (test)')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MANYMAP_REQUIRE_SSHD"}
    if required:
        env["MANYMAP_REQUIRE_SSHD"] = required
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", str(test)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert outcome in done.stdout, done.stdout
    assert "no sshd on this machine (test)" in done.stdout
    expected = (
        "MANYMAP_REQUIRE_SSHD=1 but this machine cannot run" if required else "NO TEST HOSTS ON THIS MACHINE"
    )
    assert expected in done.stdout

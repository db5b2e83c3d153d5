"""Test hosts as Linux network namespaces on a private bridge, each with its own sshd.

Layout of a :class:`HostNetwork` of N hosts (``T`` a random token, ``X`` a
free third octet, picked under a lock so concurrent test runs never share
names or a subnet)::

    root namespace (the tests)            namespace manymap-T-1 ... manymap-T-N
    bridge mmbT   10.213.X.1/24  <-veth->  eth0 10.213.X.2 ... 10.213.X.(N+1), lo up
                                           sshd on eth0's address, port 22

Every host shares the machine's filesystem and processes (only the network
is separate), so a remote command may run ``sys.executable`` there and the
tests can watch its processes in ``/proc``. Traffic stays between these
namespaces: the subnet is routed nowhere else. Teardown kills every process
left in each namespace (all started by these fixtures or through their sshd),
then deletes the namespaces and the bridge. A state file per network under
``/run/manymap-testhosts`` lets a later run clean up after one that was killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._common import Unavailable, ensure_tool, kill_pids, known_hosts_line, write_private
from ._sshd import Keyring, SSHServer, write_ssh_config

__all__ = ["HostNetwork", "NamespaceHost"]

_STATE_DIR = Path("/run/manymap-testhosts")
_LOCK = _STATE_DIR / "lock"
_SUBNET_PREFIX = "10.213"
_FIRST_OCTET = 7
_IP_TIMEOUT = 30.0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [ensure_tool("ip"), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=_IP_TIMEOUT,
    )
    if check and done.returncode != 0:
        raise Unavailable(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def _netns_pids(netns: str) -> list[int]:
    done = _ip("netns", "pids", netns, check=False)
    return [int(word) for word in done.stdout.split() if word.isdigit()]


class NamespaceHost:
    """One test host: a network namespace with its own address and sshd.

    Attributes:
        alias: its name in the network's ssh_config (``manymap-host1`` ...).
        netns: the network namespace.
        address: its address on the bridge.
        port: its sshd's port (22).
        sshd: its :class:`SSHServer`.
        veth: the root-side end of its link to the bridge.
    """

    def __init__(self, alias: str, netns: str, address: str, veth: str, sshd: SSHServer) -> None:
        self.alias = alias
        self.netns = netns
        self.address = address
        self.port = sshd.port
        self.veth = veth
        self.sshd = sshd

    @property
    def spec(self) -> str:
        """``user@address:22``, the host spec of its sshd."""
        return self.sshd.spec

    def argv(self, *command: str) -> list[str]:
        """``command`` wrapped to run inside this host's namespace."""
        return [ensure_tool("ip"), "netns", "exec", self.netns, *command]

    def run(self, *command: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside the namespace and wait for it (text output captured)."""
        return subprocess.run(
            self.argv(*command), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout
        )

    def popen(self, *command: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``command`` inside the namespace; teardown kills it if the caller did not."""
        return subprocess.Popen(self.argv(*command), **kwargs)

    def pids(self) -> list[int]:
        """The processes running inside the namespace (its sshd included)."""
        return _netns_pids(self.netns)

    def kill_connection(self, client_port: int) -> list[int]:
        """Kill the sshd processes serving the connection from the client's port (see SSHServer)."""
        return self.sshd.kill_connection(client_port)

    @contextlib.contextmanager
    def unplugged(self) -> Iterator[None]:
        """Cut this host off the bridge for the block: its packets are silently lost, as in a partition."""
        _ip("link", "set", "dev", self.veth, "down")
        try:
            yield
        finally:
            _ip("link", "set", "dev", self.veth, "up")

    def __repr__(self) -> str:
        return f"<NamespaceHost {self.alias} {self.address} netns={self.netns}>"


class HostNetwork:
    """N test hosts on a private bridge; a context manager that builds and tears it all down.

    Args:
        directory: where the hosts' files go (one subdirectory per host).
        keyring: the client keys every host's sshd accepts.
        count: how many hosts.

    Attributes:
        hosts: the hosts, in order.
        ssh_config: an ssh_config with a ``Host`` block per host alias.
        known_hosts: a known_hosts with every host's key.
        gateway: the root namespace's address on the bridge.
    """

    def __init__(self, directory: Path, keyring: Keyring, count: int = 2) -> None:
        if not 1 <= count <= 200:
            raise ValueError(f"count must be between 1 and 200, not {count}")
        self.directory = directory
        self.keyring = keyring
        self.count = count
        self.token = secrets.token_hex(2)
        self.bridge = f"mmb{self.token}"
        self.hosts: list[NamespaceHost] = []
        self.ssh_config = directory / "ssh_config"
        self.known_hosts = directory / "known_hosts"
        self.gateway = ""
        self._netns: list[str] = []
        self._veths: list[str] = []
        self._bridge_made = False
        self._state = _STATE_DIR / f"{self.token}.json"

    def __getitem__(self, index: int) -> NamespaceHost:
        return self.hosts[index]

    def __len__(self) -> int:
        return len(self.hosts)

    def __iter__(self) -> Iterator[NamespaceHost]:
        return iter(self.hosts)

    # -- life -----------------------------------------------------------------------------

    def start(self) -> HostNetwork:
        """Create the bridge, the namespaces and their links, and start every host's sshd.

        Raises:
            Unavailable: the machine cannot make network namespaces (not root, no ``ip``, no permission).
        """
        if os.geteuid() != 0:
            raise Unavailable("network namespaces need root")
        ensure_tool("ip")
        ensure_tool("sshd")
        self.directory.mkdir(parents=True, exist_ok=True)
        _STATE_DIR.mkdir(mode=0o755, exist_ok=True)
        try:
            with _locked():
                _clean_stale()
                octet = _free_octet()
                subnet = f"{_SUBNET_PREFIX}.{octet}"
                self.gateway = f"{subnet}.1"
                self._save_state()
                _ip("link", "add", self.bridge, "type", "bridge")
                self._bridge_made = True
                _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
                _ip("link", "set", self.bridge, "up")
            for index in range(1, self.count + 1):
                self._add_host(index, f"{subnet}.{index + 1}")
            self._write_client_files()
        except BaseException:
            self.stop()
            raise
        return self

    def _add_host(self, index: int, address: str) -> None:
        netns = f"manymap-{self.token}-{index}"
        veth, peer = f"mmv{self.token}{index}", f"mmp{self.token}{index}"
        _ip("netns", "add", netns)
        self._netns.append(netns)
        self._save_state()
        _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
        self._veths.append(veth)
        _ip("link", "set", peer, "netns", netns)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        _ip("-n", netns, "link", "set", peer, "name", "eth0")
        _ip("-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        alias = f"manymap-host{index}"
        sshd = SSHServer(
            self.directory / alias, self.keyring, listen=address, port=22, alias=alias, netns=netns
        )
        host = NamespaceHost(alias, netns, address, veth, sshd)
        self.hosts.append(host)
        sshd.start()
        host.port = sshd.port

    def _write_client_files(self) -> None:
        write_private(
            self.known_hosts,
            "".join(known_hosts_line(h.address, h.port, h.sshd.host_public) for h in self.hosts),
            0o644,
        )
        entries = []
        for host in self.hosts:
            options = host.sshd.client_options()
            options["UserKnownHostsFile"] = str(self.known_hosts)
            entries.append((host.alias, options))
        write_ssh_config(self.ssh_config, entries)

    def _save_state(self) -> None:
        state = {"owner": os.getpid(), "bridge": self.bridge, "netns": self._netns}
        self._state.write_text(json.dumps(state))

    def stop(self) -> None:
        """Stop every sshd, kill what is left in the namespaces, delete them and the bridge; idempotent."""
        for host in self.hosts:
            host.sshd.stop()
        _remove(self._netns, self.bridge if self._bridge_made else None)
        self._netns = []
        self._bridge_made = False
        self._state.unlink(missing_ok=True)

    def __enter__(self) -> HostNetwork:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<HostNetwork {self.bridge} {[h.address for h in self.hosts]}>"


def _remove(netns: Sequence[str], bridge: str | None) -> None:
    for name in netns:
        kill_pids(_netns_pids(name), grace=1.0)
        _ip("netns", "del", name, check=False)
    if bridge is not None:
        _ip("link", "del", bridge, check=False)


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Hold the machine-wide lock under which networks pick their subnet and names."""
    with open(_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_octet() -> int:
    used = _ip("-4", "-o", "addr", "show").stdout
    for octet in range(_FIRST_OCTET, 255):
        if f" {_SUBNET_PREFIX}.{octet}." not in used:
            return octet
    raise Unavailable(f"no free {_SUBNET_PREFIX}.X.0/24 subnet left for test hosts")


def _clean_stale() -> None:
    """Remove the namespaces and bridge of networks whose owning test run died without teardown."""
    for state_file in _STATE_DIR.glob("*.json"):
        try:
            state = json.loads(state_file.read_text())
            owner = int(state["owner"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if Path(f"/proc/{owner}").exists():
            continue
        _remove(
            [str(n) for n in state.get("netns", [])], str(state["bridge"]) if state.get("bridge") else None
        )
        state_file.unlink(missing_ok=True)

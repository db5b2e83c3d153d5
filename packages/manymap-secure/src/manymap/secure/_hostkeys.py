"""Host-key verification: which known_hosts files a connection trusts, and what an unknown key does.

Every key a server offers is checked against the profile's known_hosts files
(and the system-wide one): an unknown host is refused
(:class:`~manymap.launcher.HostKeyError`) unless the profile sets
``accept_new_host_keys``, which records the key in the first known_hosts
file; a *changed* key is always refused (:func:`changed_key_error`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import paramiko

from manymap.launcher import HostKeyError

from ._hosts import HostProfile

__all__ = ["changed_key_error", "trust_known_hosts"]

_GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown host keys, or accept and record them when the profile allows it."""

    def __init__(self, profile: HostProfile) -> None:
        self.profile = profile

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        profile = self.profile
        if not profile.accept_new_host_keys:
            files = ", ".join(profile.known_hosts) or "(none)"
            raise HostKeyError(
                f"unknown host key ({key.get_name()} {key.get_fingerprint().hex()}): {hostname} is not in "
                f"known_hosts ({files}); add its key, or allow accept_new_host_keys to record it",
                host=profile.hostname,
                port=profile.port,
            )
        client.get_host_keys().add(hostname, key.get_name(), key)
        if profile.known_hosts:
            path = Path(profile.known_hosts[0]).expanduser()
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


def trust_known_hosts(client: paramiko.SSHClient, profile: HostProfile) -> None:
    """Load the profile's known_hosts (and the system's) into ``client``; refuse unknown keys."""
    host_keys = client.get_host_keys()
    for name in profile.known_hosts:
        path = Path(name).expanduser()
        if path.is_file():
            host_keys.load(str(path))
    if os.path.isfile(_GLOBAL_KNOWN_HOSTS):
        with contextlib.suppress(OSError):  # unreadable global file: same as absent
            client.load_system_host_keys(_GLOBAL_KNOWN_HOSTS)
    client.set_missing_host_key_policy(_HostKeyPolicy(profile))


def changed_key_error(error: paramiko.BadHostKeyException, profile: HostProfile) -> HostKeyError:
    """The error for a server whose key differs from the one known_hosts holds."""
    return HostKeyError(
        f"HOST KEY CHANGED: the server offered {error.key.get_name()} "
        f"{error.key.get_fingerprint().hex()} but known_hosts ({', '.join(profile.known_hosts)}) has "
        f"{error.expected_key.get_fingerprint().hex()}; someone may be intercepting the connection "
        "(if the host was reinstalled, remove its old known_hosts entry)",
        host=profile.hostname,
        port=profile.port,
    )

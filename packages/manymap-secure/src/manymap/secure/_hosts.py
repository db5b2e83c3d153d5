"""Host specs and profiles: from ``user@host:port`` or an ssh_config name to all a connection needs.

:func:`resolve` turns what a caller writes (``"node7"``, ``"alice@node7:2222"``,
``"ssh://alice@[fe80::1]:22"``, or a :class:`HostProfile`) into a frozen
:class:`HostProfile`: ssh_config (``~/.ssh/config`` by default, or
``$MANYMAP_SSH_CONFIG``) supplies HostName, User, Port, IdentityFile,
IdentitiesOnly, ProxyJump, UserKnownHostsFile, StrictHostKeyChecking,
ConnectTimeout and ServerAliveInterval / ServerAliveCountMax; what the spec
says explicitly wins over the config. Profiles are hashable: equal profiles
share one ssh connection (see ``manymap.secure.connect``).
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

__all__ = ["SSH_CONFIG_ENV", "HostProfile", "default_ssh_config", "parse_host_spec", "resolve"]

#: Environment variable naming the ssh_config file to read instead of ``~/.ssh/config``.
SSH_CONFIG_ENV = "MANYMAP_SSH_CONFIG"

_DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
_MAX_JUMPS = 8
_SPEC = re.compile(
    r"""^(?:ssh://)?
        (?:(?P<user>[^@/\s]+)@)?
        (?:\[(?P<ipv6>[^\]]+)\]|(?P<host>[^:@/\s\[\]]+))
        (?::(?P<port>\d+))?
        /?$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class HostProfile:
    """Everything needed to open one ssh connection; equal profiles share a connection.

    Attributes:
        hostname: the address or DNS name to dial.
        port: the ssh port.
        user: the login name (default: the local user).
        identity_files: private key files to offer, in order.
        identities_only: offer only ``identity_files`` (no agent, no default keys).
        use_agent: also offer the keys of the ssh agent (``SSH_AUTH_SOCK``).
        known_hosts: the known_hosts files checked; new keys (when accepted) go to the first.
        accept_new_host_keys: accept and record the key of a host not in known_hosts
            (OpenSSH's ``StrictHostKeyChecking accept-new``). A *changed* key is always refused.
        connect_timeout: seconds allowed for the TCP connect, the handshake and the login each.
        keepalive_interval: seconds between liveness probes of an idle connection (0: none).
        keepalive_count_max: probes unanswered before the connection is declared lost.
        jump: the host to connect through (ProxyJump), itself a profile (possibly with its own jump).
        alias: the name the profile was resolved from (not part of equality).
    """

    hostname: str
    port: int = 22
    user: str = field(default_factory=getpass.getuser)
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    use_agent: bool = True
    known_hosts: tuple[str, ...] = _DEFAULT_KNOWN_HOSTS
    accept_new_host_keys: bool = False
    connect_timeout: float = 10.0
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    jump: HostProfile | None = None
    alias: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"ssh port must be between 1 and 65535, not {self.port}")
        if self.connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive, not {self.connect_timeout}")
        # Normalise sequences given as lists so the profile stays hashable.
        object.__setattr__(self, "identity_files", tuple(str(p) for p in self.identity_files))
        object.__setattr__(self, "known_hosts", tuple(str(p) for p in self.known_hosts))
        depth, hop = 0, self.jump
        while hop is not None:
            depth += 1
            if depth > _MAX_JUMPS:
                raise ValueError(f"more than {_MAX_JUMPS} jump hosts (a ProxyJump loop?)")
            hop = hop.jump

    @property
    def address(self) -> str:
        """``user@hostname:port`` (IPv6 in brackets), how messages name the host."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}:{self.port}"

    def replace(self, **changes: object) -> HostProfile:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def chain(self) -> list[HostProfile]:
        """The hops from the first jump host to this host, in connection order."""
        hops: list[HostProfile] = []
        hop: HostProfile | None = self
        while hop is not None:
            hops.append(hop)
            hop = hop.jump
        return hops[::-1]

    def __str__(self) -> str:
        via = f" via {self.jump}" if self.jump is not None else ""
        return f"{self.address}{via}"


def parse_host_spec(spec: str) -> tuple[str | None, str, int | None]:
    """Split ``[ssh://][user@]host[:port]`` into ``(user, host, port)``; IPv6 goes in brackets.

    A bare IPv6 address (several colons, no brackets) is a host without a port.

    Raises:
        ValueError: the text is not a host spec.
    """
    text = spec.strip()
    if text.count(":") > 1 and "[" not in text and not text.startswith("ssh://"):
        user, _, host = text.rpartition("@")
        return (user or None), host, None
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(f"not a host spec ([user@]host[:port]): {spec!r}")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port out of range in host spec {spec!r}")
    return match["user"], match["ipv6"] or match["host"], port


def default_ssh_config() -> Path:
    """The ssh_config read when none is given: ``$MANYMAP_SSH_CONFIG``, else ``~/.ssh/config``."""
    return Path(os.environ.get(SSH_CONFIG_ENV) or "~/.ssh/config").expanduser()


def _load_config(path: str | os.PathLike[str] | None) -> paramiko.SSHConfig | None:
    config_path = Path(path).expanduser() if path is not None else default_ssh_config()
    if not config_path.exists():  # not is_file(): "-F /dev/null" style empty configs work
        if path is not None:
            raise FileNotFoundError(f"ssh config file not found: {config_path}")
        return None
    return paramiko.SSHConfig.from_path(str(config_path))


def _yes(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("yes", "true", "on")


def _split_files(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else str(value).split()
    return tuple(os.path.expanduser(str(item)) for item in items if str(item).lower() != "none")


def resolve(
    host: str | HostProfile,
    *,
    ssh_config: str | os.PathLike[str] | None = None,
    user: str | None = None,
    port: int | None = None,
    identity_file: str | os.PathLike[str] | None = None,
    known_hosts: str | os.PathLike[str] | None = None,
    through: str | HostProfile | None = None,
    accept_new_host_keys: bool | None = None,
    connect_timeout: float | None = None,
    keepalive_interval: float | None = None,
) -> HostProfile:
    """Resolve a host spec or ssh_config name into a :class:`HostProfile`.

    Args:
        host: ``[user@]name[:port]`` (``name`` looked up in the ssh_config as a
            ``Host`` pattern), ``ssh://user@host:port``, or a profile (then only the
            overrides below apply).
        ssh_config: the ssh_config file to read; default ``$MANYMAP_SSH_CONFIG``, else
            ``~/.ssh/config`` (a missing default file is no error).
        user: login name, over the spec and the config.
        port: ssh port, over the spec and the config.
        identity_file: a private key to offer first.
        known_hosts: the known_hosts file to check host keys against (instead of the config's).
        through: jump host(s) to go through, over the config's ProxyJump:
            ``"jump1,jump2"`` (first dialled first) or a profile.
        accept_new_host_keys: accept and record unknown host keys (never changed ones).
        connect_timeout: seconds for connect, handshake and login.
        keepalive_interval: seconds between liveness probes (0: none).

    Raises:
        ValueError: a malformed spec, or an unsupported ssh_config option (ProxyCommand).
        FileNotFoundError: an explicitly given ssh_config does not exist.
    """
    if isinstance(host, HostProfile):
        profile = host
    else:
        profile = _from_config(host, _load_config(ssh_config), ssh_config, depth=0)
    changes: dict[str, object] = {}
    if user is not None:
        changes["user"] = user
    if port is not None:
        changes["port"] = port
    if identity_file is not None:
        changes["identity_files"] = (os.path.expanduser(os.fspath(identity_file)), *profile.identity_files)
    if known_hosts is not None:
        changes["known_hosts"] = (os.path.expanduser(os.fspath(known_hosts)),)
    if through is not None:
        changes["jump"] = _jump_chain(through, _load_config(ssh_config), ssh_config, depth=1)
    if accept_new_host_keys is not None:
        changes["accept_new_host_keys"] = accept_new_host_keys
    if connect_timeout is not None:
        changes["connect_timeout"] = connect_timeout
    if keepalive_interval is not None:
        changes["keepalive_interval"] = keepalive_interval
    return profile.replace(**changes) if changes else profile


def _from_config(
    spec: str, config: paramiko.SSHConfig | None, config_path: object, *, depth: int
) -> HostProfile:
    if depth > _MAX_JUMPS:
        raise ValueError(f"more than {_MAX_JUMPS} jump hosts resolving {spec!r} (a ProxyJump loop?)")
    spec_user, name, spec_port = parse_host_spec(spec)
    options = config.lookup(name) if config is not None else {"hostname": name}
    if "proxycommand" in options and str(options["proxycommand"]).lower() != "none":
        raise ValueError(f"ssh_config ProxyCommand for {name!r} is not supported; use ProxyJump")
    kwargs: dict[str, object] = {"hostname": str(options.get("hostname", name)), "alias": spec}
    if spec_user or options.get("user"):
        kwargs["user"] = spec_user or str(options["user"])
    if spec_port or options.get("port"):
        kwargs["port"] = spec_port or int(str(options["port"]))
    identities = _split_files(options.get("identityfile"))
    if identities:
        kwargs["identity_files"] = identities
    if _yes(options.get("identitiesonly")):
        kwargs["identities_only"] = True
    known = _split_files(options.get("userknownhostsfile"))
    if known:
        kwargs["known_hosts"] = known
    strict = str(options.get("stricthostkeychecking", "yes")).lower()
    kwargs["accept_new_host_keys"] = strict in ("accept-new", "no", "off")
    if options.get("connecttimeout"):
        kwargs["connect_timeout"] = float(str(options["connecttimeout"]))
    if options.get("serveraliveinterval"):
        kwargs["keepalive_interval"] = float(str(options["serveraliveinterval"]))
    if options.get("serveralivecountmax"):
        kwargs["keepalive_count_max"] = int(str(options["serveralivecountmax"]))
    jump = str(options.get("proxyjump", "none"))
    if jump.lower() != "none":
        kwargs["jump"] = _jump_chain(jump, config, config_path, depth=depth + 1)
    return HostProfile(**kwargs)  # type: ignore[arg-type]


def _jump_chain(
    through: str | HostProfile, config: paramiko.SSHConfig | None, config_path: object, *, depth: int
) -> HostProfile:
    """``"j1,j2,j3"`` as a profile for j3 that jumps through j2, which jumps through j1."""
    if isinstance(through, HostProfile):
        return through
    hops = [hop.strip() for hop in through.split(",") if hop.strip()]
    if not hops:
        raise ValueError(f"empty jump host list {through!r}")
    previous: HostProfile | None = None
    for hop in hops:
        profile = _from_config(hop, config, config_path, depth=depth)
        # The chain given here decides the route: each hop goes through the one before it,
        # and the first one goes wherever its own ProxyJump (if any) says.
        if previous is not None:
            profile = profile.replace(jump=previous)
        previous = profile
    assert previous is not None
    return previous

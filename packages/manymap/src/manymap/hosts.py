"""A registry of host profiles: where a host is, which Python runs there, with what environment.

A *host* here is a name for everything manymap needs to run work on a
machine: its ssh target (a ``user@host:port`` spec or an ssh_config name,
resolved by :func:`manymap.secure.resolve`), the remote interpreter, the
environment of remote commands, the number of workers to run there, and
optionally a jump host and an ssh_config file. Hosts are registered in code
or loaded from a TOML file:

```toml
[hosts.node7]
ssh = "alice@node7.example.org:2222"
python = "/opt/python3.12/bin/python3"
workers = 16
env = { OMP_NUM_THREADS = "1" }

[hosts.lab]
ssh = "lab"              # a Host of ~/.ssh/config
through = "gateway"      # ProxyJump
ssh_config = "~/.ssh/config.lab"
```

The default registry (the module functions :func:`register`, :func:`get`,
:func:`resolve`...) reads ``$MANYMAP_HOSTS`` (a path), else
``~/.config/manymap/hosts.toml`` when it exists, at its first lookup.
:mod:`manymap.core` takes these names wherever it takes a host, and
``ParallelPool(servers=[...])`` takes them (or :class:`Host` entries) as
servers to start over ssh, each with its own interpreter, environment,
worker count and jump host.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from manymap.secure import HostProfile
from manymap.secure import resolve as resolve_spec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "HOSTS_ENV",
    "Host",
    "HostRegistry",
    "default_hosts_file",
    "get",
    "load",
    "lookup",
    "names",
    "register",
    "registry",
    "resolve",
    "unregister",
]

#: Environment variable naming the hosts file of the default registry.
HOSTS_ENV = "MANYMAP_HOSTS"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYS = ("ssh", "python", "workers", "env", "through", "ssh_config")


def default_hosts_file() -> Path:
    """The default registry's file: ``$MANYMAP_HOSTS``, else ``~/.config/manymap/hosts.toml``."""
    return Path(os.environ.get(HOSTS_ENV) or "~/.config/manymap/hosts.toml").expanduser()


@dataclass(frozen=True)
class Host:
    """One named host.

    Attributes:
        name: the name it is registered under.
        ssh: the ssh target: ``[user@]host[:port]``, ``ssh://...`` or an ssh_config name
            (default: the name itself).
        python: the interpreter to run there (a name on the remote PATH or an absolute path).
        workers: how many workers to run there (``None``: as many as it has cores).
        env: environment variables for the commands run there.
        through: jump host(s), ``"jump1,jump2"`` (ProxyJump).
        ssh_config: the ssh_config file to resolve ``ssh`` with (default: the usual one).
    """

    name: str
    ssh: str = ""
    python: str = "python3"
    workers: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    through: str | None = None
    ssh_config: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"not a host name: {self.name!r} (letters, digits, '_', '.', '-')")
        if not self.ssh:
            object.__setattr__(self, "ssh", self.name)
        if not self.python:
            raise ValueError(f"host {self.name!r}: python must not be empty")
        if self.workers is not None and (
            isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1
        ):
            raise ValueError(f"host {self.name!r}: workers must be a positive integer, not {self.workers!r}")
        for key, value in self.env.items():
            if not isinstance(key, str) or not _ENV_NAME.match(key):
                raise ValueError(f"host {self.name!r}: not an environment variable name: {key!r}")
            if not isinstance(value, str):
                raise ValueError(f"host {self.name!r}: env {key} must be a string, not {value!r}")
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def profile(self) -> HostProfile:
        """The :class:`manymap.secure.HostProfile` of its ssh target (ssh_config read now)."""
        profile = resolve_spec(self.ssh, ssh_config=self.ssh_config, through=self.through)
        return profile.replace(alias=self.name)

    def __hash__(self) -> int:
        return hash((self.name, self.ssh, self.python, self.workers, self.through, self.ssh_config))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Host):
            return NotImplemented
        return (
            self.name,
            self.ssh,
            self.python,
            self.workers,
            dict(self.env),
            self.through,
            self.ssh_config,
        ) == (
            other.name,
            other.ssh,
            other.python,
            other.workers,
            dict(other.env),
            other.through,
            other.ssh_config,
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _make_host,
            (self.name, self.ssh, self.python, self.workers, dict(self.env), self.through, self.ssh_config),
        )


def _make_host(
    name: str,
    ssh: str,
    python: str,
    workers: int | None,
    env: dict[str, str],
    through: str | None,
    ssh_config: str | None,
) -> Host:
    return Host(name, ssh, python, workers, env, through, ssh_config)


class HostRegistry:
    """Named :class:`Host` entries, registered in code or loaded from TOML files.

    Args:
        path: a hosts file to load at the first lookup when it exists (``None``: none).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._hosts: dict[str, Host] = {}
        self._lock = threading.RLock()
        self._path = Path(path).expanduser() if path is not None else None
        self._loaded = path is None

    def _ensure_loaded(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            if self._path is not None and self._path.is_file():
                self.load(self._path, replace=False)

    def register(
        self,
        name: str | Host,
        ssh: str = "",
        *,
        python: str = "python3",
        workers: int | None = None,
        env: Mapping[str, str] | None = None,
        through: str | None = None,
        ssh_config: str | os.PathLike[str] | None = None,
        replace: bool = True,
    ) -> Host:
        """Register a host (or a ready :class:`Host`) under its name; returns it.

        Raises:
            ValueError: a bad name or field, or the name is taken and ``replace`` is false.
        """
        if isinstance(name, Host):
            host = name
        else:
            host = Host(
                name,
                ssh,
                python,
                workers,
                dict(env or {}),
                through,
                os.fspath(ssh_config) if ssh_config is not None else None,
            )
        with self._lock:
            self._ensure_loaded()
            if not replace and host.name in self._hosts and self._hosts[host.name] != host:
                raise ValueError(f"host {host.name!r} is already registered as {self._hosts[host.name]}")
            self._hosts[host.name] = host
        return host

    def unregister(self, name: str) -> None:
        """Forget a host.

        Raises:
            KeyError: no such host.
        """
        with self._lock:
            self._ensure_loaded()
            if name not in self._hosts:
                raise KeyError(f"no host named {name!r}")
            del self._hosts[name]

    def load(self, path: str | os.PathLike[str], *, replace: bool = True) -> list[str]:
        """Register every ``[hosts.NAME]`` table of a TOML file; returns the names, in file order.

        Relative ``ssh_config`` paths are taken relative to the file's directory.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not valid TOML, or an entry is malformed (the message
                names the file and the host).
        """
        file = Path(path).expanduser()
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{file}: not valid TOML: {exc}") from exc
        hosts = data.get("hosts", {})
        unknown_top = sorted(set(data) - {"hosts"})
        if unknown_top or not isinstance(hosts, dict):
            raise ValueError(f"{file}: expected only [hosts.NAME] tables, found {unknown_top or ['hosts']}")
        entries: list[Host] = []
        for name, table in hosts.items():
            if not isinstance(table, dict):
                raise ValueError(f"{file}: hosts.{name} is not a table")
            unknown = sorted(set(table) - set(_KEYS))
            if unknown:
                raise ValueError(f"{file}: hosts.{name}: unknown key(s) {unknown}; known: {list(_KEYS)}")
            config = table.get("ssh_config")
            if config is not None:
                config_path = Path(str(config)).expanduser()
                config = str(config_path if config_path.is_absolute() else file.parent / config_path)
            try:
                entries.append(
                    Host(
                        name,
                        str(table.get("ssh", "")),
                        str(table.get("python", "python3")),
                        table.get("workers"),
                        dict(table.get("env", {})),
                        table.get("through"),
                        config,
                    )
                )
            except (ValueError, TypeError, AttributeError) as exc:
                raise ValueError(f"{file}: hosts.{name}: {exc}") from exc
        for host in entries:
            self.register(host, replace=replace)
        return [host.name for host in entries]

    def get(self, name: str) -> Host:
        """The host registered as ``name``.

        Raises:
            KeyError: no such host (the message lists the known ones).
        """
        with self._lock:
            self._ensure_loaded()
            try:
                return self._hosts[name]
            except KeyError:
                known = ", ".join(sorted(self._hosts)) or "none"
                raise KeyError(f"no host named {name!r} (registered: {known})") from None

    def lookup(self, host: str | Host | HostProfile) -> Host | None:
        """The :class:`Host` that ``host`` names, or ``None`` if it is not a registered name."""
        if isinstance(host, Host):
            return host
        if isinstance(host, HostProfile):
            return None
        with self._lock:
            self._ensure_loaded()
            return self._hosts.get(host)

    def resolve(self, host: str | Host | HostProfile) -> HostProfile:
        """A :class:`manymap.secure.HostProfile` for a registered name, a host spec or a profile.

        A registered name wins; anything else goes to :func:`manymap.secure.resolve`.
        """
        if isinstance(host, HostProfile):
            return host
        found = self.lookup(host)
        if found is not None:
            return found.profile()
        assert isinstance(host, str)
        return resolve_spec(host)

    def names(self) -> list[str]:
        """The registered names, sorted."""
        with self._lock:
            self._ensure_loaded()
            return sorted(self._hosts)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            self._ensure_loaded()
            return name in self._hosts

    def __iter__(self) -> Iterator[Host]:
        with self._lock:
            self._ensure_loaded()
            return iter([self._hosts[name] for name in sorted(self._hosts)])

    def __len__(self) -> int:
        with self._lock:
            self._ensure_loaded()
            return len(self._hosts)

    def __repr__(self) -> str:
        return f"<HostRegistry {', '.join(self.names()) or '(empty)'}>"


_default: HostRegistry | None = None
_default_lock = threading.Lock()


def registry() -> HostRegistry:
    """The default registry, which reads :func:`default_hosts_file` at its first lookup."""
    global _default
    with _default_lock:
        if _default is None:
            _default = HostRegistry(default_hosts_file())
        return _default


def register(name: str | Host, ssh: str = "", **options: Any) -> Host:
    """Register a host in the default registry; see :meth:`HostRegistry.register`."""
    return registry().register(name, ssh, **options)


def unregister(name: str) -> None:
    """Forget a host of the default registry."""
    registry().unregister(name)


def load(path: str | os.PathLike[str], *, replace: bool = True) -> list[str]:
    """Load a TOML hosts file into the default registry; see :meth:`HostRegistry.load`."""
    return registry().load(path, replace=replace)


def get(name: str) -> Host:
    """The host of the default registry named ``name``."""
    return registry().get(name)


def lookup(name: str) -> Host | None:
    """The host of the default registry named ``name``, or ``None``.

    manymap-pools-rpc's ``ParallelPool`` finds registered names through this
    function (the ``manymap.hosts`` entry point of this package).
    """
    return registry().lookup(name)


def names() -> list[str]:
    """The names in the default registry."""
    return registry().names()


def resolve(host: str | Host | HostProfile) -> HostProfile:
    """A registered name (default registry), a host spec or a profile, as a ``HostProfile``."""
    return registry().resolve(host)

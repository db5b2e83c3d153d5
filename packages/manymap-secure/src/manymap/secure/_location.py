"""Where a copy goes: remote paths (``host:path``, ``ssh://...``) told from local ones, as scp does."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._connection import Connection
from ._hosts import HostProfile

__all__ = ["RemotePath", "parse_location", "remote_path"]


@dataclass(frozen=True)
class RemotePath:
    """A path on a remote host.

    Attributes:
        host: a host spec, ssh_config name, profile or connection.
        path: the remote path; relative paths (and ``~/...``) start at the login directory.
    """

    host: str | HostProfile | Connection
    path: str


def parse_location(location: str | os.PathLike[str] | RemotePath) -> RemotePath | str:
    """A :class:`RemotePath` for ``host:path`` / ``ssh://[user@]host[:port]/path``, else a local path.

    As with scp, ``host:path`` is remote only when the colon comes before any
    slash (``./a:b`` and ``/x:y`` are local); ``[user@][ipv6]:path`` puts an
    IPv6 address in brackets. An empty remote path is the login directory.
    """
    if isinstance(location, RemotePath):
        return location
    text = os.fspath(location)
    if text.startswith("ssh://"):
        rest = text[len("ssh://") :]
        host, separator, path = rest.partition("/")
        if not host:
            raise ValueError(f"no host in {text!r}")
        return RemotePath(host, "/" + path if separator else ".")
    if text.startswith("[") or "@[" in text:  # [user@][ipv6]:path
        close = text.find("]:")
        if close > 0 and "/" not in text[:close]:
            return RemotePath(text[: close + 1], text[close + 2 :] or ".")
    colon = text.find(":")
    slash = text.find("/")
    if colon > 0 and (slash < 0 or colon < slash):
        return RemotePath(text[:colon], text[colon + 1 :] or ".")
    return text


def remote_path(path: str) -> str:
    """The path as sftp takes it: relative to the login directory for ``~`` and ``~/...``."""
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:] or "."
    return path or "."

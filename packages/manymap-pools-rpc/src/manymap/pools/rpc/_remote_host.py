"""``RemoteHost``: what a host profile offers a ``ParallelPool``.

A protocol that ``isinstance`` checks at run time, so it needs ``typing``,
which no other module of the package imports at run time (5 to 10 ms): this
module is loaded when a pool is given something other than a string as a
server, or when ``manymap.pools.rpc.RemoteHost`` is first used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from manymap.secure import HostProfile

__all__ = ["RemoteHost"]


@runtime_checkable
class RemoteHost(Protocol):
    """A named host profile, such as :class:`manymap.hosts.Host`: where and how to run a server."""

    @property
    def name(self) -> str:
        """What the host is called in messages and in ``stats()``."""

    @property
    def python(self) -> str:
        """The interpreter that runs ``manymap-server`` there."""

    @property
    def workers(self) -> int | None:
        """The server's workers (``None``: as many as the host has cores)."""

    @property
    def env(self) -> Mapping[str, str]:
        """Environment variables for the server."""

    def profile(self) -> HostProfile:
        """How to reach the host over ssh."""

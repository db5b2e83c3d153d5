"""Free ports on a remote host: manymap-portpicker's stdlib-only picker, streamed to a remote python."""

from __future__ import annotations

import os
from typing import Any

from manymap.portpicker import parse_ports, remote_source

from ._connection import Connection
from ._hosts import HostProfile
from ._pipe import Pipe

__all__ = ["pick_remote_port", "pick_remote_ports"]


def pick_remote_ports(
    host: str | HostProfile | Connection,
    count: int = 1,
    *,
    bind: str = "127.0.0.1",
    python: str = "python3",
    timeout: float = 30.0,
    ssh_config: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> list[int]:
    """``count`` distinct ports free for TCP on ``bind`` of a remote host, nothing installed there.

    The picker's source goes to ``python - --count N --host BIND`` on the
    remote stdin; only a Python 3 interpreter is needed there.

    Args:
        host: the remote host (spec, ssh_config name, profile or connection).
        count: how many ports.
        bind: the remote address they must be free on.
        python: the remote interpreter (a name on the remote PATH, or an absolute path).
        timeout: seconds for the whole exchange.
        ssh_config: the ssh_config to resolve the host with.
        **overrides: keyword arguments of :func:`~manymap.secure.resolve`.

    Raises:
        RemoteCommandError: the remote picker failed (no such interpreter, ``bind`` not local there).
        ResultTimeoutError: no answer within ``timeout``.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    if not isinstance(host, Connection):
        overrides["ssh_config"] = ssh_config
    pipe = Pipe(
        host, [python, "-", "--count", str(count), "--host", bind], input=remote_source(), **overrides
    )
    result = pipe.run(timeout).check()
    return parse_ports(result.stdout, count)


def pick_remote_port(host: str | HostProfile | Connection, **kwargs: Any) -> int:
    """One port free for TCP on a remote host; see :func:`pick_remote_ports`."""
    return pick_remote_ports(host, 1, **kwargs)[0]

"""manymap.portpicker: race-free free-port selection, locally and on a remote host.

A port is found by binding port 0, never by guessing. :func:`reserve` keeps it
bound until the caller takes the socket over, so nothing can grab it in
between; :func:`pick_port` / :func:`pick_ports` return port numbers;
:func:`is_port_free` checks one. :func:`remote_source` is the stdlib-only
picker to stream to a remote ``python3`` (``manymap.secure`` does).
"""

from __future__ import annotations

from manymap.launcher.lowlevel import show_public_paths

from .__about__ import __version__
from ._core import (
    NoFreePortError,
    Reservation,
    is_port_free,
    parse_ports,
    pick_port,
    pick_ports,
    remote_source,
    reserve,
)

__all__ = [
    "NoFreePortError",
    "Reservation",
    "__version__",
    "is_port_free",
    "parse_ports",
    "pick_port",
    "pick_ports",
    "remote_source",
    "reserve",
]


show_public_paths(globals())

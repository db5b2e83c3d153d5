"""manymap.portpicker: race-free free-port selection, locally and on a remote host.

A port is found by binding port 0, never by guessing. :func:`reserve` keeps it
bound until the caller takes the socket over, so nothing can grab it in
between; :func:`pick_port` / :func:`pick_ports` return port numbers;
:func:`is_port_free` checks one. :func:`remote_source` is the stdlib-only
picker to stream to a remote ``python3`` (``manymap.secure`` does).
"""

from __future__ import annotations

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


def _show_public_paths() -> None:
    """Public classes and functions name this package as their module, not the
    private one defining them: tracebacks, reprs and pickles show the public path."""
    for name in __all__:
        obj = globals()[name]
        own = isinstance(obj, type) or (callable(obj) and hasattr(obj, "__code__"))
        if own and obj.__module__.startswith(f"{__name__}._"):
            obj.__module__ = __name__


_show_public_paths()

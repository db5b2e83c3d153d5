"""What the package imports only when a call first needs it, never at import time.

``importlib.metadata`` (which brings ``email``, ``zipfile`` and ``pathlib``)
is needed only to look a host name up in the installed host registries;
``manymap.secure`` (paramiko) only when an ssh host is used, and ``ppft``
only inside a ppft worker process: those two are imported where they are
used, in functions, and this package's import never loads them. So are the
standard modules only a connection or a server needs: ``_blake2`` (the
handshake and the frames' tags, ``_auth.py``; secrets and nonces come from
``os.urandom``, as ``secrets.token_bytes`` does, without that module's
imports) and ``subprocess`` (the local server's launch, ``_local_launcher.py``); and
``RPCServer`` with its connections and ppft workers is loaded on first
access (the package's ``__getattr__``). Every other deferred import of the
package is a function here.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from importlib.metadata import EntryPoints

__all__ = ["entry_points"]


def entry_points(group: str) -> EntryPoints:
    """``importlib.metadata.entry_points(group=group)``, importing it on first use."""
    from importlib.metadata import entry_points

    return entry_points(group=group)

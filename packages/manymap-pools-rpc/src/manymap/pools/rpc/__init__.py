"""manymap.pools.rpc: ``ParallelPool`` on ppft, local and remote, and the ``manymap-server`` command.

- :class:`ParallelPool`: local ppft workers plus ``manymap-server`` s on other
  hosts (``host:port`` of running servers, or hosts and ssh host specs for
  which the pool starts the server over ssh and tunnels to it), one
  scheduler for all;
- :class:`RemoteHost`: what a host profile offers the pool (a host registry,
  such as the meta package's :mod:`manymap.hosts`, provides them by name
  through the ``manymap.hosts`` entry point group);
- :class:`RPCServer`: the server that ``manymap-server`` (``python -m
  manymap.pools.rpc``) runs: 127.0.0.1 only by default, a secret never on
  the command line, ppft workers underneath.

:mod:`manymap.pools.rpc.bootstrap` is for code that starts ``manymap-server``
itself (as ``manymap.core.serve`` does): its command line, its port, its secret.
"""

from __future__ import annotations

from manymap.launcher.lowlevel import collector_paused, load_on_access, show_public_paths

with collector_paused():  # (import time: see manymap.launcher.lowlevel.collector_paused)
    from manymap.pools.rpc.__about__ import __version__
    from manymap.pools.rpc._pool import ParallelPool

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from manymap.pools.rpc._remote_host import RemoteHost
    from manymap.pools.rpc._server import RPCServer

__all__ = ["ParallelPool", "RPCServer", "RemoteHost", "__version__"]


show_public_paths(globals())

# The server side (RPCServer, its connections, its ppft workers, subprocess) is loaded
# when first used: a ParallelPool never needs it in this process. RemoteHost too: it
# needs typing, which nothing else imports at run time (see _remote_host.py).
__getattr__, __dir__ = load_on_access(
    globals(), {"RPCServer": "manymap.pools.rpc._server", "RemoteHost": "manymap.pools.rpc._remote_host"}
)

"""manymap.pools.rpc: ``ParallelPool`` on ppft, local and remote, and the ``manymap-server`` command.

- :class:`ParallelPool`: local ppft workers plus ``manymap-server`` s on other
  hosts (``host:port`` of running servers, or ssh host specs for which the
  pool starts the server over ssh and tunnels to it), one scheduler for all;
- :class:`RPCServer`: the server that ``manymap-server`` (``python -m
  manymap.pools.rpc``) runs: 127.0.0.1 only by default, a secret never on
  the command line, ppft workers underneath.
"""

from __future__ import annotations

from manymap.pools.rpc.__about__ import __version__
from manymap.pools.rpc._pool import ParallelPool
from manymap.pools.rpc._server import RPCServer

__all__ = ["ParallelPool", "RPCServer", "__version__"]

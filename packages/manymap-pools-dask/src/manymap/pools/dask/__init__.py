"""manymap.pools.dask: the manymap pool contract on a Dask cluster.

- :class:`DaskPool`: ``DaskPool(4)`` starts an embedded ``LocalCluster`` of
  four single-threaded worker processes on 127.0.0.1 and stops it on close;
  ``DaskPool(address="tcp://scheduler:8786")``, ``DaskPool(cluster=...)`` or
  ``DaskPool(scheduler_file=...)`` joins a running cluster and never stops
  what it did not start.

Same maps, options, errors and fault handling as every manymap pool: code
written for ``ProcessPool`` or ``ParallelPool`` runs unchanged.
"""

from __future__ import annotations

from manymap.launcher.lowlevel import show_public_paths
from manymap.pools.dask.__about__ import __version__
from manymap.pools.dask._pool import EMBEDDED_CONFIG, DaskPool

__all__ = ["EMBEDDED_CONFIG", "DaskPool", "__version__"]


show_public_paths(globals())

"""Pools that other distributions announce through the ``manymap.pools`` entry-point group.

A pool package (manymap-pools-dask, say) lists its pool classes under the
group, so the ``manymap`` command finds them without importing packages that
are not installed: only the pool asked for is loaded.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

__all__ = ["KNOWN_POOLS", "POOLS_GROUP", "announced_pools", "load_pool"]

#: The entry-point group of pool classes (name -> ``module:Class``).
POOLS_GROUP = "manymap.pools"

#: The pools of the family's optional packages: name -> (class name, what to install).
KNOWN_POOLS = {"dask": ("DaskPool", 'pip install "manymap[dask]" (manymap-pools-dask)')}


def announced_pools() -> dict[str, EntryPoint]:
    """The installed pools, by name (``"dask"`` -> its entry point)."""
    return {entry.name: entry for entry in entry_points(group=POOLS_GROUP)}


def load_pool(name: str) -> type[Any]:
    """The pool class announced as ``name``.

    Raises:
        LookupError: no installed package announces it, or it cannot be imported;
            the text says what to install.
    """
    entry = announced_pools().get(name)
    hint = KNOWN_POOLS.get(name, ("", f"a package announcing {name!r} in the {POOLS_GROUP!r} entry points"))[
        1
    ]
    if entry is None:
        raise LookupError(f"no pool {name!r} is installed: install {hint}")
    try:
        pool: type[Any] = entry.load()
    except ImportError as error:
        raise LookupError(f"the pool {name!r} ({entry.value}) cannot be imported: {error}") from error
    return pool

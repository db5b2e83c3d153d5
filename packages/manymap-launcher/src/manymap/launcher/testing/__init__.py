"""Testing helpers of the manymap family.

- :class:`PoolConformance`: the pool contract as pytest test classes; a pool
  package subclasses it with a ``make_pool`` factory (needs pytest);
- :class:`ReferencePool`: the minimal thread pool that proves the suite;
- guards: :func:`hang_guard`, :func:`live_threads`, :func:`live_children`,
  :func:`eventually`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from manymap.launcher.testing._guards import eventually, hang_guard, live_children, live_threads
from manymap.launcher.testing._reference import ReferencePool

if TYPE_CHECKING:
    from manymap.launcher.testing._suite import PoolConformance

__all__ = ["PoolConformance", "ReferencePool", "eventually", "hang_guard", "live_children", "live_threads"]


def __getattr__(name: str) -> Any:
    # The suite imports pytest: load it only when asked for.
    if name == "PoolConformance":
        from manymap.launcher.testing._suite import PoolConformance

        return PoolConformance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

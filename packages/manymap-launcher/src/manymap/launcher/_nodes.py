"""A pool's size: checking it, choosing it from pathos' and the stdlib's names, and aliases of ``nodes``."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import overload

    from manymap.launcher._pool import AbstractWorkerPool

__all__ = ["NodesAlias", "check_nodes", "pick_nodes"]


def check_nodes(value: object) -> int:
    """``value`` if it is a valid pool size (a positive integer), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"nodes must be a positive integer, got {value!r}")
    return value


def pick_nodes(
    pool_type: str, nodes: int | None, aliases: dict[str, int | None], accepted: tuple[str, ...]
) -> int | None:
    """The size asked for as ``nodes`` or one of its ``accepted`` aliases (``ncpus``...), if any."""
    unknown = sorted(set(aliases) - set(accepted))
    if unknown:
        raise TypeError(
            f"{pool_type}() got unexpected keyword argument{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}"
        )
    given = {name: value for name, value in {"nodes": nodes, **aliases}.items() if value is not None}
    if len(set(given.values())) > 1:
        raise ValueError(f"conflicting pool sizes: {given}")
    return next(iter(given.values())) if given else None


class NodesAlias:
    """:attr:`AbstractWorkerPool.nodes` under another name, such as pathos' ``ncpus``.

    ``ncpus = NodesAlias()`` in a pool class reads and resizes like ``nodes``.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.__doc__ = f"The number of workers (pathos' name ``{name}`` of ``nodes``)."

    if TYPE_CHECKING:

        @overload
        def __get__(self, pool: None, owner: type) -> NodesAlias: ...
        @overload
        def __get__(self, pool: AbstractWorkerPool, owner: type) -> int: ...

    def __get__(self, pool: AbstractWorkerPool | None, owner: type) -> NodesAlias | int:
        return self if pool is None else pool.nodes

    def __set__(self, pool: AbstractWorkerPool, value: int | None) -> None:
        pool.nodes = value

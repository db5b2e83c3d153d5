"""A pool pickles as its configuration, so that pools and maps can be task arguments.

``ProcessPool().amap(ThreadPool(4).map, ...)`` ships ``ThreadPool(4).map``
to every worker: a pool is pickled as its class and the arguments it was
constructed with (plus ``nodes`` if it was assigned since), never as its
workers, locks or threads. Unpickling constructs a new pool from them, which
starts no worker until it is first used (every pool starts its workers
lazily) and is closed like any pool: when it is garbage-collected, or at the
interpreter's exit. So a worker that unpickles the same payload again (a
worker caches a task function) keeps using the one pool it built.

The copy is always a new, open pool, whatever the state of the original
(closed, terminated, broken): what is shipped is how to make the pool, as
pathos does, not the pool.
"""

from __future__ import annotations

__all__ = ["PicklesAsConfig"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:  # a string bound compiles its text: the process's first compile() costs about 1 ms
    from typing import Any, TypeVar

    P = TypeVar("P", bound="PicklesAsConfig")


class PicklesAsConfig:
    """Mixin: remember the constructor's arguments, pickle as them."""

    _init_args: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls: type[P], *args: Any, **kwargs: Any) -> P:
        pool = super().__new__(cls)
        pool._init_args = (args, dict(kwargs))
        return pool

    def _pickled_config(self) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        """``(args, kwargs, attributes)``: the far side calls ``type(self)(*args,
        **kwargs)`` and then sets ``attributes`` on the new pool. A pool whose
        settable configuration is more than ``nodes`` extends ``attributes``."""
        args, kwargs = self._init_args
        return args, kwargs, {}

    def __reduce__(self) -> tuple[Any, ...]:
        args, kwargs, attributes = self._pickled_config()
        return (_rebuild, (type(self), args, kwargs, attributes))


def _rebuild(cls: type[P], args: tuple[Any, ...], kwargs: dict[str, Any], attributes: dict[str, Any]) -> P:
    pool = cls(*args, **kwargs)
    for name, value in attributes.items():
        setattr(pool, name, value)
    return pool

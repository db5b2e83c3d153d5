"""``PoolCodec``: everything a pool serializes for its workers, in one object.

A pool whose workers are other processes (``ProcessPool``, ``ParallelPool``)
ships, for each batch, the task function (serialized once while it stays
the same, :class:`~manymap.serialize.FunctionPayloads`, and sent to each
worker once under a key, :func:`~manymap.serialize.must_send`) and the
batch's arguments (:func:`~manymap.serialize.encode_batch`). The codec holds
those pieces together, with the pool's own ``encode(obj, name)`` (the
shared-memory buffers of a local pool, plain bytes over a socket).
``manymap.launcher.lowlevel.ManagedWorkerPool`` drives it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping, Sequence

from manymap.serialize._cache import must_send
from manymap.serialize._payloads import FunctionPayloads, _dumps_named, encode_batch

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, Generic, TypeVar, overload

    T = TypeVar("T")
else:

    class Generic:
        """At run time, without typing: a base that ``Generic[T]`` names."""

        __class_getitem__ = classmethod(types.GenericAlias)

    T = "T"

__all__ = ["PoolCodec"]


class PoolCodec(Generic[T]):
    """What a pool serializes: task functions, their keys, a batch's arguments.

    Args:
        encode: ``encode(obj, name)`` serializes a batch's arguments (default:
            :func:`~manymap.serialize.dumps`, bytes); ``name`` says what ``obj``
            is in an error message.
    """

    if TYPE_CHECKING:

        @overload
        def __init__(self: PoolCodec[bytes]) -> None: ...
        @overload
        def __init__(self, encode: Callable[[Any, str], T]) -> None: ...

    def __init__(self, encode: Callable[[Any, str], Any] | None = None) -> None:
        self._encode: Callable[[Any, str], Any] = _dumps_named if encode is None else encode
        self._functions = FunctionPayloads()

    def function(self, function: Callable[..., Any]) -> bytes:
        """The payload of ``function`` (serialized now, or as before if unchanged)."""
        return self._functions.payload(function)

    def key(self, payload: bytes) -> int:
        """The key a worker caches the function ``payload`` under."""
        return self._functions.key(payload)

    def items(self, kwargs: Mapping[str, Any], items: Sequence[Any], first: int, star: bool) -> T:
        """A batch's arguments; what cannot be shipped is named by task index."""
        encoded: T = encode_batch(self._encode, kwargs, items, first, star)
        return encoded

    #: Whether a worker that was sent the function keys ``known`` lacks ``key``
    #: (if so, it counts as sent): :func:`~manymap.serialize.must_send` itself.
    must_send = staticmethod(must_send)

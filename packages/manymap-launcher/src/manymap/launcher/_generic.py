"""``Generic``: a run-time stand-in for ``typing.Generic``, which costs 5-10 ms to import.

The launcher's modules import ``typing`` for the type checker only (under
``if TYPE_CHECKING:``). A class that must be generic at run time too, because
someone subscripts it outside an annotation (``ProcessPool(ManagedWorkerPool[_Worker])``)
or because it has ``__slots__``, takes this base instead: subscripting it gives a
``types.GenericAlias`` that subclasses see through.
"""

from __future__ import annotations

import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Generic"]


class Generic:
    """Subscriptable at run time (``Base[T]``), and nothing more."""

    __slots__ = ()
    __class_getitem__: Any = classmethod(types.GenericAlias)

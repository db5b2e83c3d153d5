"""What manymap.serialize imports only when a call first needs it, never at import time.

`check()` and its failure search (``_check``: a dataclass report, so
``dataclasses`` and ``inspect`` with it) are needed only when something
cannot be serialized or a caller asks for a check: `dumps()` of data that
pickles never loads them. The package loads ``check`` and ``CheckReport``
when first named (``load_on_access``); `dumps()` loads the search here when
it must explain a failure. dill is the by-value path's own deferred import
and lives with it (``_byvalue``: "dill, lazily").
"""

from __future__ import annotations

from manymap.launcher import SerializationError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["serialization_error"]


def serialization_error(obj: Any, name: str, error: Exception) -> SerializationError:
    """The ``SerializationError`` `dumps()` raises when ``error`` stopped it (``_check``'s)."""
    from manymap.serialize import _check

    made: SerializationError = _check.serialization_error(obj, name, error)
    return made

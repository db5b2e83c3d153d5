"""What manymap.serialize imports only when a call first needs it, never at import time.

`check()` and its failure search (``_check``: a dataclass report, so
``dataclasses`` and ``inspect`` with it) are needed only when something
cannot be serialized or a caller asks for a check: `dumps()` of data that
pickles never loads them. dill is the by-value path's own deferred import
and lives with it (``_byvalue``: "dill, lazily").
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from manymap.launcher import SerializationError
from manymap.launcher.lowlevel import show_public_paths

__all__ = ["LAZY_NAMES", "lazy_name", "serialization_error"]

#: Public names of the package that are loaded when first asked for.
LAZY_NAMES = frozenset({"CheckReport", "check"})


def _check() -> ModuleType:
    from manymap.serialize import _check

    if _check.check.__module__ != "manymap.serialize":  # first use: name the public path
        public = {name: getattr(_check, name) for name in LAZY_NAMES}
        show_public_paths({"__name__": "manymap.serialize", "__all__": sorted(public), **public})
    return _check


def serialization_error(obj: Any, name: str, error: Exception) -> SerializationError:
    """The ``SerializationError`` `dumps()` raises when ``error`` stopped it (``_check``'s)."""
    made: SerializationError = _check().serialization_error(obj, name, error)
    return made


def lazy_name(name: str) -> Any:
    """The public object ``name`` (one of `LAZY_NAMES`), importing its module."""
    return getattr(_check(), name)

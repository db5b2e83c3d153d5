"""The pickler every payload goes through: the C pickler with the by-value hook.

The C pickler handles the builtin containers and scalars itself and calls
`_Pickler.reducer_override` only for other objects; that hook answers
``NotImplemented`` (ordinary pickling by reference) except for functions the
far side cannot import, which go by value in the same stream
(`manymap.serialize._functions`), classes it cannot import, which go by value
through dill (`manymap.serialize._byvalue`), for modules, which go by reference to
``importlib.import_module``, and for state bound to this process (open files,
locks, sockets, ...: `manymap.serialize._bound`), which is refused.

`manymap.serialize._core` (dumps / loads) and `manymap.serialize._check`
(the failure search) both build on it; it imports neither.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from types import FunctionType, ModuleType

from manymap.serialize._bound import KINDS, bound_kind, reduce_bound
from manymap.serialize._byvalue import (
    _load_class,
    _load_value,
    class_kind,
    class_reduce_args,
    dill_dumps,
    log_by_value,
    not_importable,
)
from manymap.serialize._format import PICKLE_PROTOCOL
from manymap.serialize._functions import reduce_function

__all__ = ["write"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

    BufferCallback = Callable[[pickle.PickleBuffer], Any]

_MAIN_MODULES = frozenset({"__main__", "__mp_main__"})


class _Pickler(pickle.Pickler):
    """The C pickler, protocol 5, with the by-value hook. One per dump."""

    def reducer_override(self, obj: Any, _bound_kinds: Callable[[type], str | None] = KINDS.get) -> Any:
        # Called for every object the C pickler does not handle itself: keep
        # the common "not mine" answer to a few type checks and one dict lookup
        # (KINDS is only ever cleared, never replaced, so the bound get stays right).
        cls = type(obj)
        if cls is FunctionType:
            if not_importable(obj):
                log_by_value(obj)
                reduced = reduce_function(obj)
                return reduced if reduced is not None else (_load_value, (dill_dumps(obj),))
        elif isinstance(obj, type):
            kind = class_kind(obj)
            if kind is not None:
                log_by_value(obj)
                if kind == "class":
                    return (_load_class, class_reduce_args(obj))
                return (_load_value, (dill_dumps(obj),))
        elif cls is ModuleType:
            return _reduce_module(obj)
        else:
            bound = _bound_kinds(cls)  # cached per type
            if bound is None:
                bound = bound_kind(cls)
            if bound:
                return reduce_bound(obj, bound)
        return NotImplemented


def _reduce_module(module: ModuleType) -> Any:
    """Modules go by reference (imported by name on the far side) when they are importable."""
    name = module.__name__
    if name in _MAIN_MODULES or sys.modules.get(name) is not module or module.__spec__ is None:
        return NotImplemented  # pickle then fails with "cannot pickle 'module' object"
    import importlib  # the first module pickled loads it, not the package (import time)

    return (importlib.import_module, (name,))


def write(obj: Any, file: Any, buffer_callback: BufferCallback | None = None) -> None:
    """Pickle ``obj`` (no header) into ``file``; exceptions propagate unwrapped."""
    _Pickler(file, PICKLE_PROTOCOL, buffer_callback=buffer_callback).dump(obj)

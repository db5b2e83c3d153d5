"""Functions by value without dill: the code by marshal, the rest through the same pickler.

A function the far side cannot import (a lambda, a closure, a nested
function, a ``__main__`` function) is written into the payload's own pickle
stream in two steps, pickle's reduce with a state setter:

1. `_make_function` rebuilds a bare function: its code object (marshal bytes,
   tagged with this interpreter's ``sys.implementation.cache_tag``), its
   globals dict and a closure of new, empty cells. Pickle memoizes it here,
   before step 2 is written, so a function that refers to itself (recursion
   through its globals or its closure) and functions that refer to each other
   load as the same object graph they were.
2. `_fill_function` gives it the rest: the globals its code uses, its cells'
   contents, defaults, keyword defaults, ``__dict__``, name, qualified name,
   module, docstring and annotations.

Globals as dill's ``recurse=True`` sends them: when the function's module is
one the far side can import (`globals_by_reference`), the globals dict is
that module's own (`_load_module_globals`, by name) and nothing is copied;
otherwise (``__main__``) the function gets a new dict holding only the
globals its code (and the code nested in it) names, and ``__builtins__``,
as every module's namespace has: C code called from the function looks it
up there (``PyImport_Import``, which pickle's ``find_class`` and numpy's lazy
imports use, fails without it). Every value goes through
the caller's pickler, so classes by value, modules by reference and the
refusal of process-bound state apply inside a function as they do outside.

Not imported dill, not imported by dill: a plain ``__main__`` function or a
lambda ships and loads without importing it. A code object marshal refuses
(one built by hand with constants it cannot write) goes through dill as
before. marshal's format is the interpreter's own, so the far side must run
the same Python version; a mismatch fails on load with a message naming
both.

The qualified names of `_make_function` and `_fill_function` are part of the
wire format (see `manymap.serialize._format`).
"""

from __future__ import annotations

import builtins
import marshal
import sys
from types import CellType, CodeType, FunctionType

from manymap.serialize._byvalue import _load_module_globals, module_globals_name

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["global_names", "reduce_function"]

_TAG = sys.implementation.cache_tag  # "cpython-311": what marshal's code format depends on


class _ModuleGlobals:
    """Stands for an importable module's globals in a pickle stream (a dict is
    never offered to the pickler's reducer hook, so it cannot be replaced)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return _load_module_globals, (self.name,)


def reduce_function(func: FunctionType) -> tuple[Any, ...] | None:
    """The reduce tuple that ships ``func`` by value, or ``None`` if marshal refuses its code."""
    code = func.__code__
    try:
        code_bytes = marshal.dumps(code)
    except ValueError:
        return None
    namespace = func.__globals__
    module = module_globals_name(namespace)
    used: dict[str, Any] | None = None
    if module is None:
        base: Any = {}
        used = {name: namespace[name] for name in global_names(code) if name in namespace}
    else:
        base = _ModuleGlobals(module)
    cells = func.__closure__ or ()
    contents = []
    for index, cell in enumerate(cells):
        try:
            contents.append((index, cell.cell_contents))
        except ValueError:  # an empty cell: a variable not yet assigned
            continue
    state = (
        used,
        contents,
        func.__defaults__,
        func.__kwdefaults__,
        func.__dict__ or None,
        func.__name__,
        func.__qualname__,
        func.__module__,
        func.__doc__,
        func.__annotations__ or None,
    )
    return (_make_function, (_TAG, code_bytes, base, len(cells)), state, None, None, _fill_function)


def global_names(code: CodeType) -> list[str]:
    """Names a code object (and the code nested in it) may read from its globals, in order met."""
    names: dict[str, None] = {}
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(dict.fromkeys(current.co_names))
        stack.extend(const for const in current.co_consts if type(const) is CodeType)
    return list(names)


def _make_function(tag: str, code_bytes: bytes, namespace: dict[str, Any], cells: int) -> FunctionType:
    """Reconstructor, step 1: a bare function. Wire format name."""
    if tag != _TAG:
        import pickle

        raise pickle.UnpicklingError(
            f"manymap.serialize.loads: a function sent by value was compiled by {tag}, but this "
            f"process runs {_TAG}; the code of a function sent by value only loads in the same "
            "Python version: run the same Python version on both sides, or make the function "
            "importable on this side so that it goes by reference"
        )
    code = marshal.loads(code_bytes)
    closure = tuple(CellType() for _ in range(cells)) if cells else None
    namespace.setdefault("__builtins__", builtins)  # (a module's own has it already)
    return FunctionType(code, namespace, None, None, closure)


def _fill_function(func: FunctionType, state: tuple[Any, ...]) -> None:
    """Reconstructor, step 2: the function's globals, cells and attributes. Wire format name."""
    used, contents, defaults, kwdefaults, attributes, name, qualname, module, doc, annotations = state
    if used:
        func.__globals__.update(used)
    closure = func.__closure__ or ()
    for index, value in contents:
        closure[index].cell_contents = value
    func.__defaults__ = defaults
    func.__kwdefaults__ = kwdefaults
    if attributes:
        func.__dict__.update(attributes)
    func.__name__ = name
    func.__qualname__ = qualname
    func.__module__ = module
    func.__doc__ = doc
    if annotations:
        func.__annotations__ = annotations

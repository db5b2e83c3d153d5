"""What goes by value, and how: dill for functions and classes the far side cannot import.

Data flow. The stdlib pickler in `manymap.serialize._core` asks
`by_value_kind()` about every function and class it meets. For those that
must go by value it emits a call to one of the reconstructors below, with a
dill blob as the argument:

- a function ``f`` becomes ``_load_value(dill_blob_of_f)``: the far side runs
  ``dill.loads`` and gets a new function;
- a class ``C`` becomes ``_load_class(token, dill_blob_of_C)``, where the
  token is a random name ``C`` got the first time it was shipped. Classes go
  through a per-process registry keyed by token, so a class keeps its
  identity: one token always loads as the same class object in one process
  (every task a worker runs sees one ``C``), a class that arrived by value is
  sent back under the token it came with, and a token this process made for
  its own class loads as that class. So an instance of a ``__main__``
  dataclass that makes the round trip to a worker and back is again an
  instance of the caller's class and compares equal to it.

A function's globals: when the function was defined in a module the far side
can import (`globals_by_reference()`), they go by reference, as
``_load_module_globals(module_name)``: the far side imports the module and
the function runs on that module's own, current globals (dill's
``recurse=False``). The globals of a ``__main__`` function go by value: a
copy of the ones its code uses (dill's ``recurse=True``).

dill is imported lazily, the first time something goes by value or a by-value
part is loaded: plain data never imports it. dill is always called with
explicit arguments; ``dill.settings`` is never read or changed. The dill
pickler used here is a subclass whose ``reducer_override`` routes classes met
inside a function's globals through ``_load_class`` as well, so those keep
their identity too, picks dill's recurse mode per function, turns an
importable module's ``__dict__`` into ``_load_module_globals``, and refuses
process-bound state (`manymap.serialize._bound`) before dill's own
reductions can fake it.

The qualified names of ``_load_value``, ``_load_class`` and
``_load_module_globals`` are part of the wire format (see
`manymap.serialize._format`).
"""

from __future__ import annotations

import io
import os
import pickle
import sys
import threading
import weakref
from collections.abc import Callable
from types import FunctionType

from manymap.serialize._bound import KINDS, bound_kind, reduce_bound

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, Literal

    Kind = Literal["function", "class", "dill"]

__all__ = [
    "by_value_kind",
    "class_reduce_args",
    "dill_dumps",
    "dill_loads",
    "globals_by_reference",
    "log_by_value",
    "module_globals_name",
    "qualified_name",
    "set_log",
]

# Modules whose contents the far side cannot import by name: the script or
# interactive session (``__main__``) and its multiprocessing alias in spawned
# children (``__mp_main__``).
_MAIN_MODULES = frozenset({"__main__", "__mp_main__"})
# Static types pickle handles itself although their names cannot be looked up.
_NONE_TYPE = type(None)
_NOT_IMPLEMENTED_TYPE = type(NotImplemented)
_ELLIPSIS_TYPE = type(Ellipsis)
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE
_MISSING = object()


def by_value_kind(obj: object) -> Kind | None:
    """Whether a function or class must go by value, and how.

    Returns ``None`` when pickle can ship ``obj`` by reference (the far side
    finds it by module and qualified name), ``"function"`` for a function that
    goes by value, ``"class"`` for a class that goes by value through the class
    registry, ``"dill"`` for a builtin type pickle cannot name but dill can.
    Anything else returns ``None``.

    This runs inside the pickler for every function and class it meets (once
    per dump each, pickle's memo does the rest), so it is kept cheap.
    """
    if type(obj) is FunctionType:
        return "function" if not_importable(obj) else None
    if isinstance(obj, type):
        return class_kind(obj)
    return None


def class_kind(cls: type) -> Kind | None:
    """`by_value_kind()` for a class."""
    if cls is _NONE_TYPE or cls is _NOT_IMPLEMENTED_TYPE or cls is _ELLIPSIS_TYPE or not not_importable(cls):
        return None
    return "class" if cls.__flags__ & _HEAPTYPE else "dill"


def not_importable(obj: Any) -> bool:
    """True unless ``obj`` is what its module's attribute ``obj.__qualname__`` is.

    Deliberately does not ask pickle: pickle would happily ship a ``__main__``
    function by reference, which a spawned or remote worker cannot resolve.
    """
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if (
        type(module_name) is not str
        or type(qualname) is not str
        or module_name in _MAIN_MODULES
        or "<" in qualname  # <locals>, <lambda>
    ):
        return True
    found: object = sys.modules.get(module_name)
    if found is None:
        return True
    try:
        if "." not in qualname:
            return getattr(found, qualname, _MISSING) is not obj
        for part in qualname.split("."):
            found = getattr(found, part, _MISSING)
            if found is _MISSING:
                return True
    except Exception:  # a module __getattr__ or descriptor that raises
        return True
    return found is not obj


def globals_by_reference(func: FunctionType) -> bool:
    """True when ``func``'s globals are the namespace of a module the far side can import.

    Such a function, even when it goes by value, refers to its module's globals
    by reference: the far side imports the module and the function uses that
    module's own, current globals (dill's default, ``recurse=False``). Only the
    globals of ``__main__`` (a script, an interactive session, a notebook) and
    of modules that cannot be imported by name go by value.
    """
    return module_globals_name(func.__globals__) is not None


def module_globals_name(namespace: dict[str, Any]) -> str | None:
    """The name of the importable module whose ``__dict__`` is ``namespace``, else ``None``.

    Importable means: not ``__main__``, the module of that name in
    ``sys.modules``, made by an import (it has a ``__spec__``), and a dotted
    name of identifiers whose top-level package is found on ``sys.path``, so
    that a process with the same ``sys.path`` imports it too (pytest's
    ``--import-mode=importlib`` registers test files under names such as
    ``tests.my-package.test_x`` that no other process can import).
    """
    name = namespace.get("__name__")
    if type(name) is not str or name in _MAIN_MODULES:
        return None
    module = sys.modules.get(name)
    if module is None or getattr(module, "__dict__", None) is not namespace:
        return None
    if getattr(module, "__spec__", None) is None:
        return None  # made at run time: nothing to import by name
    findable = _FINDABLE.get(name)
    if findable is None:
        if len(_FINDABLE) >= 4096:
            _FINDABLE.clear()
        findable = _FINDABLE[name] = _findable(name)
    return name if findable else None


_FINDABLE: dict[str, bool] = {}


def _findable(name: str) -> bool:
    """Whether another process with this one's ``sys.path`` could import ``name``:
    a dotted name of identifiers whose top-level package the import system finds
    on ``sys.path`` (not only in ``sys.modules``, where pytest's importlib mode
    puts test modules under names such as ``packages.mypkg.tests.test_x``)."""
    if not all(part.isidentifier() for part in name.split(".")):
        return False
    top = name.partition(".")[0]
    if top in sys.builtin_module_names:
        return True
    try:
        import importlib.machinery  # loaded by the first look, not by the package (import time)

        return importlib.machinery.PathFinder.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


def qualified_name(obj: object) -> str:
    """``module.qualname`` of a function or class, for reports."""
    module = getattr(obj, "__module__", None) or "?"
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}.{qualname}"


# -- the by-value log, read by check() -----------------------------------------

_local = threading.local()


def set_log(log: list[str] | None) -> list[str] | None:
    """Make ``log`` this thread's record of what goes by value; returns the previous one."""
    previous: list[str] | None = getattr(_local, "log", None)
    _local.log = log
    return previous


def log_by_value(obj: object) -> None:
    """Note that ``obj`` goes by value, when `check()` is listening."""
    if getattr(_local, "log", None) is not None:
        _log_name(qualified_name(obj))


def _log_name(name: str) -> None:
    log: list[str] | None = getattr(_local, "log", None)
    if log is not None and name not in log:
        log.append(name)


# -- dill, lazily ----------------------------------------------------------------------

_dill_pickler: type[Any] | None = None


def _dill_pickler_class() -> type[Any]:
    """Build (once) the dill pickler subclass that sends classes through the registry."""
    global _dill_pickler
    if _dill_pickler is None:
        import dill

        class _DillPickler(dill.Pickler):  # type: ignore[misc]
            """dill's pickler, explicit settings, classes by value via `_load_class()`,
            module globals by reference, process-bound state refused."""

            def __init__(self, file: io.BytesIO, top: object, recurse: bool) -> None:
                super().__init__(file, 5, byref=False, recurse=recurse, fmode=dill.HANDLE_FMODE)
                self._manymap_top = top
                self._manymap_recurse = recurse

            def reducer_override(self, obj: object) -> object:
                cls = type(obj)
                if cls is FunctionType:
                    # dill's save_function, which runs next, reads _recurse
                    # once, before it saves anything inside the function: each
                    # function gets its own mode. recurse=False makes dill
                    # refer to an importable module's globals (the module's
                    # __dict__, which the dict branch below turns into
                    # _load_module_globals) instead of copying them.
                    self._recurse = self._manymap_recurse and not globals_by_reference(obj)  # type: ignore[arg-type]
                elif cls is dict:
                    name = module_globals_name(obj)  # type: ignore[arg-type]
                    if name is not None:
                        return (_load_module_globals, (name,))
                elif isinstance(obj, type):
                    if (
                        obj is not self._manymap_top
                        and by_value_kind(obj) == "class"
                        and not any(item is obj for item in _in_progress())
                    ):
                        log_by_value(obj)
                        return (_load_class, class_reduce_args(obj))
                else:
                    kind = KINDS.get(cls)
                    if kind is None:
                        kind = bound_kind(cls)
                    if kind:
                        return reduce_bound(obj, kind)
                return NotImplemented

        _dill_pickler = _DillPickler
    return _dill_pickler


def _in_progress() -> list[object]:
    stack: list[object] | None = getattr(_local, "in_progress", None)
    if stack is None:
        stack = _local.in_progress = []
    return stack


def dill_dumps(obj: object, persistent_id: Callable[[object], object] | None = None) -> bytes:
    """Serialize ``obj`` by value with dill (protocol 5), settings untouched.

    Functions of importable modules refer to their module's globals; the
    globals of other functions are copied, only those their code uses
    (``recurse=True``). If that runs out of stack, dill's plain mode
    (``recurse=False``) is used for those too.

    ``persistent_id`` is for `check()`'s probes, which leave some parts out.
    """
    stack = _in_progress()
    stack.append(obj)
    try:
        try:
            return _dill_dump(obj, persistent_id, recurse=True)
        except RecursionError:
            # recurse=True follows every global a function uses, and the globals
            # those use, ... which can run out of stack (a closure over
            # scipy.optimize.minimize does). Without it, dill ships the
            # function's whole globals instead: bigger, but it works.
            return _dill_dump(obj, persistent_id, recurse=False)
    finally:
        stack.pop()


def _dill_dump(obj: object, persistent_id: Callable[[object], object] | None, *, recurse: bool) -> bytes:
    file = io.BytesIO()
    pickler = _dill_pickler_class()(file, obj, recurse)
    if persistent_id is not None:
        pickler.persistent_id = persistent_id
    pickler.dump(obj)
    return file.getvalue()


def dill_loads(blob: bytes) -> Any:
    """The inverse of `dill_dumps()`."""
    import dill

    # ignore=True: return what the blob holds; never rebind it to a same-named
    # class that happens to exist in this process's __main__.
    return dill.loads(blob, ignore=True)


# -- the class registry ---------------------------------------------------------

# A class that goes by value gets a random token the first time; the token
# travels with its blob and names the class in every process: token -> the
# class it loads as here; class -> (its token, its blob, the names of the
# classes that blob refers to by value, for check()). Two distinct classes
# never share a token, even when their blobs are the same bytes.
_classes: weakref.WeakValueDictionary[str, type] = weakref.WeakValueDictionary()
_blobs: weakref.WeakKeyDictionary[type, tuple[str, bytes, tuple[str, ...]]] = weakref.WeakKeyDictionary()


def class_reduce_args(cls: type) -> tuple[str, bytes]:
    """``(token, blob)`` that `_load_class()` rebuilds ``cls`` from; made once per class.

    A class is serialized the first time it is shipped; later changes to its
    class attributes are not shipped again (as with a class pickle ships by
    reference, whose far-side copy never sees them either).
    """
    entry = _blobs.get(cls)
    if entry is None:
        nested: list[str] = []
        previous = set_log(nested)
        try:
            blob = dill_dumps(cls)
        finally:
            set_log(previous)
        _refuse_main_references(cls, blob)
        entry = _blobs.setdefault(cls, (os.urandom(16).hex(), blob, tuple(nested)))
        _classes.setdefault(entry[0], cls)
    for name in entry[2]:
        _log_name(name)
    return entry[0], entry[1]


_STRING_PUSHES = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
_MEMO_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})


def _refuse_main_references(cls: type, blob: bytes) -> None:
    """Raise if dill wrote ``cls`` (or a class in it) as a by-name reference into ``__main__``.

    dill cannot serialize some classes by value (an ``enum.Enum`` defined in
    ``__main__``, for one); it then warns and writes a reference by name
    instead, which only resolves in the process that wrote it. The stream is
    scanned for such references (the two strings a ``STACK_GLOBAL`` takes
    are the last two pushed before it), so the failure shows at ``dumps`` and
    in ``check()``, not as an ``AttributeError`` on the far side.
    """
    if not any(name.encode() in blob for name in _MAIN_MODULES):
        return
    import pickletools  # only for classes that live in __main__

    memo: dict[int, object] = {}
    pushed: list[object] = []  # the values the last opcodes pushed, most recent last
    for opcode, arg, _pos in pickletools.genops(blob):
        name = opcode.name
        module = qualname = None
        if name in _STRING_PUSHES:
            pushed.append(arg)
            continue
        if name in ("FRAME", "PROTO"):
            continue  # framing can fall between the two strings of a STACK_GLOBAL
        if name in _MEMO_GETS:
            pushed.append(memo.get(int(arg)))  # type: ignore[arg-type]
            continue
        if name == "MEMOIZE" or name in _MEMO_PUTS:
            index = len(memo) if name == "MEMOIZE" else int(arg)  # type: ignore[arg-type]
            memo[index] = pushed[-1] if pushed else None
            continue  # memoizing leaves the stack as it is
        if name == "STACK_GLOBAL" and len(pushed) >= 2:
            module, qualname = pushed[-2], pushed[-1]
        elif name == "GLOBAL" and isinstance(arg, str):
            module, _sep, qualname = arg.partition(" ")
        pushed = [None]
        if module in _MAIN_MODULES:
            raise pickle.PicklingError(
                f"dill cannot serialize {qualified_name(cls)} by value: it would refer to "
                f"{module}.{qualname} by name, which the receiving process cannot resolve; "
                "define it in an importable module"
            )


def _load_value(blob: bytes) -> Any:
    """Reconstructor of a function (or builtin type) shipped by value. Wire format name."""
    return dill_loads(blob)


def _load_module_globals(name: str) -> dict[str, Any]:
    """Reconstructor of the globals of a by-value function: its module's own. Wire format name."""
    try:
        import importlib

        module = importlib.import_module(name)
    except Exception as exc:
        raise ImportError(
            f"manymap.serialize.loads: a function sent by value uses the globals of module "
            f"{name!r}, which this process cannot import ({type(exc).__name__}: {exc}); "
            f"make {name!r} importable here (install it, or put its directory on sys.path / "
            "PYTHONPATH), or define the function in __main__ to send its globals by value",
            name=name,
        ) from exc
    return vars(module)


def _load_class(token: str, blob: bytes) -> type:
    """Reconstructor of a class shipped by value, through the registry. Wire format name."""
    cls = _classes.get(token)
    if cls is None:
        loaded: type = dill_loads(blob)
        cls = _classes.setdefault(token, loaded)
        _blobs.setdefault(cls, (token, blob, ()))
    return cls

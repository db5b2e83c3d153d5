"""check(): can an object ship, by which path, and if not, which part fails and why.

Data flow. `check()` first serializes the object for real (into a byte
counter, not a buffer) with the by-value log switched on. If that works, the
report says ``pickle`` or ``by value`` and lists what went by value.

If it fails, a search finds the first part to blame: starting at the object,
it serializes each child on its own, in the order pickle would meet them,
descends into the first child that fails, and stops at a part none of whose
children fail: that part is the culprit and its own error is the reason.
Children are container items (dict keys too), object state (``__dict__`` and
``__slots__``, or whatever ``__reduce_ex__`` gives), and for functions and
classes that go by value their closure cells, the globals their code uses
(only for ``__main__`` functions: an importable module's globals are not
sent), defaults and class attributes. Process-bound state (an open file, a
lock, ...) has no children: it is refused as a whole. Each part is probed
as it will be shipped: inside a class that goes by value, with dill;
elsewhere, functions by value included, with the stdlib pickler. The search
is bounded in depth and never visits an object twice, so cycles are safe.
"""

from __future__ import annotations

import copyreg
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FunctionType
from typing import Any

from manymap.launcher import SerializationError
from manymap.serialize._bound import bound_kind
from manymap.serialize._byvalue import by_value_kind, dill_dumps, globals_by_reference, set_log
from manymap.serialize._format import HEADER_SIZE, PICKLE_PROTOCOL
from manymap.serialize._functions import global_names
from manymap.serialize._pickler import _Pickler, write

__all__ = ["MAX_DEPTH", "CheckReport", "check", "serialization_error"]

MAX_DEPTH = 100
"""How deep the failure search descends before it blames the part it has reached."""

_ATOMS = (type(None), bool, int, float, complex, str, bytes, bytearray)
# copyreg's reconstructors for protocol 2+ object.__reduce_ex__ (not in typeshed)
_NEWOBJ = vars(copyreg)["__newobj__"]
_NEWOBJ_EX = vars(copyreg)["__newobj_ex__"]
_CLASS_DICT_SKIP = frozenset({"__dict__", "__weakref__", "__module__", "__qualname__", "__doc__"})


@dataclass(frozen=True)
class CheckReport:
    """What `check()` found out. ``str(report)`` is the human report.

    Attributes:
        name: how the object was named.
        ok: whether it can be serialized.
        method: ``"pickle"`` (everything by reference, no dill) or
            ``"by value"`` (some functions or classes go by value);
            ``None`` when it cannot be serialized.
        by_value: qualified names of the functions and classes that go by
            value (for example ``"__main__.work"``).
        nbytes: the payload size with all buffers in-band, when ``ok``.
        path: when not ``ok``, the attribute path from the object to the first
            part that cannot be serialized (``"args[0].conn._sock"``; ``""``
            when it is the object itself).
        reason: when not ``ok``, why that part cannot be serialized.
        culprit_type: when not ``ok``, the type of that part.
    """

    name: str
    ok: bool
    method: str | None = None
    by_value: tuple[str, ...] = ()
    nbytes: int | None = None
    path: str | None = None
    reason: str | None = None
    culprit_type: str | None = None

    @property
    def full_path(self) -> str | None:
        """The failing part's path including the name (``"obj.args[0]"``), when not ``ok``."""
        if self.path is None:
            return None
        if not self.path or self.path.startswith("["):
            return f"{self.name}{self.path}"
        return f"{self.name}.{self.path}"

    @property
    def explanation(self) -> str:
        """The one-line verdict; also the text of `dumps()`' ``SerializationError``."""
        if self.ok:
            if self.by_value:
                return (
                    f"{self.name} can be serialized: by value for {', '.join(self.by_value)}; "
                    "everything else by pickle"
                )
            return f"{self.name} can be serialized: pickle (everything by reference, no dill)"
        if self.path:
            return f"cannot serialize {self.name}: {self.path}: {self.reason}"
        return f"cannot serialize {self.name}: {self.reason}"

    def __str__(self) -> str:
        lines = [self.explanation]
        if self.ok:
            lines.append(f"  payload: {self.nbytes} bytes (header included, buffers in-band)")
        else:
            lines.append(f"  failing part: {self.full_path} ({self.culprit_type})")
            lines.append(
                "  hint: objects bound to this process (sockets, locks, open files, connections) "
                "cannot be shipped; create them where they are used"
            )
        return "\n".join(lines)


class _Counter:
    """A write-only file that only counts."""

    def __init__(self) -> None:
        self.nbytes = 0

    def write(self, data: Any) -> int:
        with memoryview(data) as view:
            self.nbytes += view.nbytes
            return view.nbytes


def check(obj: Any, name: str = "obj") -> CheckReport:
    """Find out whether ``obj`` can be serialized, how, and if not, why not.

    Args:
        obj: the object to check.
        name: how the report names it.

    Returns:
        A `CheckReport`; ``str()`` of it is the human report.
    """
    log: list[str] = []
    previous = set_log(log)
    try:
        counter = _Counter()
        write(obj, counter)
    except Exception as exc:
        error: Exception | None = exc
    else:
        error = None
    finally:
        set_log(previous)
    if error is None:
        return CheckReport(
            name=name,
            ok=True,
            method="by value" if log else "pickle",
            by_value=tuple(log),
            nbytes=HEADER_SIZE + counter.nbytes,
        )
    return _blame(obj, name, error)


def serialization_error(obj: Any, name: str, error: Exception) -> SerializationError:
    """The ``SerializationError`` `dumps()` raises when ``error`` stopped it."""
    try:
        report = _blame(obj, name, error)
        text = report.explanation
    except Exception:  # pragma: no cover - the search itself must never hide the error
        text = f"cannot serialize {name}: {_reason(error)}"
    return SerializationError(text)


def _reason(error: BaseException) -> str:
    if isinstance(error, (TypeError, pickle.PicklingError)) and str(error):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _type_name(obj: object) -> str:
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class _NullFile:
    def write(self, data: Any) -> int:
        return 0


def _probe(obj: Any, in_dill: bool, seen: dict[int, object]) -> Exception | None:
    """The error serializing ``obj`` on its own raises, or ``None``.

    The parts already looked at (``seen``: the ones that passed and the chain
    of ancestors) are left out, so a child is not blamed for its ancestor.
    """

    def leave_out(part: object) -> object:
        return 0 if part is not obj and id(part) in seen else None

    try:
        if in_dill:
            dill_dumps(obj, persistent_id=leave_out)
        else:
            _ProbePickler(
                _NullFile(), PICKLE_PROTOCOL, buffer_callback=_out_of_band, leave_out=leave_out
            ).dump(obj)
    except Exception as exc:
        return exc
    return None


def _out_of_band(buffer: pickle.PickleBuffer) -> bool:
    return False  # a probe need not copy buffers


class _ProbePickler(_Pickler):
    def __init__(self, *args: Any, leave_out: Callable[[object], object], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._leave_out = leave_out

    def persistent_id(self, obj: Any) -> Any:
        return self._leave_out(obj)


def _blame(obj: Any, name: str, error: Exception) -> CheckReport:
    """Search for the first part of ``obj`` that cannot be serialized."""
    previous = set_log(None)
    try:
        path: list[str] = []
        node, in_dill = obj, False
        seen: dict[int, object] = {id(obj): obj}  # values keep ids from being reused
        cut_short = ""
        for _depth in range(MAX_DEPTH):
            for segment, child, child_in_dill in _children(node, in_dill):
                if id(child) in seen or isinstance(child, _ATOMS):
                    continue
                seen[id(child)] = child
                child_error = _probe(child, child_in_dill, seen)
                if child_error is not None:
                    path.append(segment)
                    node, in_dill, error = child, child_in_dill, child_error
                    break
            else:
                break
        else:
            cut_short = f" (search stopped {MAX_DEPTH} levels deep)"
    finally:
        set_log(previous)
    return CheckReport(
        name=name,
        ok=False,
        path="".join(path).removeprefix("."),
        reason=_reason(error) + cut_short,
        culprit_type=_type_name(node),
    )


def _short_repr(value: object, limit: int = 40) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{_type_name(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _children(obj: Any, in_dill: bool) -> Iterator[tuple[str, Any, bool]]:
    """``(path segment, child, child goes through dill)`` in the order pickle meets them."""
    cls = type(obj)
    if bound_kind(cls):
        return  # refused as a whole: it is the culprit, not a part of it
    if cls is list or cls is tuple:
        for index, item in enumerate(obj):
            yield f"[{index}]", item, in_dill
    elif cls is dict:
        for index, (key, value) in enumerate(obj.items()):
            yield f".<key #{index}>", key, in_dill
            yield f"[{_short_repr(key)}]", value, in_dill
    elif cls is set or cls is frozenset:
        for index, item in enumerate(obj):
            yield f".<item #{index}>", item, in_dill
    elif cls is FunctionType:
        if by_value_kind(obj) is not None:
            yield from _function_children(obj, in_dill)
    elif isinstance(obj, type):
        if by_value_kind(obj) is not None:
            yield from _class_children(obj)
    elif cls is staticmethod or cls is classmethod:
        yield ".__func__", obj.__func__, in_dill
    elif cls is property:
        for attr in ("fget", "fset", "fdel"):
            yield f".{attr}", getattr(obj, attr), in_dill
    else:
        yield from _reduce_children(obj, in_dill)


def _function_children(func: FunctionType, in_dill: bool) -> Iterator[tuple[str, Any, bool]]:
    # A function goes by value in the stream it is met in: its parts go through dill
    # only inside a class that goes by value through dill.
    code = func.__code__
    for var, cell in zip(code.co_freevars, func.__closure__ or (), strict=True):
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        yield f".<closure {var}>", value, in_dill
    globals_ = func.__globals__
    if not globals_by_reference(func):  # else the far side uses its module's own
        for var in global_names(code):
            if var in globals_:
                yield f".<global {var}>", globals_[var], in_dill
    for index, default in enumerate(func.__defaults__ or ()):
        yield f".__defaults__[{index}]", default, in_dill
    for key, default in (func.__kwdefaults__ or {}).items():
        yield f".__kwdefaults__[{key!r}]", default, in_dill
    for key, value in func.__dict__.items():
        yield f".{key}", value, in_dill


def _class_children(cls: type) -> Iterator[tuple[str, Any, bool]]:
    for base in cls.__bases__:
        if by_value_kind(base) is not None:
            yield f".<base {base.__qualname__}>", base, True
    for key, value in vars(cls).items():
        if key not in _CLASS_DICT_SKIP:
            yield f".{key}", value, True


def _reduce_children(obj: Any, in_dill: bool) -> Iterator[tuple[str, Any, bool]]:
    reducer = copyreg.dispatch_table.get(type(obj))
    try:
        reduced = reducer(obj) if reducer is not None else obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    except Exception:  # the object's own reduction fails: it is the culprit
        return
    if not isinstance(reduced, tuple) or len(reduced) < 2:
        return  # a global reference, pickled by name
    func, args, state, listitems, dictitems = (*reduced, None, None, None)[:5]
    is_exception = isinstance(obj, BaseException)
    if func is _NEWOBJ or func is _NEWOBJ_EX:
        yield ".__class__", args[0], in_dill
        new_args = args[1:] if func is _NEWOBJ else (*args[1], *args[2].values())
        for index, arg in enumerate(new_args):
            yield f".<new arg #{index}>", arg, in_dill
    else:
        yield (".__class__" if func is type(obj) else ".<reduce function>"), func, in_dill
        for index, arg in enumerate(args or ()):
            yield (f".args[{index}]" if is_exception else f".<reduce arg #{index}>"), arg, in_dill
    if state is not None:
        if (
            isinstance(state, tuple)
            and len(state) == 2
            and all(isinstance(s, (dict, type(None))) for s in state)
        ):
            for part in state:
                for key, value in (part or {}).items():
                    yield f".{key}", value, in_dill
        elif isinstance(state, dict):
            for key, value in state.items():
                yield f".{key}", value, in_dill
        else:
            yield ".<state>", state, in_dill
    if listitems is not None:
        for index, item in enumerate(listitems):
            yield f"[{index}]", item, in_dill
    if dictitems is not None:
        for index, (key, value) in enumerate(dictitems):
            yield f".<key #{index}>", key, in_dill
            yield f"[{_short_repr(key)}]", value, in_dill

"""What a pool ships: task functions serialized once while they stay the same,
a batch's arguments (naming the task that cannot be shipped), and a batch's
outcome (failing only the tasks whose result cannot be sent back).

A map ships its function once per worker, but each map (each ``pipe``!)
would serialize it again in the caller: for a function that goes by value
(a lambda, a closure, one defined in ``__main__``) that is dill's slow
pure-Python pickler, hundreds of microseconds per call. This cache keeps the
payload of a plain function for as long as what it is made of is the same
objects: its code, defaults, closure cells and, for a ``__main__`` function
(whose globals go by value), the globals it names. A global rebound to a new
object makes a new payload; an object mutated in place does not, just as a
forked worker keeps the globals it was born with. A function of an importable
module refers to its module's globals by reference, so they are not part of
its payload.
A ``functools.partial`` of a plain function is cached the same way, its
arguments being part of what it is made of.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import CodeType, FunctionType

from manymap.launcher import SerializationError
from manymap.launcher.lowlevel import TaskFailure
from manymap.serialize._byvalue import globals_by_reference
from manymap.serialize._core import dumps

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, TypeVar, overload

    T = TypeVar("T")

__all__ = ["FunctionPayloads", "encode_batch", "encode_results", "make_shippable"]


_MAX_ENTRIES = 256
_MAX_KEYS = 1024


class FunctionPayloads:
    """``payload(function)``: the function's serialized form, cached; ``key(payload)``:
    the small number a worker caches it under."""

    def __init__(self) -> None:
        # by (code, name), or (partial, code): a lambda made afresh at each call
        # has the same code; the entry holds if every part is the same object
        self._entries: dict[tuple[Any, ...], tuple[tuple[Any, ...], bytes]] = {}
        self._keys: dict[bytes, int] = {}
        self._serials = itertools.count()

    def key(self, payload: bytes) -> int:
        """The key of ``payload``: the same while it is remembered, never reused."""
        key = self._keys.get(payload)
        if key is None:
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()  # keys are never reused, so workers stay right
            key = self._keys[payload] = next(self._serials)
        return key

    def payload(self, function: Callable[..., Any]) -> bytes:
        """The payload of ``function`` (serialized now, or as before if unchanged)."""
        parts = _parts(function)
        if parts is not None:
            entry = self._entries.get(parts[:2])
            if entry is not None and _same(entry[0], parts):
                return entry[1]
        name = getattr(function, "__qualname__", None) or repr(function)
        payload = dumps(function, name=f"the task function {name}")
        if parts is not None:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[parts[:2]] = (parts, payload)
        return payload


def _parts(function: Callable[..., Any]) -> tuple[Any, ...] | None:
    """What the payload of a plain function, or of a partial of one, is made of
    (its first two parts are the cache key); ``None`` for other callables."""
    if type(function) is functools.partial:
        inner = _parts(function.func)
        if inner is None or function.__dict__:
            return None
        return (functools.partial, *inner, len(function.args), *function.args, *_flat(function.keywords))
    if type(function) is not FunctionType:
        return None
    parts = _plain_parts(function)  # code, name, qualname, defaults (one C call)
    kwdefaults = function.__kwdefaults__
    parts += _flat(kwdefaults) if kwdefaults else _NONE
    closure = function.__closure__
    if closure is not None:
        parts += tuple(cell.cell_contents for cell in closure if _filled(cell))
    if globals_by_reference(function):  # the payload names the module, not its globals
        return parts
    names = _global_names(parts[0])
    if names:
        parts += tuple(map(function.__globals__.get, names, itertools.repeat(_MISSING, len(names))))
    return parts


_plain_parts = operator.attrgetter("__code__", "__name__", "__qualname__", "__defaults__")


def _flat(mapping: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """Keyword names then values, in name order: parts to compare one by one."""
    if not mapping:  # the common case, a look per call
        return _NONE
    names = sorted(mapping)
    return (len(names), *names, *(mapping[name] for name in names))


def _global_names(code: CodeType) -> tuple[str, ...]:
    """The names ``code`` and the code nested in it look up, sorted (computed once per code)."""
    names = _NAMES.get(code)
    if names is None:
        if len(_NAMES) >= _MAX_ENTRIES:
            _NAMES.clear()
        names = _NAMES[code] = tuple(sorted({name for inner in _codes(code) for name in inner.co_names}))
    return names


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield from _codes(constant)


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _same(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    return len(old) == len(new) and all(map(operator.is_, old, new))


_MISSING = object()
_NONE = (0,)  # _flat of no keywords
_NAMES: dict[CodeType, tuple[str, ...]] = {}


def encode_batch(
    encode: Callable[[Any, str], T], kwargs: Mapping[str, Any], items: Sequence[Any], first: int, star: bool
) -> T:
    """``encode((kwargs, items), name)`` for a batch whose first task is number ``first``.

    When that fails, the error names the first task whose argument (or
    argument tuple, with ``star``) cannot be serialized, and the path inside it.
    """
    try:
        return encode((dict(kwargs), items), "the batch")
    except SerializationError:
        what = "arguments" if star else "argument"
        for offset, item in enumerate(items):
            dumps(item, name=f"the {what} of task {first + offset}")
        if kwargs:
            dumps(dict(kwargs), name=f"the keyword arguments of task {first}")
        raise


def make_shippable(values: list[Any] | None, failures: dict[int, TaskFailure]) -> None:
    """Fail (in place) the tasks whose result or exception cannot be serialized."""
    for offset, value in enumerate(values or ()):
        try:
            dumps(value, name="its result")
        except SerializationError as error:
            values[offset] = None  # type: ignore[index]
            failures[offset] = TaskFailure(
                SerializationError(f"the task's result cannot be sent back: {error}"), ""
            )
    for offset, failure in list(failures.items()):
        try:
            dumps(failure.error, name="its exception")
        except SerializationError as error:
            failures[offset] = TaskFailure(
                SerializationError(
                    f"the task raised {type(failure.error).__name__}: {failure.error}, "
                    f"which cannot be sent back: {error}"
                ),
                failure.traceback,
            )


if TYPE_CHECKING:

    @overload
    def encode_results(values: list[Any] | None, failures: dict[int, TaskFailure]) -> bytes: ...
    @overload
    def encode_results(
        values: list[Any] | None, failures: dict[int, TaskFailure], encode: Callable[[Any, str], T]
    ) -> T: ...


def encode_results(
    values: list[Any] | None,
    failures: dict[int, TaskFailure],
    encode: Callable[[Any, str], Any] | None = None,
) -> Any:
    """A batch's outcome ``(values, failures)``, serialized by ``encode(obj, name)``
    (default: :func:`~manymap.serialize.dumps`); a value or exception that cannot be
    shipped fails its own task (:func:`make_shippable`).

    ``values`` is ``None`` when the batch could not be loaded or run at all;
    ``failures`` then holds the one reason, at offset 0, for all its tasks.
    """
    encoder = _dumps_named if encode is None else encode
    try:
        return encoder((values, failures), "the results")
    except SerializationError:
        make_shippable(values, failures)
    return encoder((values, failures), "the results")


def _dumps_named(obj: Any, name: str) -> bytes:
    return dumps(obj, name=name)

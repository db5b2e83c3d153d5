"""``FrozenRecord``: the launcher's small immutable value types, without ``dataclasses``.

``TaskEvent``, ``TaskOptions``, ``PoolStats`` and ``WorkerStats`` behave as
frozen dataclasses do (keyword or positional construction, a repr that names
the fields, ``==`` and ``hash`` by value, assignment refused) but are written
out: importing ``dataclasses`` (which imports ``inspect`` and ``ast``) and
generating their methods took about a third of ``import manymap.launcher``.

A subclass lists its fields in ``_fields``, in order, and sets them in its own
typed ``__init__`` through `FrozenRecord._init`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, ClassVar

__all__ = ["FrozenRecord"]


class FrozenRecord:
    """Base of an immutable record whose fields are named in ``_fields``."""

    _fields: ClassVar[tuple[str, ...]] = ()

    def _init(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of a {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of a {type(self).__name__}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrozenRecord) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._values())

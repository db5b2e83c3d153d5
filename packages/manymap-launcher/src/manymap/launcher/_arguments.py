"""The checks every pool makes of a call's arguments, and its input as one item per task."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["check_callable", "length_hint", "task_list", "task_source"]


def check_callable(method: str, function: object) -> None:
    """``TypeError`` naming ``method`` unless ``function`` is callable."""
    if not callable(function):
        raise TypeError(f"{method}() needs a callable as its first argument, got {function!r}")


def task_source(method: str, iterables: tuple[Iterable[Any], ...]) -> Iterator[Any]:
    """One item per task: the item itself, or a tuple across several iterables."""
    if not iterables:
        raise TypeError(f"{method}() needs at least one iterable")
    for position, iterable in enumerate(iterables):
        if not isinstance(iterable, Iterable):
            raise TypeError(
                f"{method}() argument {position + 2} must be iterable, got {type(iterable).__name__}"
            )
    if len(iterables) == 1:
        return iter(iterables[0])
    return zip(*iterables, strict=False)  # stop at the shortest, as builtin map does


def task_list(method: str, iterables: tuple[Iterable[Any], ...]) -> list[Any]:
    """The items of a map whose input is read whole at the call (one per task): the
    caller's own list when it gives one, not a copy (a copy of 100,000 items costs
    0.6 ms). Only for a call that takes what it needs of it before it returns: its
    batches are slices of it, cut in the caller's thread."""
    if len(iterables) == 1 and type(iterables[0]) is list:
        return iterables[0]
    return list(task_source(method, iterables))


def length_hint(iterables: tuple[Iterable[Any], ...]) -> int | None:
    """The number of tasks, if every iterable has a length."""
    lengths = [len(it) for it in iterables if hasattr(it, "__len__")]  # type: ignore[arg-type]
    return min(lengths) if len(lengths) == len(iterables) else None

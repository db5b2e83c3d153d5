"""A task's exception that pickles but cannot be rebuilt on the far side.

Unpickling an exception calls its class with the arguments pickle saved
(``cls(*error.args)``). An exception whose ``__init__`` takes more, or
other, arguments than it passes to ``Exception.__init__`` pickles fine and
then fails to load, with a ``TypeError`` about ``__init__``, and takes every
other outcome of the same message with it. So before a task's exception is
shipped (when a :class:`~manymap.launcher.lowlevel.TaskFailure` is pickled) it is
rebuilt once, the way unpickling would; if that fails, a
:class:`RemoteTaskError` naming its type, message and traceback travels in
its place, and only that task fails with it.
"""

from __future__ import annotations

import pickle

from manymap.launcher._errors import ManymapError, add_note

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any

__all__ = ["RemoteTaskError", "portable_error"]


class RemoteTaskError(ManymapError):
    """A task raised an exception that cannot be rebuilt in the caller.

    Raised in its place, for that task only. The worker-side traceback is
    chained as its cause, as for any task error.

    Attributes:
        type_name: the qualified name of the exception's type, e.g.
            ``"mymodule.QuotaError"``.
        message: ``str()`` of the exception.
        traceback_text: the worker-side traceback.
        reason: why it could not be rebuilt, e.g.
            ``"TypeError: QuotaError.__init__() missing 1 required positional argument: 'limit'"``.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str = "", reason: str = "") -> None:
        text = f"the task raised {type_name}: {message}"
        if reason:
            text += f" (that exception cannot be rebuilt here: {reason})"
        super().__init__(text)
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.type_name, self.message, self.traceback_text, self.reason), self.__dict__)


def portable_error(error: BaseException, traceback_text: str = "") -> BaseException:
    """``error`` if unpickling can rebuild it, else a :class:`RemoteTaskError` describing it.

    The check rebuilds the exception from its own reduction, as unpickling
    does, without serializing it (so it holds for whatever serializer ships
    it, and costs one constructor call).
    """
    try:
        _rebuild(error)
    except Exception as failure:  # whatever unpickling would raise
        substitute = RemoteTaskError(
            _type_name(type(error)), _text(error), traceback_text, f"{type(failure).__name__}: {failure}"
        )
        for note in getattr(error, "__notes__", None) or ():
            add_note(substitute, str(note))
        return substitute
    return error


def _rebuild(error: BaseException) -> None:
    reduced = error.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    if isinstance(reduced, str):  # a global, pickled by name
        return
    function, args, *rest = reduced
    rebuilt = function(*args)
    state = rest[0] if rest else None
    if state:
        setstate = getattr(rebuilt, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            rebuilt.__dict__.update(state)


def _type_name(cls: type) -> str:
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module in (None, "builtins") else f"{module}.{qualname}"


def _text(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return f"<str() of the {type(error).__name__} failed>"

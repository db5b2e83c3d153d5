"""Functions by value without dill: what they keep, how they refer to themselves, what fails."""

from __future__ import annotations

import builtins
import collections
import marshal
import pickle
import sys
import types
from typing import Any

import pytest

from manymap.serialize import dumps, loads
from manymap.serialize._functions import _make_function


def test_recursion_through_globals_and_closure_loads_as_one_graph() -> None:
    namespace: dict[str, Any] = {}
    exec(  # a __main__-like namespace: its globals go by value
        "def even(n):\n    return True if n == 0 else odd(n - 1)\n"
        "def odd(n):\n    return False if n == 0 else even(n - 1)\n",
        namespace,
    )
    even = loads(dumps(namespace["even"]))
    assert even(10) is True
    odd = even.__globals__["odd"]
    assert odd.__globals__["even"] is even  # each one refers to the other's copy, not to a third

    def outer() -> Any:
        def countdown(n: int) -> int:
            return 0 if n == 0 else 1 + countdown(n - 1)

        return countdown

    countdown = loads(dumps(outer()))
    assert countdown(7) == 7
    assert countdown.__closure__[0].cell_contents is countdown


def test_attributes_defaults_and_empty_cells_are_kept() -> None:
    def make() -> Any:
        def work(x: int, y: int = 2, *, z: int = 3) -> int:
            """Doc of work."""
            return x + y + z + later

        later = 0  # assigned after work is made: its cell is filled
        return work

    work = make()
    work.tag = "mine"  # type: ignore[attr-defined]
    copy = loads(dumps(work))
    assert copy(1) == 6
    assert copy(1, 1, z=1) == 3
    assert (copy.__name__, copy.__qualname__, copy.__module__) == (work.__name__, work.__qualname__, __name__)
    assert copy.__doc__ == "Doc of work."
    assert copy.tag == "mine"
    assert copy.__annotations__ == work.__annotations__

    def unassigned() -> Any:
        def reads() -> int:
            return value  # never assigned: an empty cell

        if False:
            value = 1
        return reads

    empty = loads(dumps(unassigned()))
    with pytest.raises(NameError):
        empty()


def test_a_main_function_carries_only_the_globals_its_code_names() -> None:
    namespace: dict[str, Any] = {"__name__": "__main__", "USED": 5, "UNUSED": object()}
    exec("def work(x):\n    return [USED + i for i in range(x)]\n", namespace)
    copy = loads(dumps(namespace["work"]))
    assert copy(2) == [5, 6]
    assert "USED" in copy.__globals__
    assert "UNUSED" not in copy.__globals__  # an unpicklable global the code never names


def test_a_main_function_runs_code_that_imports_from_c() -> None:
    """Its new globals hold ``__builtins__`` as a module's do: C code called from it that
    imports (``PyImport_Import``: pickle's ``find_class``, numpy's lazy imports) looks
    it up there, and failed with KeyError: '__builtins__' without it."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(
        "def roundtrip(value):\n    import pickle\n    return pickle.loads(pickle.dumps(value))\n",
        namespace,
    )
    copy = loads(dumps(namespace["roundtrip"]))
    assert copy.__globals__["__builtins__"] is builtins
    assert copy(collections.OrderedDict(a=1)) == collections.OrderedDict(a=1)


def test_a_main_function_calls_numpy() -> None:
    pytest.importorskip("numpy")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(
        "def total(a):\n    import numpy\n    return float(numpy.asarray(a, dtype=numpy.float64).sum())\n",
        namespace,
    )
    assert loads(dumps(namespace["total"]))([1, 2, 3]) == 6.0


def test_a_function_from_another_python_version_fails_naming_both() -> None:
    code = (lambda: 1).__code__
    with pytest.raises(pickle.UnpicklingError) as caught:
        _make_function("cpython-399", marshal.dumps(code), {}, 0)
    text = str(caught.value)
    assert "cpython-399" in text
    assert sys.implementation.cache_tag in text


def test_code_marshal_refuses_goes_through_dill() -> None:
    source = lambda: 1  # noqa: E731
    code = source.__code__.replace(co_consts=(*source.__code__.co_consts, object()))
    with pytest.raises(ValueError):
        marshal.dumps(code)
    assert loads(dumps(types.FunctionType(code, {})))() == 1

"""Round trips in one process: plain data, functions by value, classes, modules, copy()."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import functools
import json
import math
import os.path
import sys
import types
from collections.abc import Callable
from typing import Any

import pytest

from manymap.serialize import check, copy, dumps, loads

PLAIN_DATA: list[Any] = [
    0,
    -(2**100),
    3.25,
    float("inf"),
    complex(1, -2),
    "text ✓",
    b"\x00bytes",
    bytearray(b"mutable"),
    None,
    True,
    [1, [2, [3, [4]]], (5, 6)],
    {"a": [1, 2.0, "three"], (1, 2): {"nested": {None: b""}}, 3: frozenset({1, 2})},
    {1, 2, 3},
    (),
    [(i, i * 0.5, str(i)) for i in range(1000)],
    collections.OrderedDict(a=1, b=2),
    collections.deque([1, 2, 3], maxlen=5),
    collections.Counter("mississippi"),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    decimal.Decimal("1.10"),
    fractions.Fraction(3, 7),
    range(0, 10, 3),
    slice(1, None, 2),
    ValueError("boom", 42),
]


@pytest.mark.parametrize("value", PLAIN_DATA, ids=lambda v: type(v).__name__)
def test_plain_data_round_trips(value: Any) -> None:
    loaded = loads(dumps(value))
    if isinstance(value, BaseException):
        assert type(loaded) is type(value)
        assert loaded.args == value.args
    else:
        assert loaded == value
        assert type(loaded) is type(value)


def test_self_referencing_list_round_trips() -> None:
    value: list[Any] = [1]
    value.append(value)
    loaded = loads(dumps(value))
    assert loaded[0] == 1
    assert loaded[1] is loaded


def test_numpy_arrays_round_trip_in_band() -> None:
    np = pytest.importorskip("numpy")
    arrays = [
        np.arange(10_000, dtype=np.float64),
        np.arange(24, dtype=np.int32).reshape(2, 3, 4),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.arange(20.0)[::3],  # not contiguous
        np.array(5.0),
        np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]),
    ]
    for array in arrays:
        loaded = loads(dumps(array))
        assert loaded.dtype == array.dtype
        assert loaded.shape == array.shape
        np.testing.assert_array_equal(loaded, array)


def test_lambda_round_trips_by_value() -> None:
    square = lambda x: x * x  # noqa: E731 - a lambda is the point
    loaded = loads(dumps(square))
    assert loaded is not square
    assert loaded(7) == 49
    report = check(square)
    assert report.method == "by value"
    assert any("<lambda>" in name for name in report.by_value)


def _make_counter(start: int) -> Callable[[], int]:
    count = start

    def counter() -> int:
        nonlocal count
        count += 1
        return count

    return counter


def test_closure_round_trips_with_its_cells() -> None:
    counter = _make_counter(10)
    counter()
    loaded = loads(dumps(counter))
    assert loaded() == 12
    assert loaded() == 13
    assert counter() == 12  # the original's cell is not shared


def test_nested_function_round_trips() -> None:
    def outer(n: int) -> int:
        def inner(k: int) -> int:
            return k if k < 2 else inner(k - 1) + inner(k - 2)

        return inner(n)

    loaded = loads(dumps(outer))
    assert loaded(10) == 55
    assert "<locals>" in check(outer).by_value[0]


def test_same_function_twice_in_one_payload_loads_once() -> None:
    f = lambda: 1  # noqa: E731
    a, b = loads(dumps([f, f]))
    assert a is b


def test_defaults_partials_and_keyword_defaults_go_by_value_too() -> None:
    offset = 3
    g = functools.partial(lambda x, y=1, *, z=lambda: offset: x + y + z(), 10)
    assert loads(dumps(g))(y=2) == 15


def _main_namespace(source: str) -> dict[str, Any]:
    """Execute ``source`` as if it were a ``__main__`` script; its names are not importable."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, "<main script>", "exec"), namespace)
    return namespace


MAIN_SOURCE = """
import dataclasses

SCALE = 3

def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)

def scaled(n):
    return fact(n) * SCALE

@dataclasses.dataclass
class Point:
    x: int
    y: int

    def doubled(self):
        return Point(2 * self.x, 2 * self.y)

def make_point(v):
    return Point(v, -v)

class Failure(Exception):
    pass

class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a = a
        self.b = b
"""


def test_main_functions_go_by_value_even_though_pickle_would_take_them_by_reference() -> None:
    main = _main_namespace(MAIN_SOURCE)
    report = check(main["scaled"])
    assert report.method == "by value"
    assert "__main__.scaled" in report.by_value
    loaded = loads(dumps(main["scaled"]))
    assert loaded is not main["scaled"]
    assert loaded(5) == 360


def test_main_class_instances_keep_their_class_in_this_process() -> None:
    main = _main_namespace(MAIN_SOURCE)
    Point = main["Point"]
    point = Point(1, 2)
    loaded = loads(dumps(point))
    assert type(loaded) is Point
    assert loaded == point
    assert loaded.doubled() == Point(2, 4)
    assert "__main__.Point" in check(point).by_value


def test_class_met_inside_a_function_is_the_same_class() -> None:
    main = _main_namespace(MAIN_SOURCE)
    make_point, point = loads(dumps((main["make_point"], main["Point"](0, 0))))
    assert type(make_point(3)) is type(point)


def test_main_exceptions_and_slotted_objects_round_trip() -> None:
    main = _main_namespace(MAIN_SOURCE)
    error = loads(dumps(main["Failure"]("bad", 1)))
    assert isinstance(error, main["Failure"])
    assert error.args == ("bad", 1)
    slotted = loads(dumps(main["Slotted"]([1], {"b": 2})))
    assert (slotted.a, slotted.b) == ([1], {"b": 2})


def test_bound_method_of_a_main_instance_round_trips() -> None:
    main = _main_namespace(MAIN_SOURCE)
    method = main["Point"](1, 1).doubled
    assert loads(dumps(method))() == main["Point"](2, 2)


def test_importable_functions_and_classes_go_by_reference() -> None:
    value = [json.dumps, os.path.join, collections.OrderedDict, math.sqrt, len, types.SimpleNamespace]
    report = check(value)
    assert report.ok
    assert report.method == "pickle"
    assert report.by_value == ()
    assert loads(dumps(value)) == value


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("manymap_serialize_test_fake_module")
    exec("def work(x):\n    return x + 1\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def test_function_found_under_its_name_goes_by_reference(fake_module: types.ModuleType) -> None:
    assert check(fake_module.work).method == "pickle"
    assert loads(dumps(fake_module.work)) is fake_module.work


def test_function_whose_name_now_means_something_else_goes_by_value(
    fake_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = fake_module.work
    monkeypatch.setattr(fake_module, "work", lambda x: x - 1)
    report = check(original)
    assert report.by_value == ("manymap_serialize_test_fake_module.work",)
    assert loads(dumps(original))(1) == 2


def test_modules_go_by_reference() -> None:
    assert loads(dumps([math, os.path])) == [math, os.path]


def test_copy_is_deep_and_independent() -> None:
    value = {"a": [1, 2, {"b": [3]}]}
    copied = copy(value)
    assert copied == value
    copied["a"][2]["b"].append(4)
    assert value == {"a": [1, 2, {"b": [3]}]}


def test_copy_of_a_function_is_a_new_function() -> None:
    f = lambda x: x + 1  # noqa: E731
    g = copy(f)
    assert g is not f
    assert g(1) == 2


def test_copy_of_numpy_array_owns_writable_memory() -> None:
    np = pytest.importorskip("numpy")
    array = np.arange(100_000.0)
    copied = copy(array)
    assert not np.shares_memory(copied, array)
    assert copied.flags.writeable
    copied[0] = -1.0
    assert array[0] == 0.0


def test_a_function_whose_globals_run_deep_still_ships() -> None:
    # dill's recurse mode follows the globals a function uses into the
    # functions they name, and theirs, ...: for inspect.getsource (as for
    # scipy.optimize.minimize) that runs out of stack, and dumps falls back to
    # dill's plain mode.
    import inspect

    namespace: dict[str, object] = {"__name__": "not_an_importable_module", "TARGET": inspect.getsource}
    exec("def uses_getsource(x):\n    return TARGET\n", namespace)
    shipped = loads(dumps(namespace["uses_getsource"]))
    assert shipped(0) is inspect.getsource


# Each thread keeps its pickler from one dumps() to the next (_core.py): nothing of
# one dump may leak into the next, nor keep what it pickled alive.


class _DumpsInside:
    """An object whose pickling calls dumps() itself, inside the dump under way."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuilt, (dumps(self.inner),))


def _rebuilt(payload: bytes) -> Any:
    return ("rebuilt", loads(payload))


def test_a_dump_inside_a_dump_gets_a_pickler_of_its_own() -> None:
    shared = ["shared"]
    value = [shared, _DumpsInside([shared, 2]), shared]
    loaded = loads(dumps(value))
    assert loaded == [["shared"], ("rebuilt", [["shared"], 2]), ["shared"]]
    assert loaded[0] is loaded[2]  # the outer dump's memo survived the inner one
    assert loads(dumps([1, 2])) == [1, 2]  # and the kept pickler is free again


def test_a_dump_keeps_nothing_of_the_one_before() -> None:
    first = ["first"]
    assert loads(dumps([first, first])) == [["first"], ["first"]]
    # the same object again: written out in full, not as a reference into an old memo
    alone = loads(dumps(first))
    assert alone == ["first"]


def test_a_dump_keeps_no_object_it_pickled_alive() -> None:
    import gc
    import weakref

    class Big:
        pass

    big = Big()
    big.payload = list(range(1000))  # type: ignore[attr-defined]
    reference = weakref.ref(big)
    dumps([big])
    del big
    gc.collect()
    assert reference() is None


def test_a_failed_dump_leaves_the_next_one_whole() -> None:
    from manymap.launcher import SerializationError

    with open(os.devnull) as handle, pytest.raises(SerializationError):
        dumps([1, handle])
    assert loads(dumps({"after": [1, 2, 3]})) == {"after": [1, 2, 3]}


def test_threads_dumping_at_once_each_get_their_own_payload() -> None:
    import threading

    errors: list[BaseException] = []

    def dump_many(seed: int) -> None:
        try:
            for i in range(300):
                value = [seed, i, "x" * (seed + i % 7), {seed: (i,)}]
                assert loads(dumps(value)) == value
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=dump_many, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors

"""FunctionPayloads and make_shippable: what the pools take from manymap.serialize."""

from __future__ import annotations

import functools
import threading
from typing import Any

from manymap.launcher import SerializationError
from manymap.launcher.lowlevel import TaskFailure
from manymap.serialize import FunctionPayloads, loads, make_shippable

OFFSET = 10


def make_adder(k: int) -> Any:
    return lambda x: x + k + OFFSET


def test_a_function_is_serialized_once_while_it_stays_the_same() -> None:
    payloads = FunctionPayloads()
    first = payloads.payload(make_adder(1))
    again = payloads.payload(make_adder(1))  # a new lambda object, the same code and cells
    assert again is first
    assert loads(first)(1) == 12
    other = payloads.payload(make_adder(2))  # another closure cell: another payload
    assert other is not first
    assert loads(other)(1) == 13


def scale(x: int, k: int = 1, *, by: int = 1) -> int:
    return x * k * by


def test_a_partial_is_serialized_once_while_it_stays_the_same() -> None:
    payloads = FunctionPayloads()
    first = payloads.payload(functools.partial(scale, k=3))
    again = payloads.payload(functools.partial(scale, k=3))  # a new partial, the same parts
    assert again is first
    assert loads(first)(2) == 6
    other = payloads.payload(functools.partial(scale, k=4))
    assert other is not first
    assert loads(other)(2) == 8
    positional = payloads.payload(functools.partial(scale, 2, 3))
    assert loads(positional)() == 6
    assert payloads.payload(functools.partial(make_adder(1))) is not first


def test_a_function_with_keyword_only_defaults_is_cached_too() -> None:
    def scaled(x: int, *, by: int = 5) -> int:
        return x * by

    payloads = FunctionPayloads()
    assert payloads.payload(scaled) is payloads.payload(scaled)


def test_a_rebound_global_makes_a_new_payload() -> None:
    global OFFSET
    payloads = FunctionPayloads()
    adder = make_adder(0)
    before = payloads.payload(adder)
    OFFSET = 100
    try:
        after = payloads.payload(adder)
        assert after is not before
        assert loads(after)(1) == 101
    finally:
        OFFSET = 10


def test_keys_are_stable_and_never_reused() -> None:
    payloads = FunctionPayloads()
    one, two = payloads.payload(make_adder(1)), payloads.payload(make_adder(2))
    assert payloads.key(one) == payloads.key(one)
    assert payloads.key(one) != payloads.key(two)


def test_make_shippable_fails_only_the_tasks_that_cannot_be_sent_back() -> None:
    values: list[Any] = [1, threading.Lock(), 3]
    failures = {3: TaskFailure(ValueError("fine"), "tb"), 4: TaskFailure(_Unpicklable(), "tb4")}
    values.append(None)
    values.append(None)
    make_shippable(values, failures)
    assert values[:3] == [1, None, 3]
    assert isinstance(failures[1].error, SerializationError)
    assert "result cannot be sent back" in str(failures[1].error)
    assert isinstance(failures[3].error, ValueError), "a shippable exception stays as it is"
    assert isinstance(failures[4].error, SerializationError)
    assert "raised _Unpicklable" in str(failures[4].error)
    assert failures[4].traceback == "tb4", "the remote traceback is kept"


class _Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("no pickling me")

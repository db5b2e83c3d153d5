"""FunctionPayloads, PoolCodec, FunctionCache, encode_results and make_shippable:
what the pools take from manymap.serialize."""

from __future__ import annotations

import functools
import threading
from typing import Any

import pytest

from manymap.launcher import SerializationError
from manymap.launcher.lowlevel import TaskFailure
from manymap.serialize import (
    FUNCTION_CACHE,
    FunctionCache,
    FunctionPayloads,
    PoolCodec,
    dumps,
    encode_results,
    loads,
    make_shippable,
    must_send,
)

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


def test_a_worker_cache_and_its_senders_record_clear_in_step() -> None:
    codec = PoolCodec()
    cache = FunctionCache()
    known: set[int] = set()
    payloads = [codec.function(make_adder(k)) for k in range(FUNCTION_CACHE + 5)]
    keys = [codec.key(payload) for payload in payloads]
    for rounds in range(2):
        for key, payload in zip(keys, payloads, strict=True):
            if codec.must_send(known, key):
                cache.store(key, payload)
            # whatever the sender did not send again, the worker still holds
            function = cache.get(key)
            assert not isinstance(function, TaskFailure), (rounds, key)
            assert function(0) == keys.index(key) + OFFSET
    assert len(known) <= FUNCTION_CACHE
    assert must_send(known, keys[-1]) is False


def test_a_function_that_will_not_load_is_kept_as_its_failure() -> None:
    cache = FunctionCache()
    cache.store(1, b"not a payload")
    assert isinstance(cache.get(1), TaskFailure)
    missing = cache.get(2)
    assert isinstance(missing, TaskFailure)
    assert "function 2 is not cached here" in str(missing.error)


def test_the_codec_names_the_task_whose_argument_cannot_be_encoded() -> None:
    codec = PoolCodec()
    assert loads(codec.items({"k": 1}, [1, 2], 0, False)) == ({"k": 1}, [1, 2])
    with pytest.raises(SerializationError, match="argument of task 8"):
        codec.items({}, [1, threading.Lock()], 7, False)


def test_encode_results_fails_only_what_cannot_be_sent_back() -> None:
    values, failures = loads(encode_results([1, threading.Lock()], {}))
    assert values == [1, None]
    assert isinstance(failures[1].error, SerializationError)
    encoded, buffers = encode_results([2], {}, lambda obj, name: (dumps(obj, name=name), []))
    assert loads(encoded) == ([2], {})
    assert buffers == []

"""The wire format: header, format version, plain data on the stdlib fast path."""

from __future__ import annotations

import pickle
import subprocess
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from manymap.launcher import SerializationError
from manymap.serialize import FORMAT_VERSION, FormatVersionError, dumps, loads

RunPython = Callable[..., subprocess.CompletedProcess[str]]

HEADER = b"\x93MMS" + bytes([FORMAT_VERSION])


def test_every_payload_starts_with_magic_and_format_version() -> None:
    assert FORMAT_VERSION == 3
    for value in (None, 1, [1, 2], lambda: 1):
        assert dumps(value).startswith(HEADER)


def _plain_values() -> list[Any]:
    values: list[Any] = [
        [(i, i * 0.5, str(i)) for i in range(10_000)],
        {str(i): float(i) for i in range(10_000)},
        {"nested": [{"a": (1, 2)}, {3, 4}], "b": b"x" * 100_000},
    ]
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is in the test environment
        return values
    return [*values, np.arange(1_000_000.0), {"arrays": [np.ones((3, 3)), np.zeros(5, dtype=np.int8)]}]


@pytest.mark.parametrize("value", _plain_values(), ids=lambda v: type(v).__name__)
def test_plain_data_payload_is_header_plus_the_stdlib_pickle(value: Any) -> None:
    assert dumps(value) == HEADER + pickle.dumps(value, protocol=5)


def test_plain_data_and_functions_never_import_dill(run_python: RunPython) -> None:
    code = textwrap.dedent(
        """
        import sys
        from manymap.serialize import check, copy, dumps, loads
        value = {"a": [1, 2.5, "x"], "b": (None, True), "c": {1, 2}}
        assert loads(dumps(value)) == value
        assert copy(value) == value
        assert check(value).method == "pickle"
        assert "dill" not in sys.modules, "dill was imported for plain data"
        k = 2
        def work(x):
            return x * k
        assert loads(dumps([lambda: 1, work]))[1](3) == 6
        assert "dill" not in sys.modules, "dill was imported for a function by value"
        class Point:
            pass
        loads(dumps(Point))
        assert "dill" in sys.modules
        print("ok")
        """
    )
    assert run_python(code=code).stdout.strip() == "ok"


def test_another_format_version_names_both_versions() -> None:
    payload = bytearray(dumps([1, 2, 3]))
    payload[4] = FORMAT_VERSION + 1
    with pytest.raises(FormatVersionError) as caught:
        loads(payload)
    error = caught.value
    assert error.found == FORMAT_VERSION + 1
    assert error.expected == FORMAT_VERSION
    text = str(error)
    assert f"format version {FORMAT_VERSION + 1}" in text
    assert f"format version {FORMAT_VERSION}" in text
    assert isinstance(error, SerializationError)
    assert isinstance(error, pickle.UnpicklingError)


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"garbage in", "data starting with b'garba'"),
        (b"", "empty data"),
        (b"\x93M", "data starting with b'\\x93M'"),
        (pickle.dumps([1, 2]), "a plain pickle stream without the manymap header"),
    ],
)
def test_data_that_is_not_a_payload_is_refused_clearly(data: bytes, what: str) -> None:
    with pytest.raises(FormatVersionError) as caught:
        loads(data)
    text = str(caught.value)
    assert text.startswith("not a manymap-serialize payload")
    assert what in text
    assert f"format version {FORMAT_VERSION}" in text
    assert caught.value.found is None


def test_loads_takes_any_bytes_like_payload() -> None:
    payload = dumps({"k": [1, 2]})
    assert loads(bytearray(payload)) == {"k": [1, 2]}
    assert loads(memoryview(payload)) == {"k": [1, 2]}
    framed = b"prefix" + payload
    assert loads(memoryview(framed)[len(b"prefix") :]) == {"k": [1, 2]}


def test_format_version_error_survives_pickling() -> None:
    error = FormatVersionError("text", found=7, expected=1)
    copied = pickle.loads(pickle.dumps(error))
    assert (type(copied), str(copied), copied.found, copied.expected) == (FormatVersionError, "text", 7, 1)

"""Functions by value from an importable module use that module's globals by reference.

The module is ``tests/importable/mm_ser_globals.py``, imported by its plain
name with its directory on ``sys.path``; the processes these tests start get
that directory on ``PYTHONPATH``. ``__main__`` functions, dumped from a real
``python -c`` script, still carry their globals by value.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from manymap.serialize import FunctionPayloads, check, dumps, loads
from manymap.serialize._byvalue import module_globals_name

RunPython = Callable[..., subprocess.CompletedProcess[str]]

IMPORTABLE = Path(__file__).parent / "importable"


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``mm_ser_globals``, imported afresh by its plain name, as a user's module is."""
    monkeypatch.syspath_prepend(str(IMPORTABLE))
    monkeypatch.delitem(sys.modules, "mm_ser_globals", raising=False)
    import mm_ser_globals

    yield mm_ser_globals
    sys.modules.pop("mm_ser_globals", None)


def _functions(helper: ModuleType) -> dict[str, Callable[..., Any]]:
    return {
        "profiled": helper.make_profiled(),
        "locked": helper.make_locked(3),
        "quiet_divide": helper.make_quiet_divide(),
        "current": helper.make_current(),
        "lambda": helper.square_lambda,
    }


@pytest.mark.parametrize("which", ["profiled", "locked", "quiet_divide", "current", "lambda"])
def test_loaded_function_runs_on_the_modules_own_globals(helper: ModuleType, which: str) -> None:
    function = _functions(helper)[which]
    report = check(function)
    assert report.ok, report.explanation
    assert report.by_value == (f"mm_ser_globals.{function.__qualname__}",)
    loaded = loads(dumps(function))
    assert loaded is not function
    assert loaded.__globals__ is helper.__dict__


def test_loaded_function_sees_the_module_globals_as_they_are_when_it_runs(helper: ModuleType) -> None:
    payload = dumps(helper.make_locked(3))
    helper.SCALE = 10  # type: ignore[attr-defined]
    locked = loads(payload)
    assert locked(2) == 60
    assert helper.CALLS == [2], "the call went to the module's own list"
    assert not helper.LOCK.locked()


def test_numpy_error_state_and_profile_work_after_a_round_trip(helper: ModuleType) -> None:
    functions = {name: loads(dumps(function)) for name, function in _functions(helper).items()}
    assert functions["quiet_divide"]([1, 0], [0, 0])[0] == float("inf")
    assert functions["profiled"](10) == 45
    assert functions["current"]() == "module default x1"
    assert functions["lambda"](4) == 16


def test_payload_cache_does_not_depend_on_module_globals(helper: ModuleType) -> None:
    payloads = FunctionPayloads()
    function = helper.make_locked(3)
    first = payloads.payload(function)
    helper.SCALE = 7  # type: ignore[attr-defined] # rebinding a module global does not change what is sent
    assert payloads.payload(function) is first


DUMP_FROM_MODULE = textwrap.dedent(
    """
    import sys
    import mm_ser_globals as m
    from manymap.serialize import dumps
    functions = {
        "profiled": m.make_profiled(),
        "locked": m.make_locked(3),
        "quiet_divide": m.make_quiet_divide(),
        "current": m.make_current(),
        "lambda": m.square_lambda,
        "probe": m.make_globals_probe(),
        "counter": m.make_class()(5),  # an instance of a class defined in a function
    }
    m.SCALE = 1000  # this process's state: the far side must not see it
    with open(sys.argv[1], "wb") as f:
        f.write(dumps(functions))
    """
)

LOAD_IN_FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    from manymap.serialize import loads
    assert "mm_ser_globals" not in sys.modules
    with open(sys.argv[1], "rb") as f:
        functions = loads(f.read())
    import mm_ser_globals as m
    assert functions["probe"]() is m.__dict__
    counter = functions.pop("counter")
    assert all(f.__globals__ is m.__dict__ for f in functions.values())
    assert type(counter).bump.__globals__ is m.__dict__
    m.SCALE = 2  # the far side's own state, set before the calls
    print(functions["locked"](5), m.CALLS)
    print(functions["profiled"](10))
    print(functions["quiet_divide"]([1.0, -1.0, 0.0], [0.0, 0.0, 0.0]))
    print(functions["current"]())
    print(functions["lambda"](3))
    print(counter.bump())
    """
)


def _env() -> dict[str, str]:
    return {"PYTHONPATH": str(IMPORTABLE)}


def test_far_side_imports_the_module_and_uses_its_own_globals(run_python: RunPython, tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    run_python(str(payload), code=DUMP_FROM_MODULE, env=_env())
    proc = run_python(str(payload), code=LOAD_IN_FRESH_PROCESS, env=_env())
    assert proc.stdout.splitlines() == [
        "30 [5]",
        "90",
        "[inf, -inf, nan]",
        "module default x2",
        "18",
        "7",
    ]


def test_module_the_far_side_cannot_import_is_named_in_the_error(
    run_python: RunPython, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.bin"
    run_python(str(payload), code=DUMP_FROM_MODULE, env=_env())
    proc = run_python(str(payload), code=LOAD_IN_FRESH_PROCESS, check=False)  # no PYTHONPATH
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (
        "ImportError: manymap.serialize.loads: a function sent by value uses the globals of module "
        "'mm_ser_globals', which this process cannot import (ModuleNotFoundError: No module named "
        "'mm_ser_globals'); make 'mm_ser_globals' importable here (install it, or put its directory "
        "on sys.path / PYTHONPATH), or define the function in __main__ to send its globals by value"
    )


DUMP_FROM_MAIN = textwrap.dedent(
    """
    import sys
    from manymap.serialize import dumps

    SCALE = 3
    ITEMS = [1, 2]

    def scaled(x):
        return x * SCALE

    def make_closure(k):
        return lambda x: [k * x * SCALE, *ITEMS]

    with open(sys.argv[1], "wb") as f:
        f.write(dumps({"scaled": scaled, "closure": make_closure(2)}))
    SCALE = 1000  # after the dump: not seen by the far side
    """
)

LOAD_MAIN_FUNCTIONS = textwrap.dedent(
    """
    import sys, __main__
    from manymap.serialize import loads

    SCALE = -1  # the loader's own __main__ global of the same name is not used
    with open(sys.argv[1], "rb") as f:
        functions = loads(f.read())
    for function in functions.values():
        assert function.__globals__ is not __main__.__dict__
    print(functions["scaled"](2), functions["closure"](5))
    """
)


def test_main_functions_carry_their_globals_by_value(run_python: RunPython, tmp_path: Path) -> None:
    payload = tmp_path / "payload.bin"
    run_python(str(payload), code=DUMP_FROM_MAIN)
    proc = run_python(str(payload), code=LOAD_MAIN_FUNCTIONS)
    assert proc.stdout.strip() == "6 [30, 1, 2]"


def test_main_function_globals_are_checked_as_parts_of_the_payload() -> None:
    namespace: dict[str, Any] = {"__name__": "__main__", "LIMIT": 4}
    exec("def below(x):\n    return x < LIMIT\n", namespace)
    loaded = loads(dumps(namespace["below"]))
    assert loaded.__globals__ is not namespace
    assert loaded.__globals__["LIMIT"] == 4
    namespace["LIMIT"] = 0
    assert loaded(3), "a __main__ function's globals are a snapshot taken when it was dumped"


def test_a_module_not_found_on_sys_path_sends_its_globals_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As pytest's --import-mode=importlib does with test files: a module in
    # sys.modules under a name that no process can import from sys.path.
    source = tmp_path / "mod.py"
    source.write_text("SCALE = 7\ndef make():\n    return lambda x: x * SCALE\n")
    spec = importlib.util.spec_from_file_location("nowhere_on_path.tests.mod", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    assert module_globals_name(module.__dict__) is None  # so its globals go by value
    assert loads(dumps(module.make()))(6) == 42

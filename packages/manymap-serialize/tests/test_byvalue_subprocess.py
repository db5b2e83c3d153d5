"""By-value shipping for real: dump in one interpreter, load in another that lacks the code.

The dumping side is a ``python -c`` script, so its functions and classes live in
``__main__``; the loading side is another fresh ``python -c`` process, whose
``__main__`` has none of them.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

RunPython = Callable[..., subprocess.CompletedProcess[str]]

DUMPER = textwrap.dedent(
    """
    import dataclasses, sys
    from manymap.serialize import dumps

    OFFSET = 100

    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    def helper(x):
        return x + OFFSET

    def uses_helper(x):
        return helper(x) * 2

    def make_adder(k):
        def add(x):
            return x + k
        return add

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

        def norm1(self):
            return abs(self.x) + abs(self.y)

    def make_point(v):
        return Point(v, -v)

    payload = dumps({
        "fact": fact,
        "uses_helper": uses_helper,
        "adder": make_adder(5),
        "square": lambda x: x * x,
        "point": Point(3, -4),
        "Point": Point,
        "make_point": make_point,
    })
    with open(sys.argv[1], "wb") as f:
        f.write(payload)
    """
)

LOADER = textwrap.dedent(
    """
    import sys, __main__
    from manymap.serialize import loads

    with open(sys.argv[1], "rb") as f:
        d = loads(f.read())
    for name in ("fact", "helper", "uses_helper", "Point", "OFFSET"):
        assert not hasattr(__main__, name), name
    assert d["fact"](10) == 3628800
    assert d["uses_helper"](1) == 202
    assert d["adder"](1) == 6
    assert d["square"](9) == 81
    point = d["point"]
    assert point.norm1() == 7
    assert type(point) is d["Point"]
    made = d["make_point"](2)
    assert type(made) is d["Point"], "a class keeps its identity inside a process"
    assert made == d["Point"](2, -2)
    print("loaded", type(point).__qualname__, type(point).__module__)
    """
)


def test_main_functions_classes_and_instances_load_in_another_process(
    run_python: RunPython, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.bin"
    run_python(str(payload), code=DUMPER)
    proc = run_python(str(payload), code=LOADER)
    assert proc.stdout.strip() == "loaded Point __main__"


ROUND_TRIP_CALLER = textwrap.dedent(
    """
    import dataclasses, subprocess, sys
    from manymap.serialize import dumps, loads

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    WORKER = '''
    import sys
    from manymap.serialize import dumps, loads
    with open(sys.argv[1], "rb") as f:
        task = loads(f.read())
    result = type(task)(task.x + 1, task.y + 1)
    with open(sys.argv[1], "wb") as f:
        f.write(dumps(result))
    '''

    path = sys.argv[1]
    with open(path, "wb") as f:
        f.write(dumps(Point(1, 2)))
    subprocess.run([sys.executable, "-c", WORKER, path], check=True, timeout=120)
    with open(path, "rb") as f:
        result = loads(f.read())
    assert type(result) is Point, type(result)
    assert result == Point(2, 3)
    print("round trip ok")
    """
)


def test_main_class_comes_back_from_a_worker_as_the_callers_own_class(
    run_python: RunPython, tmp_path: Path
) -> None:
    proc = run_python(str(tmp_path / "exchange.bin"), code=ROUND_TRIP_CALLER)
    assert proc.stdout.strip() == "round trip ok"


ENUM_IN_MAIN = textwrap.dedent(
    """
    import enum, warnings
    from manymap.launcher import SerializationError
    from manymap.serialize import check, dumps

    warnings.simplefilter("ignore")  # dill warns before it gives up

    class Color(enum.Enum):
        RED = 1

    report = check([Color.RED])
    assert not report.ok
    print(report.explanation)
    try:
        dumps(Color.RED)
    except SerializationError as error:
        print(error)
    else:
        raise AssertionError("dumps wrote a payload no other process can load")
    """
)


def test_main_class_dill_cannot_ship_by_value_fails_at_dumps_not_on_the_far_side(
    run_python: RunPython,
) -> None:
    # dill cannot serialize an Enum defined in __main__ by value; it would fall
    # back to a by-name reference that only resolves in the writing process.
    lines = run_python(code=ENUM_IN_MAIN).stdout.splitlines()
    reason = (
        "dill cannot serialize __main__.Color by value: it would refer to __main__.Color by name, "
        "which the receiving process cannot resolve; define it in an importable module"
    )
    assert lines == [
        f"cannot serialize obj: [0].__class__: {reason}",
        f"cannot serialize obj: __class__: {reason}",
    ]

"""Benchmark manymap.serialize against stdlib pickle (protocol 5) and dill.

Usage: ``python tools/bench/bench_serialize.py [--repeat N] [--min-time SECONDS]``
(``nox -s bench`` runs it with numpy and dill installed).

For each case it times a full round trip, ``loads(dumps(obj))``, with each of
the three serializers. Every timing is the median over ``--repeat`` rounds
(at least 5); within a round the serializers take turns, so a noisy machine
skews them alike. Each measurement repeats the round trip enough times to
last ``--min-time`` seconds, with the garbage collector off as ``timeit``
does.

Cases: a 100k-item list of ``(int, float, str)`` tuples, a dict of 100k
``str -> float``, an 8 MB float64 numpy array in-band, the same array with
its buffer out of band (``buffer_callback`` / ``buffers``, no copy), a lambda
and a closure (which stdlib pickle cannot ship: "fails").

It prints a markdown table with the times and the ratios to pickle and to
dill, checks the targets for plain data (manymap within 1.10x of pickle's
time and at least 5x faster than dill), and writes everything as JSON to
``$MANYMAP_BENCH_DIR/serialize.json`` (default ``build/bench/``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import pickle
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dill
import numpy as np

import manymap.serialize as ms

ROOT = Path(__file__).resolve().parents[2]
PICKLE_TARGET = 1.10  # manymap time / pickle time, at most
DILL_TARGET = 5.0  # dill time / manymap time, at least

RoundTrip = Callable[[], object]


@dataclass
class Case:
    name: str
    plain: bool  # plain data: the targets apply
    engines: dict[str, RoundTrip | None]  # None: that serializer cannot do it
    sizes: dict[str, int] = field(default_factory=dict)


def _pickle_oob(obj: object) -> RoundTrip:
    def run() -> object:
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        return pickle.loads(data, buffers=buffers)

    return run


def _manymap_callback(obj: object) -> RoundTrip:
    def run() -> object:
        buffers: list[pickle.PickleBuffer] = []
        data = ms.dumps(obj, buffer_callback=buffers.append)
        return ms.loads(data, buffers=buffers)

    return run


def _manymap_oob(obj: object) -> RoundTrip:
    def run() -> object:
        data, buffers = ms.dumps_oob(obj)
        return ms.loads(data, buffers=buffers)

    return run


def _works(run: RoundTrip) -> RoundTrip | None:
    try:
        run()
    except Exception:
        return None
    return run


def make_cases() -> list[Case]:
    rows = [(i, i * 0.5, str(i)) for i in range(100_000)]
    table = {f"key{i}": i * 0.25 for i in range(100_000)}
    array = np.random.default_rng(0).random(1_000_000)  # 8 MB of float64
    assert array.nbytes == 8_000_000
    offset = 3

    def make_closure(k: int) -> Callable[[int], int]:
        def add(x: int) -> int:
            return x + k + offset

        return add

    square = lambda x: x * x  # noqa: E731 - a lambda is the case
    closure = make_closure(4)

    cases: list[Case] = []
    for name, obj in [("list of 100k (int, float, str)", rows), ("dict of 100k str -> float", table)]:
        cases.append(Case(name, True, _in_band_engines(obj), _sizes(obj)))
    cases.append(Case("8 MB float64 array, in-band", True, _in_band_engines(array), _sizes(array)))
    dill_in_band = _works(lambda: dill.loads(dill.dumps(array, protocol=5)))  # dill has no out-of-band
    oob_sizes = {"manymap": len(ms.dumps_oob(array)[0]), "pickle": len(_oob_payload(array))}
    cases.append(
        Case(
            "8 MB float64 array, out-of-band (buffer_callback)",
            True,
            {"pickle": _pickle_oob(array), "dill": dill_in_band, "manymap": _manymap_callback(array)},
            oob_sizes,
        )
    )
    cases.append(
        Case(
            "8 MB float64 array, out-of-band (dumps_oob)",
            True,
            {"pickle": _pickle_oob(array), "dill": dill_in_band, "manymap": _manymap_oob(array)},
            oob_sizes,
        )
    )
    for name, func in [("lambda", square), ("closure", closure)]:
        cases.append(Case(name, False, _in_band_engines(func), _sizes(func)))
    return cases


def _oob_payload(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=5, buffer_callback=lambda buffer: False)


def _in_band_engines(obj: object) -> dict[str, RoundTrip | None]:
    return {
        "pickle": _works(lambda: pickle.loads(pickle.dumps(obj, protocol=5))),
        "dill": _works(lambda: dill.loads(dill.dumps(obj, protocol=5))),
        "manymap": lambda: ms.loads(ms.dumps(obj)),
    }


def _sizes(obj: object) -> dict[str, int]:
    sizes = {"manymap": len(ms.dumps(obj)), "dill": len(dill.dumps(obj, protocol=5))}
    with contextlib.suppress(Exception):  # pickle cannot ship lambdas and closures
        sizes["pickle"] = len(pickle.dumps(obj, protocol=5))
    return sizes


def _number_for(run: RoundTrip, min_time: float) -> int:
    """How many round trips make one measurement last about ``min_time``."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            run()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time / 4 or number >= 1 << 20:
            return max(1, round(number * min_time / max(elapsed, 1e-9)))
        number *= 4


def measure(case: Case, repeat: int, min_time: float) -> dict[str, list[float]]:
    engines = {name: run for name, run in case.engines.items() if run is not None}
    numbers = {name: _number_for(run, min_time) for name, run in engines.items()}
    samples: dict[str, list[float]] = {name: [] for name in engines}
    gc_was_enabled = gc.isenabled()
    try:
        for _ in range(repeat):
            for name, run in engines.items():  # take turns within a round
                number = numbers[name]
                gc.collect()
                gc.disable()
                start = time.perf_counter()
                for _ in range(number):
                    run()
                samples[name].append((time.perf_counter() - start) / number)
                if gc_was_enabled:
                    gc.enable()
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "fails"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7, help="rounds per timing, median taken (min 5)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per measurement (default 0.2)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default $MANYMAP_BENCH_DIR/serialize.json)"
    )
    args = parser.parse_args(argv)
    repeat = max(5, args.repeat)
    out = args.out or Path(os.environ.get("MANYMAP_BENCH_DIR", ROOT / "build" / "bench")) / "serialize.json"

    results: list[dict[str, Any]] = []
    lines = [
        "| case | pickle | dill | manymap | manymap / pickle | dill / manymap | targets |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    missed: list[str] = []
    for case in make_cases():
        samples = measure(case, repeat, args.min_time)
        median = {name: statistics.median(times) for name, times in samples.items()}
        p, d, m = median.get("pickle"), median.get("dill"), median["manymap"]
        vs_pickle = m / p if p else None
        vs_dill = d / m if d else None
        verdict = ""
        if case.plain:
            ok_pickle = vs_pickle is not None and vs_pickle <= PICKLE_TARGET
            ok_dill = vs_dill is None or vs_dill >= DILL_TARGET
            verdict = (
                f"≤{PICKLE_TARGET:.2f}x pickle: {'met' if ok_pickle else 'MISSED'}; "
                f"≥{DILL_TARGET:.0f}x faster than dill: {'met' if ok_dill else 'MISSED'}"
            )
            if not ok_pickle:
                missed.append(f"{case.name}: {vs_pickle:.2f}x pickle's time")
            if not ok_dill:
                missed.append(f"{case.name}: only {vs_dill:.2f}x faster than dill")
        lines.append(
            f"| {case.name} | {_ms(p)} | {_ms(d)} | {_ms(m)} | "
            f"{f'{vs_pickle:.2f}x' if vs_pickle else 'n/a'} | {f'{vs_dill:.1f}x' if vs_dill else 'n/a'} | "
            f"{verdict or '—'} |"
        )
        results.append(
            {
                "case": case.name,
                "plain_data": case.plain,
                "median_seconds": {name: median.get(name) for name in ("pickle", "dill", "manymap")},
                "samples_seconds": samples,
                "payload_bytes": case.sizes,
                "manymap_over_pickle": vs_pickle,
                "dill_over_manymap": vs_dill,
            }
        )

    print(f"## manymap.serialize round trips (dumps + loads), median of {repeat} rounds\n")
    print("\n".join(lines))
    print(
        "\npickle: `pickle.dumps(obj, protocol=5)` / `pickle.loads`; dill: `dill.dumps(obj, protocol=5)` / "
        "`dill.loads` (dill defaults otherwise); manymap: `manymap.serialize.dumps` / `loads`. "
        "Out-of-band rows: pickle and manymap with `buffer_callback=list.append` and `buffers=` "
        "(or `dumps_oob`), no copy of the array at all; dill has no out-of-band buffers, so its column "
        'there is its in-band round trip. "fails": that serializer cannot ship the object. '
        "Lambda and closure: manymap ships them with dill `recurse=True` (only the globals they use, "
        "which `__main__` code needs on a fresh worker); plain dill's default pickles the globals "
        "by reference."
    )
    if missed:
        print("\ntargets missed: " + "; ".join(missed))
    else:
        print(
            f"\nall targets met (plain data: ≤{PICKLE_TARGET:.2f}x pickle, "
            f"≥{DILL_TARGET:.0f}x faster than dill)"
        )

    report = {
        "benchmark": "manymap.serialize round trips",
        "python": sys.version,
        "platform": platform.platform(),
        "versions": {"manymap-serialize": ms.__version__, "dill": dill.__version__, "numpy": np.__version__},
        "repeat": repeat,
        "min_time_seconds": args.min_time,
        "targets": {"manymap_over_pickle_max": PICKLE_TARGET, "dill_over_manymap_min": DILL_TARGET},
        "targets_missed": missed,
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

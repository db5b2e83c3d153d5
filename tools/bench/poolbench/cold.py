"""The cold table: what one ``with Pool() as p: p.map(...)`` in a fresh script costs.

Every cell is a fresh process (``bench_pools.py --cold-cell KEY MEASURE``, see
:mod:`poolbench.coldcell`; the import cells are a ``python -c`` that times one
``import``), run ``repeat`` times with the contenders taking turns; a figure is
the median. Ratios are to the stdlib ``multiprocessing.Pool`` of the same run,
the warm round trip's to the raw ``multiprocessing.Pipe`` ping-pong, the
physical floor. The targets of issue 15 are checked beside the ratios.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolbench import config
from poolbench.config import REFERENCE
from poolbench.units import fmt_ratio, fmt_seconds

RAW = "raw-pipe"
CELL_TIMEOUT = 120.0  # seconds a cell's process may take before it is killed and recorded as hung
#: contender -> the statement its import cell times: what a script writes to get the pool
#: (a package that loads a pool class when first named pays for it here)
IMPORTS = {
    "stdlib": "from multiprocessing.pool import Pool",
    "futures": "from concurrent.futures import ProcessPoolExecutor",
    "loky": "from loky import ProcessPoolExecutor",
    "pathos-process": "from pathos.pools import ProcessPool",
    "manymap-process": "from manymap.pools.local import ProcessPool",
    "manymap-thread": "from manymap.pools.local import ThreadPool",
    "manymap-serial": "from manymap.pools.local import SerialPool",
    "manymap-parallel": "from manymap.pools.rpc import ParallelPool",
    "manymap-dask": "from manymap.pools.dask import DaskPool",
    "dask": "from distributed import Client, LocalCluster",
    RAW: "from multiprocessing import Pipe, Process",
}
COLD_KEYS = list(IMPORTS)
#: cells not run: Dask's own client.map of the first map's 100,000 items (a Dask task
#: each) outlasts CELL_TIMEOUT on a small machine (see config.DASK_TINY_ITEMS)
SKIPPED = {("dask", "firstmap")}
MEASURES = ("import", "startup", "firstmap", "pipes")
#: Samples of an import cell per round: an import is 20 to 40 ms and varies by a third
#: from one fresh process to the next, so a median of three is not a figure.
IMPORT_SAMPLES = 5
#: series -> column title; "pipewarm" comes from the pipes cell (300 more calls on the same pool)
TITLES = {
    "import": "import of the pool (the `from ... import` a script writes)",
    "startup": "start-up: build, map 10 items, close",
    "firstmap": "first map on a fresh pool: 100,000 tiny items",
    "pipes": "first 300 `pipe` calls on a fresh pool",
    "pipewarm": "300 more `pipe` calls (per call, ratio to the raw pipe)",
}

SHORT = {
    "import": "import",
    "startup": "start-up (build, map 10, close)",
    "firstmap": "first map of 100,000 items",
    "pipes": "first 300 pipe calls",
    "pipewarm": "warm pipe round trip",
}


@dataclass(frozen=True)
class ColdTarget:
    key: str
    series: str
    limit: float  # at most this ratio
    reference: str = REFERENCE

    def text(self) -> str:
        to = {RAW: "the raw pipe", "dask": "a bare LocalCluster + Client"}.get(
            self.reference, "the stdlib Pool"
        )
        return f"{SHORT[self.series]} at most {self.limit:g}x {to}"


#: Issue 15's targets, as ratios in one run.
COLD_TARGETS = [
    ColdTarget("manymap-process", "import", 1.5),  # from manymap.pools.local import ProcessPool
    ColdTarget("manymap-parallel", "import", 1.5),  # from manymap.pools.rpc import ParallelPool
    ColdTarget("manymap-thread", "startup", 0.5),
    ColdTarget("manymap-serial", "startup", 0.5),
    ColdTarget("manymap-process", "startup", 1.0),
    ColdTarget("manymap-parallel", "startup", 3.0),
    ColdTarget("manymap-process", "firstmap", 1.0),
    ColdTarget("manymap-parallel", "firstmap", 3.0),
    ColdTarget("manymap-process", "pipewarm", 2.0, RAW),
    ColdTarget("manymap-parallel", "pipewarm", 3.0, RAW),
    ColdTarget("manymap-dask", "startup", 1.5, "dask"),  # issue 14
]


@dataclass
class Cell:
    samples: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


@dataclass
class ColdResults:
    keys: list[str]
    labels: dict[str, str]
    repeat: int
    cells: dict[str, dict[str, Cell]]  # series -> key -> cell
    load: tuple[float, float]

    def figure(self, series: str, key: str) -> float | None:
        median = self.cells[series][key].median
        return None if median is None else median / (300 if series == "pipewarm" else 1)

    def ratio(self, series: str, key: str, reference: str | None = None) -> float | None:
        ref_key = reference or (RAW if series == "pipewarm" else REFERENCE)
        value, ref = self.figure(series, key), self.figure(series, ref_key)
        return None if value is None or not ref else value / ref

    def verdict(self, target: ColdTarget) -> tuple[bool, float] | None:
        ratio = self.ratio(target.series, target.key, target.reference)
        return None if ratio is None else (ratio <= target.limit, ratio)


def _import_cell(statement: str) -> dict[str, float]:
    # Nothing but the built-in time module before the clock: json (for the figure) would
    # load re, enum and functools first, which both a pool's import and the stdlib's
    # need, and the stdlib's import, the smaller, would then read as a third cheaper.
    code = (
        "import time\nstart = time.perf_counter()\n"
        f"{statement}\n"
        "print('{\"seconds\": %r}' % (time.perf_counter() - start))"
    )
    return _run([sys.executable, "-c", code])


def _pool_cell(script: Path, key: str, measure: str) -> dict[str, float]:
    return _run([sys.executable, str(script), "--cold-cell", key, measure, str(config.WORKERS)])


def _run(argv: list[str]) -> dict[str, float]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=CELL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"hung: no answer within {CELL_TIMEOUT:.0f} s (killed)") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1][:160]
        raise RuntimeError(f"fails: exit status {done.returncode}: {last}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_cold(script: Path, keys: list[str], labels: dict[str, str], repeat: int) -> ColdResults:
    """Run every cell ``repeat`` times (contenders taking turns) and return the samples."""
    keys = [key for key in COLD_KEYS if key in keys or key == RAW]
    cells = {series: {key: Cell() for key in keys} for series in (*MEASURES, "pipewarm")}
    load = os.getloadavg()[0]
    started = time.monotonic()
    for round_no in range(1, repeat + 1):
        for measure in MEASURES:
            shift = (round_no - 1) % len(keys)
            turns = (keys[shift:] + keys[:shift]) * (IMPORT_SAMPLES if measure == "import" else 1)
            for key in turns:
                if (key, measure) in SKIPPED:
                    continue
                try:
                    if measure == "import":
                        out = _import_cell(IMPORTS[key])
                    else:
                        out = _pool_cell(script, key, measure)
                except (RuntimeError, ValueError, IndexError) as exc:
                    cells[measure][key].problems.append(f"round {round_no}: {exc}")
                    continue
                cells[measure][key].samples.append(out["seconds"])
                if "warm" in out:
                    cells["pipewarm"][key].samples.append(out["warm"])
        print(f"[cold {round_no}/{repeat}, {time.monotonic() - started:.0f} s]", file=sys.stderr)
    return ColdResults(keys, labels, repeat, cells, (load, os.getloadavg()[0]))


def _cell_text(r: ColdResults, series: str, key: str) -> str:
    cell = r.cells[series][key]
    if not cell.samples:
        return "fails" if cell.problems else "—"
    text = f"{fmt_seconds(r.figure(series, key))} · {fmt_ratio(r.ratio(series, key))}"
    if series == "import":
        text = f"`{IMPORTS[key]}` {text}"
    return text


def _targets_text(r: ColdResults, key: str) -> str:
    marks = []
    for target in COLD_TARGETS:
        if target.key != key:
            continue
        verdict = r.verdict(target)
        limit = f"≤ {target.limit:g}x{' raw' if target.reference == RAW else ''}"
        marks.append(
            f"{SHORT[target.series].split(' (')[0]} {limit}: "
            + ("n/a" if verdict is None else ("PASS" if verdict[0] else "MISS"))
        )
    return "; ".join(marks) or "—"


def cold_table(r: ColdResults) -> list[str]:
    series = [*MEASURES, "pipewarm"]
    header = ["contender", *(TITLES[name] for name in series), "issue 15 targets"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(series) + "---|"]
    for key in r.keys:
        row = [r.labels.get(key, key), *(_cell_text(r, name, key) for name in series), _targets_text(r, key)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def cold_notes(r: ColdResults) -> list[str]:
    problems = [
        f"{key} {series}: {problem}"
        for series, by_key in r.cells.items()
        for key, cell in by_key.items()
        for problem in cell.problems
    ]
    out = [
        f"Each cell: a fresh process per sample, the median of {r.repeat} (import: "
        f"{r.repeat * IMPORT_SAMPLES}) · its ratio to the "
        "`multiprocessing.Pool` of the same run (the last column: to the raw pipe). Pools have "
        f"{config.WORKERS} workers and their library's default start method. The pool is "
        "imported before the clock starts (the import column times that import alone, the `from ... "
        "import` a script writes, in a `python -c` of its own that imports nothing else before it: a "
        "pool class a package loads when first named is paid for there); start-up times building "
        "the pool, a map of 10 items, close and join; first map and the pipe calls start right "
        "after the pool is built and entered, as a script's `with Pool() as p:` does (a manymap pool "
        "starts its workers on entry, the stdlib Pool in its constructor; they may still be starting).",
        "raw `multiprocessing.Pipe`: one child process and a ping-pong on a pipe, the physical floor "
        "(start-up: start it, 10 items there and back, join; map: the 100,000 items there and back in "
        "one message; pipe calls: one round trip each).",
        f"Load average {r.load[0]:.2f} at the start of the cold run, {r.load[1]:.2f} at the end "
        f"({os.cpu_count()} cores): cold figures on a loaded machine vary more than warm ones.",
    ]
    if problems:
        out.append("failures and hangs: " + "; ".join(problems))
    return out


def cold_target_lines(r: ColdResults) -> list[str]:
    lines = []
    for target in COLD_TARGETS:
        if target.key not in r.keys:
            continue
        label = r.labels.get(target.key, target.key).replace("`", "")
        what = f"{label}: {IMPORTS[target.key]}" if target.series == "import" else label
        verdict = r.verdict(target)
        if verdict is None:
            lines.append(f"MISS  {what}: {target.text()} — cannot tell (a figure is missing)")
        else:
            lines.append(f"{'PASS' if verdict[0] else 'MISS'}  {what}: {target.text()} — {verdict[1]:.2f}x")
    return lines


def cold_report(r: ColdResults) -> dict[str, Any]:
    """The cold run for the JSON file."""
    return {
        "repeat": r.repeat,
        "load_average_1min": {"start": r.load[0], "end": r.load[1]},
        "imports": {key: IMPORTS[key] for key in r.keys},
        "series": {
            series: {
                key: {
                    "samples_seconds": cell.samples,
                    "problems": cell.problems,
                    "figure_seconds": r.figure(series, key),
                    "ratio": r.ratio(series, key),
                }
                for key, cell in by_key.items()
            }
            for series, by_key in r.cells.items()
        },
        "targets": cold_target_lines(r),
    }

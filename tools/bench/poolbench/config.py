"""Settings of the pools benchmark: sizes, timeouts, paths, and the worker count ``--workers`` sets.

Modules read ``config.WORKERS`` at call time (not ``from config import WORKERS``):
``main()`` sets it from the command line.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"
DOCS_CHART = ROOT / "docs" / "assets" / "bench-pools.png"
DOCS_BEGIN = "<!-- bench-pools: begin (written by tools/bench/bench_pools.py; edits here are overwritten) -->"
DOCS_END = "<!-- bench-pools: end -->"
DOCS_COLD_BEGIN = (
    "<!-- bench-pools-cold: begin (written by tools/bench/bench_pools.py; edits here are overwritten) -->"
)
DOCS_COLD_END = "<!-- bench-pools-cold: end -->"
DOCS_PLACEHOLDER = re.compile(r"No results are recorded on this page yet:.*?benchmarks land\.\n", re.DOTALL)

WORKERS = 2
TINY_ITEMS = 100_000
# tiny-dask: DaskPool beside Dask's own client.map, a Dask task per item. 100,000 Dask tasks
# outlast the phase timeout on a small loaded machine: measured on 2 shared cores (load 10), client.map
# took 7 s for 1,000 items and 22 s for 3,000 (10,000: over the 30 s timeout), so 1,000.
DASK_TINY_ITEMS = 1_000
DASK_KEYS = ("manymap-dask", "dask")
CPU_TASKS = 64
CPU_TASK_SECONDS = 0.025
PAYLOAD_ARRAYS = 40
PAYLOAD_ELEMENTS = 1_000_000  # float64: 8 MB per array
LATENCY_CALLS = 300
CLOSURE_ITEMS = 100_000  # as tiny: the closure's cost per item, not the map's fixed cost
CLOSURE_FACTOR = 3
SHORT_INNER = 3  # tiny and closure last milliseconds: timed 3 times per round and pool
LATENCY_ROUNDS = 3  # latency: 3 rounds per --repeat, each on a fresh pool (see the notes)
REFERENCE = "stdlib"  # the contender every figure is divided by
SERIAL = "manymap-serial"  # the serial baseline of the cpu workload
CLOSE_TIMEOUT = 20.0  # seconds for close + join, and for killing a hung pool
NUDGE = 2.0  # seconds between the watchdog's interrupts of an overdue phase
QUIET = 0.05  # a sample is "quiet" when other processes used less than this share of the machine

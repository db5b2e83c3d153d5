"""Benchmark manymap's local pools against multiprocessing, concurrent.futures, loky and pathos.

Usage: ``python tools/bench/bench_pools.py [--quick] [--repeat N] [--only W,...]
[--cold-repeat N] [--contenders C,...] [--timeout SECONDS] [--docs | --no-docs]``
(``nox -s bench`` runs it with numpy, dill, loky, pathos and matplotlib
installed; ``nox -s bench -- pools --quick`` runs this script alone).

Contenders, each with 2 workers: ``multiprocessing.Pool`` (the reference:
every figure is also given as a ratio to it), ``concurrent.futures``'
``ProcessPoolExecutor``, loky's ``ProcessPoolExecutor``, pathos'
``ProcessPool`` and ``ThreadPool``, and manymap's ``ProcessPool``,
``ThreadPool`` and ``SerialPool`` (the serial baseline of the cpu workload);
then the ParallelPool rows of manymap-pools-rpc: manymap's with local ppft
workers, manymap's on a manymap-server through an ssh tunnel (when an sshd can
be had), and pathos'. Each library runs with its own default start method.

Workloads: ``tiny`` (``map`` of ``x*x`` over 100,000 ints: per-task
overhead), ``cpu`` (64 tasks of about 25 ms of pure-Python CPU: parallel
efficiency, against serial time / cores), ``payload`` (40 float64 arrays of
8 MB, returned doubled: bulk data), ``latency`` (300 sequential single calls:
round trip) and ``closure`` (a lambda capturing a local, over 1,000 items;
the ratio there is to the stdlib Pool mapping the picklable equivalent,
``functools.partial(scale, k=k)``, which every contender also runs).

How it measures. For every round, workload and contender a fresh pool is
created and warmed up (workers started, numpy imported, one small map), and
only the workload's call is timed, with the garbage collector off; then the
pool is closed and joined and the result checked. Within a round the
contenders take turns (starting one further along each round), so a noisy
machine skews them alike; each figure is the median over ``--repeat`` rounds
(default 5; tiny and closure, which last milliseconds, are timed 3 times per
round on the same pool; latency gets 3 rounds per repeat).
Every phase runs under a watchdog: a pool that does not return within
``--timeout`` seconds is interrupted (SIGALRM in the main thread, then its new
child processes are killed) and recorded as "hung"; an exception is recorded
as "fails". Either way the run goes on with the next contender.

The cold table (``--only cold`` runs it alone; a full run runs it after the
warm one): for every manymap pool (SerialPool, ThreadPool, ProcessPool, local
ParallelPool), the stdlib Pool, ProcessPoolExecutor, loky, pathos'
ProcessPool, and a raw ``multiprocessing.Pipe`` ping-pong (the physical
floor): the import of the pool (its ``from ... import``), start-up (build,
map 10 items, close), the first map of 100,000 tiny items on a fresh pool, the first 300
``pipe`` calls and 300 more; each cell a fresh process, the median of
``--cold-repeat`` (default 7), with issue 15's targets beside the ratios.

It prints a markdown table and the targets of the issue as PASS / MISS lines,
writes ``$MANYMAP_BENCH_DIR/pools.json`` (raw samples, medians, ratios,
machine, versions, date) and ``pools.png`` (default ``build/bench/``). After a
full run (no ``--only``, ``--contenders`` or ``--quick``; ``--docs`` forces it,
``--no-docs`` prevents it) it also copies the chart to
``docs/assets/bench-pools.png`` and rewrites the "Pools" sections (warm and
cold) of ``docs/benchmarks.md``, leaving the rest of the page alone.

The code is in ``poolbench/`` next to this script, one concept a module
(contenders, workloads, measure, summary and targets, render, chart, docs,
cli). Adding contenders: write a factory in ``poolbench/contenders.py``
decorated with ``@contender(key)`` that returns a ``Contender`` (or raises
``Unavailable`` with a reason when its set-up, such as an sshd, is missing),
and add its targets to ``TARGETS`` in ``poolbench/summary.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

# The tasks are defined here, in the script run as ``__main__``: the stdlib pools pickle them
# by reference (re-importing this script under spawn), manymap and pathos send ``__main__``
# functions by value, as they do a user's script. The rest is in poolbench/, one concept a
# module, imported only under the guard below: a cold cell (``--cold-cell``) is a fresh
# process that must load nothing a pool might need, so that its start-up is not flattered.


def square(x: int) -> int:
    return x * x


def spin(n: int) -> int:
    """Pure-Python CPU work, about ``n`` loop iterations."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def double(array: Any) -> Any:
    return array * 2


def scale(x: int, k: int) -> int:
    return x * k


def make_closure(k: int) -> Callable[[int], int]:
    """A lambda that captures a local: what stdlib pickle cannot ship."""
    return lambda x: x * k


if __name__ == "__main__":
    if sys.argv[1:2] == ["--cold-cell"]:
        from poolbench.coldcell import main as cold_cell

        sys.exit(cold_cell(square, sys.argv[2:]))
    from poolbench.cli import main
    from poolbench.workloads import Tasks

    sys.exit(main(Tasks(square, spin, double, scale, make_closure), doc=__doc__))

"""Per-call overhead of the pools at two revisions, measured alternately in one session.

    python tools/bench/compare_revisions.py OLD_CHECKOUT NEW_CHECKOUT [--pairs 5]

Each checkout is a directory holding ``packages/*/src`` (a git worktree of the
revision). Every measurement is a fresh process whose ``PYTHONPATH`` is that
checkout's sources, so both revisions run with the same interpreter and
third-party packages; old and new take turns, which spreads this machine's
noise over both. It prints, per pair, the median of:

- ``serial-tiny``: ``SerialPool.map`` of 100,000 tiny items;
- ``thread-map``: ``ThreadPool(2).map`` of 1,000 items;
- ``process-map``: ``ProcessPool(2).map`` of 1,000 items (module-level function);
- ``process-lambda``: the same with a new lambda each call (shipped each time);
- ``process-pipe``: ``ProcessPool(2).pipe``, per call;
- ``parallel-pipe``: ``ParallelPool(2).pipe`` (local workers), per call.

Not part of ``nox -s bench``: it answers "did a change make a pool slower?",
which the benchmark's ratios to other libraries cannot resolve below its noise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

PROBE = r"""
import statistics, sys, time
from operator import neg
kind = sys.argv[1]

def median_of(call, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)

if kind == "serial-tiny":
    from manymap.pools.local import SerialPool
    pool = SerialPool()
    figure = median_of(lambda: pool.map(neg, range(100_000)), 9)
elif kind == "thread-map":
    from manymap.pools.local import ThreadPool
    with ThreadPool(2) as pool:
        pool.map(neg, range(10))
        figure = median_of(lambda: pool.map(neg, range(1000)), 25)
elif kind == "process-pipe":
    from manymap.pools.local import ProcessPool
    with ProcessPool(2) as pool:
        pool.map(neg, range(10))
        figure = median_of(lambda: [pool.pipe(neg, i) for i in range(300)], 9) / 300
elif kind in ("process-map", "process-lambda"):
    from manymap.pools.local import ProcessPool
    with ProcessPool(2) as pool:
        pool.map(neg, range(10))
        if kind == "process-map":
            figure = median_of(lambda: pool.map(neg, range(1000)), 25)
        else:
            figure = median_of(lambda: pool.map((lambda k: lambda x: x + k)(time.time()), range(1000)), 25)
else:
    from manymap.pools.rpc import ParallelPool
    with ParallelPool(2) as pool:
        pool.map(neg, range(10))
        figure = median_of(lambda: [pool.pipe(neg, i) for i in range(300)], 9) / 300
print(figure)
"""

KINDS = ("serial-tiny", "thread-map", "process-map", "process-lambda", "process-pipe", "parallel-pipe")


def measure(checkout: Path, kind: str) -> float:
    sources = os.pathsep.join(str(path) for path in sorted(checkout.glob("packages/*/src")))
    if not sources:
        raise SystemExit(f"{checkout} holds no packages/*/src")
    env = {**os.environ, "PYTHONPATH": sources}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, kind], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} at {checkout} failed:\n{done.stderr}")
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--only", default=",".join(KINDS), help=f"comma-separated: {','.join(KINDS)}")
    args = parser.parse_args()
    for kind in args.only.split(","):
        ratios = []
        for _ in range(args.pairs):
            old, new = measure(args.old, kind), measure(args.new, kind)
            ratios.append(new / old)
            print(
                f"{kind:15} old {old * 1e6:10.1f} us  new {new * 1e6:10.1f} us  new/old {new / old:.2f}",
                flush=True,
            )
        ratios.sort()
        print(
            f"{kind:15} median new/old over {args.pairs} pairs: {ratios[len(ratios) // 2]:.2f}\n", flush=True
        )


if __name__ == "__main__":
    main()

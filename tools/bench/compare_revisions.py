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
- ``parallel-pipe``: ``ParallelPool(2).pipe`` (local workers), per call;
- ``payload-ratio``: ``ParallelPool(2).map`` of 40 arrays of 8 MB (local
  workers), as a ratio to ``multiprocessing.Pool(2).map`` of the same arrays
  in the same process (the two take turns, median of 3 each; the payload
  row of ``bench_pools.py``);
- ``ssh-payload-ratio``: the same with the ParallelPool's two workers on a
  server started over ssh (a private sshd on 127.0.0.1, tools/testhosts),
  whose Python also runs the checkout's sources.

Not part of ``nox -s bench``: it answers "did a change make a pool slower?",
which the benchmark's ratios to other libraries cannot resolve below its noise.

``--instructions`` counts instead of timing (needs ``valgrind``): the
instructions the calling process executes per call (its threads included,
the workers left out), from two runs under callgrind, with and without
the calls. A loaded machine moves that count by a few percent, not by half
as it moves the clock. Kinds: ``serial-tiny``, ``thread-map``,
``process-map``, ``process-pipe``.
"""

from __future__ import annotations

import argparse
import os
import re
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
elif kind == "parallel-pipe":
    from manymap.pools.rpc import ParallelPool
    with ParallelPool(2) as pool:
        pool.map(neg, range(10))
        figure = median_of(lambda: [pool.pipe(neg, i) for i in range(300)], 9) / 300
else:
    import multiprocessing, os, shutil, stat, tempfile
    from pathlib import Path
    import numpy as np
    from manymap.pools.rpc import ParallelPool
    arrays = [np.random.default_rng(i).random(1_000_000) for i in range(40)]
    directory = Path(tempfile.mkdtemp(prefix="manymap-compare-"))
    server = None
    try:
        if kind == "ssh-payload-ratio":
            import manymap_testhosts as testhosts
            server = testhosts.SSHServer(directory / "sshd", testhosts.Keyring(directory / "keys"))
            server.start()
            python = directory / "python"  # the remote server runs this checkout's sources too
            sources = os.environ["PYTHONPATH"]
            python.write_text(f'#!/bin/sh\nPYTHONPATH={sources} exec {sys.executable} "$@"\n')
            python.chmod(python.stat().st_mode | stat.S_IXUSR)
            config = str(server.ssh_config)
            make = lambda: ParallelPool(
                0, servers=[server.alias], ssh_config=config, python=str(python), server_workers=2
            )
        else:
            make = lambda: ParallelPool(2)
        with multiprocessing.Pool(2) as stdlib, make() as pool:
            times = {"stdlib": [], "manymap": []}
            for p in (stdlib, pool):
                p.map(np.negative, [np.ones(1000)] * 8)
            for _ in range(3):
                for name, p in (("stdlib", stdlib), ("manymap", pool)):
                    start = time.perf_counter()
                    out = p.map(np.negative, arrays)
                    times[name].append(time.perf_counter() - start)
                    assert len(out) == 40 and out[7][9] == -arrays[7][9]
                    del out
        figure = statistics.median(times["manymap"]) / statistics.median(times["stdlib"])
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
print(figure)
"""

CALLS = r"""
import sys
from operator import neg
from manymap.pools.local import ProcessPool, SerialPool, ThreadPool
kind, calls = sys.argv[1], int(sys.argv[2])
if kind == "serial-tiny":
    pool = SerialPool()
    for _ in range(calls):
        pool.map(neg, range(100_000))
else:
    with (ThreadPool if kind == "thread-map" else ProcessPool)(2) as pool:
        pool.map(neg, range(10))
        for i in range(calls):
            pool.pipe(neg, i) if kind == "process-pipe" else pool.map(neg, range(1000))
"""
COUNTED = {"serial-tiny": 5, "thread-map": 200, "process-map": 200, "process-pipe": 300}  # calls per count

KINDS = (
    "serial-tiny",
    "thread-map",
    "process-map",
    "process-lambda",
    "process-pipe",
    "parallel-pipe",
    "payload-ratio",
    "ssh-payload-ratio",
)


def _sources(checkout: Path) -> str:
    sources = os.pathsep.join(str(path) for path in sorted(checkout.glob("packages/*/src")))
    if not sources:
        raise SystemExit(f"{checkout} holds no packages/*/src")
    return sources


def measure(checkout: Path, kind: str) -> float:
    env = {**os.environ, "PYTHONPATH": _sources(checkout)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, kind], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} at {checkout} failed:\n{done.stderr}")
    return float(done.stdout.split()[-1])


def instructions(checkout: Path, kind: str) -> float:
    """Instructions the calling process executes per call of ``kind`` (valgrind's callgrind)."""
    env = {**os.environ, "PYTHONPATH": _sources(checkout)}
    counts = []
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    for calls in (0, COUNTED[kind]):
        done = subprocess.run(
            [*valgrind, sys.executable, "-c", CALLS, kind, str(calls)],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        # Forked workers run under valgrind too and report their own counts:
        # the calling process is the first pid valgrind names.
        first = re.search(r"==(\d+)==", done.stderr)
        count = first and re.search(rf"=={first.group(1)}== Collected\s*:\s*(\d+)", done.stderr)
        if done.returncode != 0 or not count:
            raise SystemExit(f"{kind} at {checkout} failed under valgrind:\n{done.stderr[-2000:]}")
        counts.append(int(count.group(1)))
    return (counts[1] - counts[0]) / COUNTED[kind]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--only", default=None, help=f"comma-separated: {','.join(KINDS)}")
    parser.add_argument("--instructions", action="store_true", help="count instructions per call (valgrind)")
    args = parser.parse_args()
    kinds = args.only.split(",") if args.only else list(COUNTED if args.instructions else KINDS)
    if args.instructions and (unknown := [kind for kind in kinds if kind not in COUNTED]):
        raise SystemExit(f"--instructions counts {', '.join(COUNTED)}, not {', '.join(unknown)}")
    probe = instructions if args.instructions else measure
    for kind in kinds:
        ratios = []
        if args.instructions:
            show = lambda v: f"{v:12,.0f} instructions"  # noqa: E731
        elif kind.endswith("ratio"):
            show = lambda v: f"{v:8.2f}x"  # noqa: E731
        else:
            show = lambda v: f"{v * 1e6:10.1f} us"  # noqa: E731
        for _ in range(args.pairs):
            old, new = probe(args.old, kind), probe(args.new, kind)
            ratios.append(new / old)
            print(f"{kind:15} old {show(old)}  new {show(new)}  new/old {new / old:.2f}", flush=True)
        ratios.sort()
        print(
            f"{kind:15} median new/old over {args.pairs} pairs: {ratios[len(ratios) // 2]:.2f}\n", flush=True
        )


if __name__ == "__main__":
    main()

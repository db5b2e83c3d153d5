"""The markdown of a run: the table, its notes, and the targets as PASS / MISS lines."""

from __future__ import annotations

import os
import statistics

from poolbench import config
from poolbench.config import CLOSURE_ITEMS, LATENCY_ROUNDS, QUIET, REFERENCE, SERIAL, SHORT_INNER, TINY_ITEMS
from poolbench.contenders import stdlib_chunksize
from poolbench.summary import TARGETS, Summary
from poolbench.units import fmt_ratio, fmt_seconds


def _cell(s: Summary, series: str, key: str) -> str:
    m = s.results[series].get(key)
    if m is None:
        return "—"
    if m.status != "ok" or not m.samples:
        partial = s.figure("closure-partial", key) if series == "closure" else None
        if partial is not None:  # show the figure the closure ratios are taken to
            return f"{m.status} (partial: {fmt_seconds(partial)})"
        return m.status if m.status != "ok" else "—"
    return f"{fmt_seconds(s.figure(series, key))} · {fmt_ratio(s.ratio(series, key))}"


def table(s: Summary) -> list[str]:
    names = [w.name for w in s.workloads]
    header = ["contender"]
    for w in s.workloads:
        unit = w.series[0].unit
        header.append(f"{w.title}{f' ({unit})' if unit else ''}")
        if w.name == "cpu":
            header.append("cpu ÷ ideal")
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for c in s.contenders:
        row = [c.label]
        for name in names:
            row.append(_cell(s, name, c.key))
            if name == "cpu":
                over = s.over_ideal(c.key)
                row.append(fmt_ratio(over) if over is not None else "—")
        lines.append("| " + " | ".join(row) + " |")
    if "cpu" in names:
        ideal = s.ideal()
        ideal_ratio = (
            None if ideal is None or not s.median("cpu", REFERENCE) else ideal / s.median("cpu", REFERENCE)
        )
        row = [f"ideal: serial ÷ {min(config.WORKERS, os.cpu_count() or 1)} cores"]
        for name in names:
            row.append(f"{fmt_seconds(ideal)} · {fmt_ratio(ideal_ratio)}" if name == "cpu" and ideal else "")
            if name == "cpu":
                row.append("1.00x" if ideal else "")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def notes(s: Summary, repeat: int) -> list[str]:
    names = {w.name for w in s.workloads}
    out = [
        f"Each cell: the median of {repeat} round{'s' if repeat != 1 else ''} (tiny and closure: "
        f"{SHORT_INNER} timed calls per round; latency: {LATENCY_ROUNDS * repeat} rounds) · its ratio "
        "to the `multiprocessing.Pool` of the same run (lower is better). "
        f"Every pool has {config.WORKERS} workers and its library's default start method; it is created and "
        "warmed up outside the timed region (workers started, one small map and one call), and only "
        "the workload's call is timed.",
        "`map` is each library's own with its default chunking: `multiprocessing.Pool.map`, pathos and "
        "manymap pick their chunksize automatically; `ProcessPoolExecutor.map` (stdlib and loky) has "
        "no automatic choice, so it is given the stdlib Pool's (items / (4 x workers), rounded up: "
        f"{stdlib_chunksize(TINY_ITEMS, config.WORKERS)} for tiny).",
    ]
    if "cpu" in names:
        out.append(
            "cpu ÷ ideal: the cpu time over serial time (manymap `SerialPool`) / cores; the threads "
            "hold the GIL, so 2x is their expected figure. Other load on the machine slows the pools, "
            "which need every core, more than the one-core serial baseline (see the load average)."
        )
    if "latency" in names:
        out.append(
            "latency: `pipe` for pathos and manymap, `apply` for `multiprocessing.Pool`, "
            "`submit(...).result()` for the executors; per call. A pool's round trip time varies "
            "several-fold from one pool to the next on this shared machine (where the scheduler puts "
            f"its threads), so latency gets {LATENCY_ROUNDS} rounds per repeat, each on a fresh pool."
        )
    if "closure" in names:
        out.append(
            "closure: `lambda x: x * k` with `k` a local of the enclosing function, per item; the ratio "
            "there is to the stdlib Pool mapping its picklable equivalent `functools.partial(scale, k=k)` "
            '(every contender runs it too: see the JSON). "fails": stdlib pickle cannot ship a lambda.'
        )
    out.append('"hung": no answer within the timeout; the pool was killed and the run went on.')
    load = [
        f"{w.name} {statistics.median(shares):.0%} / {max(shares):.0%}"
        for w in s.workloads
        for shares in [s.other_load(w.name)]
        if shares
    ]
    if load:
        out.append(
            "Other processes' use of the machine during the timed calls (share of all cores, median / "
            f"max over the samples): {', '.join(load)}. Above a few percent the figures, cpu's first, "
            "are less reliable."
        )
    return out


def info_lines(s: Summary) -> list[str]:
    """Figures that explain the targets (not targets themselves)."""
    key = "manymap-process"
    lines = []
    quiet, quiet_serial = s.quiet_samples("cpu", key), s.quiet_samples("cpu", SERIAL)
    if quiet and quiet_serial:
        mine = statistics.median(quiet)
        ideal = statistics.median(quiet_serial) / min(config.WORKERS, os.cpu_count() or 1)
        lines.append(
            f"INFO  manymap ProcessPool cpu on the quiet samples only (other processes under {QUIET:.0%} "
            f"of the machine): {fmt_seconds(mine)} (n={len(quiet)}) vs serial / cores {fmt_seconds(ideal)} "
            f"(n={len(quiet_serial)}): {mine / ideal:.3f}x"
        )
    closure, partial = s.figure("closure", key), s.figure("closure-partial", key)
    if closure is not None and partial is not None:
        lines.append(
            f"INFO  manymap ProcessPool closure: lambda {fmt_seconds(closure)} "
            f"vs partial {fmt_seconds(partial)} per item "
            f"over the same {CLOSURE_ITEMS:,} items ({closure / partial:.2f}x: the cost of the closure "
            "by value)"
        )
    return lines


def target_lines(s: Summary, keys: set[str], workloads: set[str]) -> list[str]:
    lines = []
    for target in TARGETS:
        if target.contender not in keys or not {target.workload, *target.needs} <= workloads:
            continue
        label = next(c.short for c in s.contenders if c.key == target.contender)
        verdict = target.check(s)
        if verdict is None:
            m = s.results.get(target.workload, {}).get(target.contender)
            why = f"{m.status}: {m.detail}" if m and m.status != "ok" else "a figure it needs is missing"
            lines.append(f"MISS  {label}: {target.text} — cannot tell ({why})")
        else:
            met, figures = verdict
            lines.append(f"{'PASS' if met else 'MISS'}  {label}: {target.text} — {figures}")
    return lines + (info_lines(s) if "manymap-process" in keys else [])

"""The command line of the pools benchmark: pick workloads and contenders, run the rounds, write out."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from poolbench import config
from poolbench.chart import chart
from poolbench.cold import (
    IMPORT_SAMPLES,
    RAW,
    ColdResults,
    cold_notes,
    cold_report,
    cold_table,
    cold_target_lines,
    run_cold,
)
from poolbench.config import (
    CLOSURE_ITEMS,
    CPU_TASK_SECONDS,
    CPU_TASKS,
    DOCS_CHART,
    DOCS_PAGE,
    LATENCY_CALLS,
    PAYLOAD_ARRAYS,
    PAYLOAD_ELEMENTS,
    REFERENCE,
    ROOT,
    SERIAL,
    TINY_ITEMS,
)
from poolbench.contenders import CONTENDERS, Contender, Unavailable, stdlib_chunksize, version
from poolbench.docs import cold_docs_section, docs_section, write_cold_docs, write_docs
from poolbench.measure import Measurement, Watchdog, measure_round
from poolbench.render import notes, table, target_lines
from poolbench.summary import Summary
from poolbench.units import fmt_seconds
from poolbench.workloads import Tasks, calibrate_spin, make_workloads


def _names(text: str | None, known: Sequence[str], what: str) -> list[str] | None:
    if text is None:
        return None
    chosen: list[str] = []
    for name in (part.strip().lower() for part in text.split(",") if part.strip()):
        matches = [k for k in known if k == name] or [k for k in known if k.startswith(name + "-")]
        if not matches:
            raise SystemExit(f"unknown {what} {name!r}; choose from {', '.join(known)}")
        chosen += [k for k in matches if k not in chosen]
    return chosen


def main(tasks: Tasks, argv: list[str] | None = None, doc: str | None = None) -> int:
    """Run the benchmark; ``tasks`` are the ``__main__`` script's functions, ``doc`` its docstring."""
    workload_names = ["tiny", "tiny-dask", "cpu", "payload", "latency", "closure", "cold"]
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    parser.add_argument("--repeat", type=int, default=5, help="rounds, median taken (default 5, min 3)")
    parser.add_argument("--quick", action="store_true", help="one round: a smoke check, not a result")
    parser.add_argument(
        "--only",
        help=f"workloads, comma-separated: {','.join(workload_names)} (cold: the cold table alone)",
    )
    parser.add_argument(
        "--cold-repeat",
        type=int,
        default=7,
        help="fresh processes per cold cell, median taken (default 7, min 3; 1 with --quick)",
    )
    parser.add_argument(
        "--contenders",
        help=f"comma-separated, a prefix such as 'manymap' takes all of its kind: {','.join(CONTENDERS)} "
        f"({REFERENCE} always runs: it is the reference; {SERIAL} too for cpu)",
    )
    parser.add_argument(
        "--workers", type=int, default=config.WORKERS, help=f"workers per pool (default {config.WORKERS})"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per phase before 'hung' (30)")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default $MANYMAP_BENCH_DIR/pools.json)"
    )
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument(
        "--docs", action="store_true", default=None, help="update docs/ even after a partial run"
    )
    docs.add_argument("--no-docs", dest="docs", action="store_false", help="leave docs/ alone")
    args = parser.parse_args(argv)
    config.WORKERS = max(1, args.workers)
    repeat = 1 if args.quick else max(3, args.repeat)
    selected = _names(args.only, workload_names, "workload") or workload_names
    selected = [name for name in workload_names if name in selected]
    keys = _names(args.contenders, list(CONTENDERS), "contender") or list(CONTENDERS)
    keys += [REFERENCE] if REFERENCE not in keys else []
    keys += [SERIAL] if "cpu" in selected and SERIAL not in keys else []
    keys = [key for key in CONTENDERS if key in keys]
    full = args.only is None and args.contenders is None and not args.quick and config.WORKERS == 2
    out = args.out or Path(os.environ.get("MANYMAP_BENCH_DIR", ROOT / "build" / "bench")) / "pools.json"

    contenders: list[Contender] = []
    unavailable: dict[str, str] = {}
    for key in keys:
        try:
            contenders.append(CONTENDERS[key]())
        except Unavailable as exc:
            unavailable[key] = str(exc)
            print(f"skipping {key}: {exc}", file=sys.stderr)
    if not any(c.key == REFERENCE for c in contenders):
        raise SystemExit("the reference, multiprocessing.Pool, cannot run")

    spin_n = calibrate_spin(tasks.spin, CPU_TASK_SECONDS) if "cpu" in selected else 0
    all_workloads = make_workloads(spin_n, tasks)
    workloads = [all_workloads[name] for name in selected if name != "cold"]
    series = {sr.name: sr for w in workloads for sr in w.series}
    results = {name: {c.key: Measurement() for c in contenders} for name in series}
    watchdog = Watchdog()
    started = time.monotonic()
    load = [os.getloadavg()[0]]
    for workload in workloads:
        rounds = repeat * workload.rounds
        for round_no in range(1, rounds + 1):
            shift = (round_no - 1) % len(contenders)
            for c in contenders[shift:] + contenders[:shift]:
                if not workload.runs(c.key):
                    continue
                todo = [sr for sr in workload.series if results[sr.name][c.key].status == "ok"]
                if todo:
                    measure_round(c, workload, todo, results, watchdog, args.timeout, round_no)
            status = ", ".join(
                f"{c.key} {fmt_seconds(m.samples[-1]) if m.status == 'ok' and m.samples else m.status}"
                for c in contenders
                for m in [results[workload.series[0].name][c.key]]
            )
            print(
                f"[{workload.name} {round_no}/{rounds}, {time.monotonic() - started:.0f} s] {status}",
                file=sys.stderr,
            )

    load.append(os.getloadavg()[0])
    cold = None
    if "cold" in selected:
        labels = {c.key: c.label for c in contenders} | {
            RAW: "raw `multiprocessing.Pipe` (one child, ping-pong)"
        }
        cold_repeat = 1 if args.quick else max(3, args.cold_repeat)
        cold = run_cold(ROOT / "tools" / "bench" / "bench_pools.py", list(labels), labels, cold_repeat)
    summary = Summary(workloads, contenders, results, series)
    cpus = os.cpu_count()
    machine = (
        f"{cpus} cores (load average {load[0]:.2f} at the start, {load[1]:.2f} at the end), "
        f"Python {platform.python_version()}, {platform.platform(terse=True)}; "
        + ", ".join(
            f"{name} {version(name)}"
            for name in ("manymap-pools-local", "loky", "pathos", "multiprocess", "dill", "numpy")
        )
    )
    body = [*table(summary), "", *(f"- {line}" for line in notes(summary, repeat))] if workloads else []
    if unavailable:
        body.append("- not run: " + "; ".join(f"{key} ({why})" for key, why in unavailable.items()))
    problems = [
        f"{c.key} {name}: {m.status} — {m.detail}"
        for name, by_key in results.items()
        for c in contenders
        for m in [by_key[c.key]]
        if m.status != "ok"
    ]
    problems += [
        f"{c.key} {name}: {note}"
        for name, by_key in results.items()
        for c in contenders
        for note in by_key[c.key].notes
    ]
    if problems:
        body.append("- failures, hangs and processes left behind:")
        body += [f"    - {line}" for line in problems]
    targets = target_lines(summary, {c.key for c in contenders}, set(selected)) if workloads else []
    if targets:
        body += [
            "",
            "Targets (issue 4: manymap-pools-local; issue 6: manymap-pools-rpc; "
            "issue 15: warm throughput, bulk through ssh):",
            "",
            "```text",
            *targets,
            "```",
        ]

    cold_lines = cold_section(cold) if cold is not None else []
    rounds = f", median of {repeat} round{'s' if repeat != 1 else ''}" if workloads else ", cold table only"
    print(f"## Pools, {config.WORKERS} workers{rounds}\n")
    print(f"{machine}\n")
    print("\n".join([*body, *cold_lines]))
    if args.quick:
        print("\n(--quick: one round, for a smoke check; not a result)")

    png = out.with_suffix(".png")
    if workloads:
        chart(summary, png, repeat)
    report = {
        "benchmark": "manymap local pools",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python "
        + " ".join([str(Path(sys.argv[0])), *(argv if argv is not None else sys.argv[1:])]),
        "cpu_count": cpus,
        "load_average_1min": {"start": load[0], "end": load[1]},
        "workers": config.WORKERS,
        "python": sys.version,
        "platform": platform.platform(),
        "versions": {
            name: version(name)
            for name in (
                "manymap-pools-local",
                "manymap-launcher",
                "manymap-serialize",
                "loky",
                "pathos",
                "multiprocess",
                "dill",
                "numpy",
                "matplotlib",
            )
        },
        "repeat": repeat,
        "quick": args.quick,
        "timeout_seconds": args.timeout,
        "timed_region": "the workload's call only; pools are created and warmed up outside it",
        "parameters": {
            "tiny_items": TINY_ITEMS,
            "cpu_tasks": CPU_TASKS,
            "cpu_task_seconds_target": CPU_TASK_SECONDS,
            "cpu_spin_n": spin_n,
            "payload_arrays": PAYLOAD_ARRAYS,
            "payload_array_bytes": PAYLOAD_ELEMENTS * 8,
            "latency_calls": LATENCY_CALLS,
            "closure_items": CLOSURE_ITEMS,
            "executor_chunksizes": {
                "tiny": stdlib_chunksize(TINY_ITEMS, config.WORKERS),
                "cpu": stdlib_chunksize(CPU_TASKS, config.WORKERS),
                "payload": stdlib_chunksize(PAYLOAD_ARRAYS, config.WORKERS),
                "closure": stdlib_chunksize(CLOSURE_ITEMS, config.WORKERS),
            },
        },
        "contenders": {c.key: {"label": c.short, "versions": c.versions} for c in contenders},
        "unavailable": unavailable,
        "cpu_ideal_seconds": summary.ideal(),
        "series": {
            name: {
                "unit": series[name].unit or "whole call",
                "per": series[name].per,
                "timed_calls_per_round": series[name].inner,
                "rounds": repeat * next(w.rounds for w in workloads if series[name] in w.series),
                "reference": list(series[name].reference or (name, REFERENCE)),
                "by_contender": {
                    c.key: {
                        "status": m.status,
                        "detail": m.detail,
                        "notes": m.notes,
                        "samples_seconds": m.samples,
                        "samples_other_load": m.others,
                        "median_seconds": m.median,
                        "figure_seconds": summary.figure(name, c.key),
                        "ratio_to_reference": summary.ratio(name, c.key),
                        **({"ratio_to_ideal": summary.over_ideal(c.key)} if name == "cpu" else {}),
                    }
                    for c in contenders
                    for m in [by_key[c.key]]
                },
            }
            for name, by_key in results.items()
        },
        "targets": targets,
        "cold": cold_report(cold) if cold is not None else None,
        "markdown": "\n".join([*body, *cold_lines]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}" + (f" and {png}" if workloads else ""))
    if args.docs or (args.docs is None and full):
        if workloads:
            write_docs(docs_section(summary, repeat, body, machine), png)
            print(f"updated {DOCS_PAGE.relative_to(ROOT)} and {DOCS_CHART.relative_to(ROOT)}")
        if cold_lines:
            write_cold_docs(cold_docs_section(cold_lines, machine))
            print(f"updated the cold table of {DOCS_PAGE.relative_to(ROOT)}")
    elif args.docs is None:
        print("docs/ left alone: only a full run (no --quick, --only or --contenders) updates it")
    return 0


def cold_section(cold: ColdResults) -> list[str]:
    """The cold table, its notes and issue 15's targets, as markdown lines."""
    return [
        "",
        f"**Cold**: a fresh process per cell, median of {cold.repeat} (import: "
        f"{cold.repeat * IMPORT_SAMPLES}); what one "
        "`with Pool() as p: p.map(...)` in a new script costs.",
        "",
        *cold_table(cold),
        "",
        *(f"- {line}" for line in cold_notes(cold)),
        "",
        "Targets (issue 15: import, start-up, first map, round trip):",
        "",
        "```text",
        *cold_target_lines(cold),
        "```",
    ]

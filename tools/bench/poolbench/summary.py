"""The results of a run (figures, ratios to the reference) and the issues' targets checked on them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from poolbench import config
from poolbench.config import QUIET, REFERENCE, SERIAL
from poolbench.contenders import Contender
from poolbench.measure import Measurement
from poolbench.units import fmt_seconds
from poolbench.workloads import Series, Workload


@dataclass
class Summary:
    workloads: list[Workload]
    contenders: list[Contender]
    results: dict[str, dict[str, Measurement]]  # series -> contender -> measurement
    series: dict[str, Series]

    def median(self, series: str, key: str) -> float | None:
        m = self.results.get(series, {}).get(key)
        return m.median if m else None

    def figure(self, series: str, key: str) -> float | None:
        """The median divided by the series' ``per`` (per call, per item)."""
        median = self.median(series, key)
        return None if median is None else median / self.series[series].per

    def ratio(self, series: str, key: str) -> float | None:
        ref_series, ref_key = self.series[series].reference or (series, REFERENCE)
        value, ref = self.figure(series, key), self.figure(ref_series, ref_key)
        return None if value is None or not ref else value / ref

    def ideal(self) -> float | None:
        """cpu: serial time / cores (the cores the workers can use)."""
        serial = self.median("cpu", SERIAL)
        return None if serial is None else serial / min(config.WORKERS, os.cpu_count() or 1)

    def quiet_samples(self, series: str, key: str) -> list[float]:
        """The samples taken while other processes used under ``QUIET`` of the machine."""
        m = self.results.get(series, {}).get(key)
        if m is None or m.status != "ok":
            return []
        return [
            t for t, share in zip(m.samples, m.others, strict=True) if share is not None and share < QUIET
        ]

    def other_load(self, workload: str) -> list[float]:
        """Other processes' share of the machine in every timed call of ``workload``."""
        return [
            share
            for name, by_key in self.results.items()
            if name.split("-")[0] == workload
            for m in by_key.values()
            for share in m.others
            if share is not None
        ]

    def over_ideal(self, key: str) -> float | None:
        value, ideal = self.median("cpu", key), self.ideal()
        return None if value is None or not ideal else value / ideal


@dataclass
class Target:
    contender: str
    workload: str
    text: str  # what the issue asks
    check: Callable[[Summary], tuple[bool, str] | None]  # (met, figures), or None: cannot tell
    needs: tuple[str, ...] = ()  # other workloads it needs; skipped when one is not run


def _target_tiny(s: Summary) -> tuple[bool, str] | None:
    ratio = s.ratio("tiny", "manymap-process")
    return None if ratio is None else (ratio <= 1.0, f"{ratio:.2f}x the stdlib Pool")


def _target_warm_tiny(s: Summary) -> tuple[bool, str] | None:
    # issue 15: warm throughput
    ratio = s.ratio("tiny", "manymap-process")
    return None if ratio is None else (ratio <= 0.7, f"{ratio:.2f}x the stdlib Pool")


def _target_ssh_payload(s: Summary) -> tuple[bool, str] | None:
    # issue 15: bulk data through the ssh tunnel
    ratio = s.ratio("payload", "manymap-parallel-ssh")
    return None if ratio is None else (ratio <= 1.2, f"{ratio:.2f}x the stdlib Pool")


def _target_cpu(s: Summary) -> tuple[bool, str] | None:
    over, ideal = s.over_ideal("manymap-process"), s.ideal()
    if over is None or ideal is None:
        return None
    return (
        over <= 1.05,
        f"{over:.3f}x serial / cores "
        f"({fmt_seconds(s.median('cpu', 'manymap-process'))} vs {fmt_seconds(ideal)})",
    )


def _target_payload(s: Summary) -> tuple[bool, str] | None:
    ratio = s.ratio("payload", "manymap-process")
    return None if ratio is None else (ratio <= 0.5, f"{ratio:.2f}x the stdlib Pool")


def _target_latency(s: Summary) -> tuple[bool, str] | None:
    mine, theirs = s.figure("latency", "manymap-process"), s.figure("latency", "futures")
    if mine is None or theirs is None:
        return None
    return mine <= theirs, f"{fmt_seconds(mine)} vs {fmt_seconds(theirs)} per call ({mine / theirs:.2f}x)"


def _target_closure(s: Summary) -> tuple[bool, str] | None:
    # issue 15: a lambda's cost per item against a module-level function's, same items
    closure, partial = s.figure("closure", "manymap-process"), s.figure("closure-partial", "manymap-process")
    if closure is None or partial is None:
        return None
    return (
        closure <= 1.2 * partial,
        f"{fmt_seconds(closure)} vs {fmt_seconds(partial)} per item ({closure / partial:.2f}x)",
    )


def _target_dask_tiny(s: Summary) -> tuple[bool, str] | None:
    mine, theirs = s.figure("tiny-dask", "manymap-dask"), s.figure("tiny-dask", "dask")
    if mine is None or theirs is None:
        return None
    return mine <= 0.2 * theirs, f"{fmt_seconds(mine)} vs {fmt_seconds(theirs)} ({mine / theirs:.3f}x)"


def _target_dask_cpu(s: Summary) -> tuple[bool, str] | None:
    over, ideal = s.over_ideal("manymap-dask"), s.ideal()
    if over is None or ideal is None:
        return None
    mine = fmt_seconds(s.median("cpu", "manymap-dask"))
    return over <= 1.10, f"{over:.3f}x serial / cores ({mine} vs {fmt_seconds(ideal)})"


#: The issues' targets. ParallelPool's (issue 6) go here with its contenders:
#: tiny at most 3x the stdlib Pool, latency under 1 ms per pipe through the
#: tunnel, cpu within 10% of serial time / cores.
TARGETS: list[Target] = [
    Target("manymap-process", "tiny", "tiny at most 1.0x the stdlib Pool", _target_tiny),
    Target("manymap-process", "cpu", "cpu within 5% of serial time / cores", _target_cpu),
    Target("manymap-process", "payload", "payload at most 0.5x the stdlib Pool", _target_payload),
    Target("manymap-process", "latency", "latency no worse than ProcessPoolExecutor", _target_latency),
    Target(
        "manymap-process",
        "closure",
        "closure per item at most 1.2x a module-level function's",
        _target_closure,
    ),
    Target("manymap-process", "tiny", "tiny at most 0.7x the stdlib Pool (issue 15)", _target_warm_tiny),
    # issue 14 (startup: the cold table's target)
    Target("manymap-dask", "tiny-dask", "tiny-dask at most 0.2x Dask's own client.map", _target_dask_tiny),
    Target("manymap-dask", "cpu", "cpu within 10% of serial time / cores", _target_dask_cpu),
]


def _target_parallel_tiny(s: Summary) -> tuple[bool, str] | None:
    ratio = s.ratio("tiny", "manymap-parallel")
    return None if ratio is None else (ratio <= 3.0, f"{ratio:.2f}x the stdlib Pool")


def _target_parallel_latency(s: Summary) -> tuple[bool, str] | None:
    latency = s.figure("latency", "manymap-parallel-ssh")
    return None if latency is None else (latency < 0.001, f"{fmt_seconds(latency)} per call")


def _target_parallel_cpu(key: str) -> Callable[[Summary], tuple[bool, str] | None]:
    def check(s: Summary) -> tuple[bool, str] | None:
        over, ideal = s.over_ideal(key), s.ideal()
        if over is None or ideal is None:
            return None
        return (
            over <= 1.10,
            f"{over:.3f}x serial / cores ({fmt_seconds(s.median('cpu', key))} vs {fmt_seconds(ideal)})",
        )

    return check


TARGETS += [
    Target("manymap-parallel", "tiny", "tiny at most 3x the stdlib Pool", _target_parallel_tiny),
    Target(
        "manymap-parallel-ssh",
        "payload",
        "payload through the tunnel at most 1.2x the stdlib Pool (issue 15)",
        _target_ssh_payload,
    ),
    Target(
        "manymap-parallel-ssh",
        "latency",
        "latency under 1 ms per pipe through the tunnel",
        _target_parallel_latency,
    ),
    Target(
        "manymap-parallel",
        "cpu",
        "cpu within 10% of serial time / cores",
        _target_parallel_cpu("manymap-parallel"),
    ),
    Target(
        "manymap-parallel-mixed",
        "cpu",
        "cpu within 10% of serial time / cores over local plus remote workers",
        _target_parallel_cpu("manymap-parallel-mixed"),
    ),
]

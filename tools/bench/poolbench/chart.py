"""The chart of a run: each workload's time relative to the stdlib Pool's, log scale (matplotlib)."""

from __future__ import annotations

import datetime
from pathlib import Path

from poolbench import config
from poolbench.config import REFERENCE
from poolbench.summary import Summary
from poolbench.units import fmt_ratio


def chart(s: Summary, path: Path, repeat: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w.name for w in s.workloads]
    contenders = s.contenders
    width = 0.8 / max(1, len(contenders))
    fig, ax = plt.subplots(figsize=(max(7.0, 1.9 * len(workloads) + 3.0), 5.4), dpi=120)
    colors = plt.get_cmap("tab20")  # more contenders than tab10 has colours
    values = [s.ratio(w, c.key) for w in workloads for c in contenders if s.ratio(w, c.key) is not None]
    low = min([*values, 0.5]) / 2
    for j, c in enumerate(contenders):
        for i, w in enumerate(workloads):
            x = i - 0.4 + width * (j + 0.5)
            ratio = s.ratio(w, c.key)
            if ratio is not None:
                ax.bar(x, ratio, width, color=colors(j % 20), label=c.short if i == 0 else None)
                ax.text(
                    x, ratio * 1.05, fmt_ratio(ratio), ha="center", va="bottom", fontsize=5.5, rotation=90
                )
            else:
                if i == 0:
                    ax.bar(x, 0, width, color=colors(j % 20), label=c.short)
                m = s.results[w].get(c.key)
                mark = m.status if m is not None and m.status != "ok" else "n/a"
                ax.text(x, low * 1.1, mark, ha="center", va="bottom", fontsize=6, rotation=90, color="0.3")
    ideal = s.ideal()
    ref = s.median("cpu", REFERENCE)
    if "cpu" in workloads and ideal and ref:
        i = workloads.index("cpu")
        ax.hlines(ideal / ref, i - 0.45, i + 0.45, colors="k", linestyles="dashed", linewidth=1)
        ax.text(i + 0.45, ideal / ref, " ideal", va="center", fontsize=7)
    ax.axhline(1.0, color="0.4", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_ylim(low, max([*values, 2.0]) * 2.5)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(
        [
            w.title.replace(": ", "\n", 1)
            + ("\n(to the stdlib Pool's partial)" if w.series[0].reference else "")
            for w in s.workloads
        ],
        fontsize=8,
    )
    ax.set_ylabel("time / multiprocessing.Pool's (log scale, lower is better)")
    ax.set_title(
        f"Pools, {config.WORKERS} workers, median of {repeat} round{'s' if repeat != 1 else ''} "
        f"({datetime.date.today().isoformat()})",
        fontsize=10,
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)

"""The "Pools" section of docs/benchmarks.md and its chart, rewritten after a full run."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

from poolbench.config import DOCS_BEGIN, DOCS_CHART, DOCS_END, DOCS_PAGE, DOCS_PLACEHOLDER
from poolbench.summary import Summary


def write_docs(markdown: str, chart_path: Path) -> None:
    """Copy the chart into docs/assets and put ``markdown`` between the markers of docs/benchmarks.md."""
    DOCS_CHART.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(chart_path, DOCS_CHART)
    section = f"{DOCS_BEGIN}\n{markdown.rstrip()}\n{DOCS_END}\n"
    page = DOCS_PAGE.read_text() if DOCS_PAGE.exists() else "# Benchmarks\n"
    if DOCS_BEGIN in page and DOCS_END in page:
        head, rest = page.split(DOCS_BEGIN, 1)
        tail = rest.split(DOCS_END, 1)[1].lstrip("\n")
        page = head + section + ("\n" + tail if tail else "")
    elif DOCS_PLACEHOLDER.search(page):
        page = DOCS_PLACEHOLDER.sub(lambda _: section, page, count=1)
    else:
        page = page.rstrip("\n") + "\n\n" + section
    DOCS_PAGE.write_text(page)


def docs_section(s: Summary, repeat: int, body: list[str], machine: str) -> str:
    return "\n".join(
        [
            "### Pools",
            "",
            "```console",
            "nox -s bench            # every benchmark",
            "nox -s bench -- pools   # this one (add --quick, --only tiny,cpu, --contenders ...)",
            "```",
            "",
            f"Measured {datetime.date.today().isoformat()} by `tools/bench/bench_pools.py` on {machine}.",
            "",
            *body,
            "",
            "![Pools: time relative to multiprocessing.Pool, log scale](assets/bench-pools.png)",
        ]
    )

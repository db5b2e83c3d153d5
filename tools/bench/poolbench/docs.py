"""The "Pools" sections of docs/benchmarks.md (warm, with the chart, and cold), rewritten after a run.

Each section sits between its own markers, so a cold-only run
(``--only cold --docs``) rewrites the cold table and leaves the warm one alone.
"""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

from poolbench.config import (
    DOCS_BEGIN,
    DOCS_CHART,
    DOCS_COLD_BEGIN,
    DOCS_COLD_END,
    DOCS_END,
    DOCS_PAGE,
    DOCS_PLACEHOLDER,
)
from poolbench.summary import Summary


def write_docs(markdown: str, chart_path: Path) -> None:
    """Copy the chart into docs/assets and put ``markdown`` between the markers of docs/benchmarks.md."""
    DOCS_CHART.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(chart_path, DOCS_CHART)
    _write_section(markdown, DOCS_BEGIN, DOCS_END)


def write_cold_docs(markdown: str) -> None:
    """Put the cold table's ``markdown`` between its markers (after the warm section when new)."""
    _write_section(markdown, DOCS_COLD_BEGIN, DOCS_COLD_END, after=DOCS_END)


def _write_section(markdown: str, begin: str, end: str, after: str | None = None) -> None:
    section = f"{begin}\n{markdown.rstrip()}\n{end}\n"
    page = DOCS_PAGE.read_text() if DOCS_PAGE.exists() else "# Benchmarks\n"
    if begin in page and end in page:
        head, rest = page.split(begin, 1)
        tail = rest.split(end, 1)[1].lstrip("\n")
        page = head + section + ("\n" + tail if tail else "")
    elif after is not None and after in page:
        head, tail = page.split(after, 1)
        page = head + after + "\n\n" + section + ("\n" + tail.lstrip("\n") if tail.strip() else "")
    elif after is None and DOCS_PLACEHOLDER.search(page):
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
            "nox -s bench -- pools --only cold   # the cold table alone",
            "```",
            "",
            f"Measured {datetime.date.today().isoformat()} by `tools/bench/bench_pools.py` on {machine}.",
            "",
            *body,
            "",
            "![Pools: time relative to multiprocessing.Pool, log scale](assets/bench-pools.png)",
        ]
    )


def cold_docs_section(lines: list[str], machine: str) -> str:
    return "\n".join(
        [
            "### Pools, cold",
            "",
            "```console",
            "nox -s bench -- pools --only cold   # this table alone (--cold-repeat N)",
            "```",
            "",
            f"Measured {datetime.date.today().isoformat()} by `tools/bench/bench_pools.py` on {machine}.",
            *lines,
        ]
    )

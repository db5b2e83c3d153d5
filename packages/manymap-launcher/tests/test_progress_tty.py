"""Progress bars on a real pseudo-terminal: the call's name, the width, no stale text, smooth updates."""

from __future__ import annotations

import re
import sys

import pytest

from manymap.launcher.testing import RESIZE_HELPER, TerminalScreen, run_in_terminal

NO_TQDM = "import sys; sys.modules['tqdm'] = None; sys.modules['tqdm.auto'] = None\n"
BARS = {"text": NO_TQDM, "tqdm": ""}

POOL_MAP = """
from manymap.launcher.testing import ReferencePool
with ReferencePool(2) as pool:
    assert pool.map(abs, range(-{n}, 0), chunksize=1, progress=True) == list(range({n}, 0, -1))
"""


def run_in_pty(code: str, columns: int) -> str:
    status, _, drawn = run_in_terminal([sys.executable, "-c", RESIZE_HELPER + code], columns)
    assert status == 0, drawn
    return drawn


def _final_bar(screen: TerminalScreen) -> str:
    (line,) = screen.lines  # the bar stayed on one row: nothing wrapped, nothing stale above it
    return line


@pytest.mark.parametrize("kind", sorted(BARS))
@pytest.mark.parametrize("columns", [120, 44])
def test_pool_map_bar_names_the_call_and_fits_the_terminal(kind: str, columns: int) -> None:
    text = run_in_pty(BARS[kind] + POOL_MAP.format(n=400), columns)
    screen = TerminalScreen(text, columns)
    assert not screen.wrapped, f"a draw ran past {columns} columns: {text[-300:]!r}"
    line = _final_bar(screen)
    assert line.startswith("ReferencePool.map"), line
    assert "400/400" in line
    assert len(line) < columns
    # Smooth: at least one draw per percent of 400 tasks.
    assert screen.draws >= 100, screen.draws


def test_text_bar_shrinks_with_the_terminal_and_leaves_nothing_behind() -> None:
    code = """
from manymap.launcher import EventKind, TaskEvent, TextProgressBar
bar = TextProgressBar(200, description="ProcessPool.map", stream=sys.stderr)
done = lambda i: TaskEvent(EventKind.FINISHED, i, job=1)
for i in range(100):
    bar(done(i))
resize(28)
for i in range(100, 200):
    bar(done(i))
bar.close()
"""
    text = run_in_pty("import sys\n" + code, 100)
    wide, narrow = text.split("\x1b]resize;28\x07")
    assert max(len(draw) for draw in re.split(r"\r\n?|\x1b\[K", wide)) > 50  # it used the width it had
    screen = TerminalScreen(text, 100)
    assert not screen.wrapped
    line = _final_bar(screen)
    assert len(line) <= 27, line
    assert "200/200" in line
    assert line.startswith("Proces"), line  # the label is cut before the counts are
    last = narrow.rstrip("\r\n").split("\r")[-1].replace("\x1b[K", "")
    assert line == last.rstrip()  # exactly the last draw: no stale characters after it
    assert screen.draws >= 100  # one draw per percent, on each side of the resize


def test_unknown_total_counts_in_a_tiny_terminal() -> None:
    code = """
import sys
from manymap.launcher import EventKind, TaskEvent, TextProgressBar
bar = TextProgressBar(None, description="ThreadPool.imap", stream=sys.stderr)
for i in range(50):
    bar(TaskEvent(EventKind.FINISHED, i, job=1))
bar.close()
"""
    screen = TerminalScreen(run_in_pty(code, 16), 16)
    assert not screen.wrapped
    line = _final_bar(screen)
    assert len(line) <= 15
    assert "50 tasks" in line


def test_the_bar_moves_while_no_task_reports() -> None:
    """A long task: no event for a while, yet the bar redraws (its elapsed time moves) every 0.1 s."""
    code = """
import sys, time
from manymap.launcher import EventKind, TaskEvent, TextProgressBar
bar = TextProgressBar(4, description="ProcessPool.map", stream=sys.stderr)
bar(TaskEvent(EventKind.STARTED, 0, job=1))
deadline = time.monotonic() + 60  # a bounded wait for the redraws, not a timing
while bar.draws < 6 and time.monotonic() < deadline:
    time.sleep(0.01)
assert bar.draws >= 6, bar.draws
for i in range(4):
    bar(TaskEvent(EventKind.FINISHED, i, job=1))
bar.close()
"""
    text = run_in_pty(code, 80)
    screen = TerminalScreen(text, 80)
    assert screen.draws >= 6
    shown = [draw.replace("\x1b[K", "") for draw in text.split("\r") if "0/4" in draw]
    assert len(set(shown)) >= 2, shown  # the same count, a later elapsed time
    assert "4/4" in _final_bar(screen)


@pytest.mark.parametrize("kind", sorted(BARS))
def test_progress_bar_survives_a_narrowing_terminal(kind: str) -> None:
    code = """
from manymap.launcher import EventKind, TaskEvent, progress_bar
bar = progress_bar(200, "ProcessPool.map")
done = lambda i: TaskEvent(EventKind.FINISHED, i, job=1)
for i in range(100):
    bar(done(i))
resize(30)
for i in range(100, 200):
    bar(done(i))
bar.close()
"""
    screen = TerminalScreen(run_in_pty(BARS[kind] + code, 100), 100)
    assert not screen.wrapped
    line = _final_bar(screen)  # one row: nothing stale above or after it
    assert len(line) < 30, line
    assert line.startswith("ProcessPool"), line

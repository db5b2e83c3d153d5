"""Task events and the progress bars."""

from __future__ import annotations

import builtins
import io
import sys
from typing import Any

import pytest

from manymap.launcher import EventKind, TaskEvent, TextProgressBar, progress_bar


def event(kind: EventKind, index: int = 0) -> TaskEvent:
    return TaskEvent(kind, index, job=1, worker="w", duration=0.1)


def test_text_bar_counts_finished_and_failed_once() -> None:
    stream = io.StringIO()
    bar = TextProgressBar(4, description="demo", stream=stream)
    for kind in (EventKind.SUBMITTED, EventKind.STARTED, EventKind.FINISHED, EventKind.RETRIED):
        bar(event(kind))
    bar(event(EventKind.FAILED, 1))
    assert (bar.done, bar.failed) == (2, 1)
    bar(event(EventKind.FINISHED, 2))
    bar(event(EventKind.FINISHED, 3))
    bar.close()
    bar.close()
    text = stream.getvalue()
    assert text.endswith("\n")
    assert text.count("\n") == 1
    last = text.rstrip("\n").split("\r")[-1]
    assert last.startswith("demo: [" + "#" * 30 + "] 4/4, 1 failed")


def test_text_bar_with_unknown_total() -> None:
    bar = TextProgressBar(None, stream=io.StringIO())
    bar(event(EventKind.FINISHED))
    assert bar.render().startswith("1 tasks")


def test_progress_bar_falls_back_to_text_without_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_tqdm(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("tqdm"):
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    monkeypatch.delitem(sys.modules, "tqdm", raising=False)
    monkeypatch.delitem(sys.modules, "tqdm.auto", raising=False)
    assert isinstance(progress_bar(3), TextProgressBar)


def test_progress_bar_uses_tqdm_when_installed(capsys: pytest.CaptureFixture[str]) -> None:
    import tqdm  # noqa: F401 - the test session installs the [progress] extra

    bar = progress_bar(2, "demo")
    assert not isinstance(bar, TextProgressBar)
    bar(event(EventKind.FINISHED))
    bar(event(EventKind.FINISHED, 1))
    bar.close()  # type: ignore[attr-defined]
    assert "2/2" in capsys.readouterr().err


def test_event_kind_reads_as_text() -> None:
    assert str(EventKind.FINISHED) == "finished"
    assert EventKind("retried") is EventKind.RETRIED

"""The manymap-serialize command: output and exit codes, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from manymap.serialize._cli import main

RunPython = Callable[..., subprocess.CompletedProcess[str]]

TARGET = textwrap.dedent(
    """
    import socket
    import threading

    PLAIN = {"a": [1, 2.5, "x"]}
    SQUARE = lambda x: x * x

    def work(x):
        return x + 1

    class Job:
        def __init__(self):
            self.lock = threading.Lock()

    JOBS = [1, Job()]

    class Config:
        handlers = {"log": work}
    """
)


@pytest.fixture
def target_module(tmp_path: Path) -> Path:
    package = tmp_path / "modules"
    package.mkdir()
    (package / "mm_cli_target.py").write_text(TARGET)
    return package


def _cli(run_python: RunPython, target_module: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "manymap.serialize", *args, check=False, env={"PYTHONPATH": str(target_module)})


def test_plain_data_exits_0(run_python: RunPython, target_module: Path) -> None:
    proc = _cli(run_python, target_module, "check", "mm_cli_target:PLAIN")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("mm_cli_target:PLAIN can be serialized: pickle")


def test_lambda_exits_0_and_names_what_goes_by_value(run_python: RunPython, target_module: Path) -> None:
    proc = _cli(run_python, target_module, "check", "mm_cli_target:SQUARE")
    assert proc.returncode == 0, proc.stderr
    assert "by value for mm_cli_target.<lambda>" in proc.stdout


def test_dotted_name_is_looked_up(run_python: RunPython, target_module: Path) -> None:
    proc = _cli(run_python, target_module, "check", "mm_cli_target:Config.handlers")
    assert proc.returncode == 0, proc.stderr
    assert "pickle" in proc.stdout


def test_what_cannot_be_serialized_exits_1_with_the_path(run_python: RunPython, target_module: Path) -> None:
    proc = _cli(run_python, target_module, "check", "mm_cli_target:JOBS")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == (
        "cannot serialize mm_cli_target:JOBS: [1].lock: manymap.serialize.dumps refuses a lock or other "
        "thread synchronization primitive (_thread.lock): it only synchronizes threads of this process; "
        "a copy would be an unrelated lock; create it inside the task, or coordinate through the tasks' "
        "arguments and results"
    )
    assert "failing part: mm_cli_target:JOBS[1].lock (_thread.lock)" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["check", "no_such_module_xyz:thing"],
            "cannot import module 'no_such_module_xyz': ModuleNotFoundError",
        ),
        (["check", "mm_cli_target:MISSING"], "module 'mm_cli_target' has no attribute 'MISSING'"),
        (["check", "mm_cli_target:Config.missing"], "mm_cli_target:Config has no attribute 'missing'"),
        (["check", "mm_cli_target"], "expected MODULE:NAME, got 'mm_cli_target'"),
        (["check"], "the following arguments are required: MODULE:NAME"),
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_usage_errors_exit_2_with_a_clear_message(
    run_python: RunPython, target_module: Path, args: list[str], message: str
) -> None:
    proc = _cli(run_python, target_module, *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stdout == ""


def test_help_is_real(run_python: RunPython, target_module: Path) -> None:
    top = _cli(run_python, target_module, "--help")
    assert top.returncode == 0
    assert "usage: manymap-serialize" in top.stdout
    assert "check" in top.stdout
    sub = _cli(run_python, target_module, "check", "--help")
    assert sub.returncode == 0
    assert "MODULE:NAME" in sub.stdout
    assert "Exit status: 0" in sub.stdout


def test_console_script_is_the_same_command(target_module: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "manymap-serialize"
    assert script.exists(), f"the manymap-serialize console script is not installed beside {sys.executable}"
    proc = subprocess.run(
        [str(script), "check", "mm_cli_target:PLAIN"],
        cwd=target_module,  # the current directory is on the import path, as with python -m
        env={**os.environ, "PYTHONPATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "can be serialized: pickle" in proc.stdout


def test_main_returns_exit_codes_in_process(
    target_module: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "path", [str(target_module), *sys.path])
    monkeypatch.delitem(sys.modules, "mm_cli_target", raising=False)
    assert main(["check", "mm_cli_target:SQUARE"]) == 0
    assert main(["check", "mm_cli_target:JOBS"]) == 1
    assert main(["check", "nope_not_a_module:x"]) == 2
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert "by value for" in out
    assert "manymap-serialize 0.1.0" in out
    sys.modules.pop("mm_cli_target", None)

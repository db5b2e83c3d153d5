"""Shared fixtures: running code in fresh Python processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

SUBPROCESS_TIMEOUT = 120.0  # seconds; a fresh interpreter importing dill and numpy

RunPython = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_python(tmp_path: Path) -> RunPython:
    """Run ``python -c CODE`` (or ``python ARGS...``) in a fresh interpreter, in ``tmp_path``.

    Returns the completed process; fails the test when it exits non-zero
    unless ``check=False``.
    """

    def run(
        *args: str,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        code: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, *(("-c", code) if code is not None else ()), *args]
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            command,
            cwd=tmp_path,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT,
            check=False,
        )
        if check and proc.returncode != 0:
            output = f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            pytest.fail(f"{command[:2]} exited {proc.returncode}\n{output}")
        return proc

    return run

"""What the plugin says in pytest's header and summary: the rule first, then only what really happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from manymap_testhosts import REQUIRE_ENV

PASSING = "def test_nothing_needs_hosts():\n    assert True\n"
SKIPPING = (
    "from manymap_testhosts._require import unavailable\n\n"
    "def test_wants_hosts():\n    unavailable('no sshd binary')\n\n"
    "def test_plain():\n    assert True\n"
)


def _pytest(tmp_path: Path, source: str, *, required: bool) -> str:
    (tmp_path / "test_sample.py").write_text(source)
    env = {**os.environ, REQUIRE_ENV: "1" if required else "0"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert "manymap-testhosts:" in done.stdout, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("required", [False, True])
def test_the_header_never_says_skipped_when_nothing_was(tmp_path: Path, required: bool) -> None:
    out = _pytest(tmp_path, PASSING, required=required)
    assert "1 passed" in out
    assert "skip" not in out.lower(), out
    header = next(line for line in out.splitlines() if line.startswith("manymap-testhosts:"))
    assert ("required" if required else "optional") in header


def test_the_summary_counts_the_tests_skipped_for_want_of_hosts(tmp_path: Path) -> None:
    out = _pytest(tmp_path, SKIPPING, required=False)
    assert "1 passed, 1 skipped" in out
    assert "manymap-testhosts: 1 test SKIPPED, no test hosts on this machine" in out
    assert "no sshd binary" in out

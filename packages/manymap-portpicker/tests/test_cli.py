"""The ``manymap-portpicker`` command and ``python -m manymap.portpicker``, every flag, as installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from manymap.portpicker import __version__, is_port_free, remote_source


def _script() -> str:
    beside = Path(sys.executable).parent / "manymap-portpicker"
    found = str(beside) if beside.exists() else shutil.which("manymap-portpicker")
    assert found, "the manymap-portpicker console script is not installed"
    return found


COMMANDS = {
    "script": lambda: [_script()],
    "module": lambda: [sys.executable, "-m", "manymap.portpicker"],
}


def _run(command: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMANDS[command](), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(params=sorted(COMMANDS))
def command(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_help(command: str) -> None:
    done = _run(command, "--help")
    assert done.returncode == 0, done.stderr
    for flag in ("--count", "--host", "--script", "--version"):
        assert flag in done.stdout
    assert "usage:" in done.stdout


def test_default_prints_one_free_port(command: str) -> None:
    done = _run(command)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert is_port_free(int(line))


@pytest.mark.parametrize("flag", ["--count", "-n"])
def test_count(command: str, flag: str) -> None:
    done = _run(command, flag, "7")
    assert done.returncode == 0, done.stderr
    ports = [int(line) for line in done.stdout.splitlines()]
    assert len(ports) == 7 == len(set(ports))


def test_host(command: str) -> None:
    done = _run(command, "--host", "0.0.0.0", "--count", "2")
    assert done.returncode == 0, done.stderr
    for line in done.stdout.splitlines():
        with socket.socket() as sock:
            sock.bind(("0.0.0.0", int(line)))


def test_foreign_host_fails_with_a_message(command: str) -> None:
    done = _run(command, "--host", "192.0.2.123")
    assert done.returncode == 1
    assert "192.0.2.123" in done.stderr
    assert done.stdout == ""


def test_bad_count_is_a_usage_error(command: str) -> None:
    done = _run(command, "--count", "0")
    assert done.returncode == 2
    assert "--count" in done.stderr


def test_script_prints_the_remote_source(command: str) -> None:
    done = _run(command, "--script")
    assert done.returncode == 0, done.stderr
    assert done.stdout == remote_source()


def test_version(command: str) -> None:
    done = _run(command, "--version")
    assert done.returncode == 0
    assert __version__ in done.stdout

"""AbstractLauncher, proven with a launcher of real local processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from manymap.launcher import AbstractLauncher, ResultTimeoutError


class LocalCommand(AbstractLauncher[str]):
    """Runs a command as a local process: the smallest real launcher."""

    def __init__(self, *argv: str) -> None:
        super().__init__(name=argv[0])
        self.argv = argv
        self._process: subprocess.Popen[str] | None = None

    def launch(self) -> None:
        self._process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, text=True)

    def response(self, timeout: float | None = None) -> str:
        assert self._process is not None
        try:
            out, _ = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ResultTimeoutError(f"{self.name} still running after {timeout} s") from None
        assert isinstance(out, str)
        return out

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)


def test_launch_and_response() -> None:
    command = LocalCommand(sys.executable, "-c", "print('hello')")
    assert command.pid() is None
    assert not command.running()
    command.launch()
    assert command.pid() is not None
    assert command.response(30) == "hello\n"
    assert not command.running()
    assert "idle" in repr(command)


def test_response_timeout_and_kill() -> None:
    command = LocalCommand(sys.executable, "-c", "import time; time.sleep(60)")
    command.launch()
    with pytest.raises(ResultTimeoutError, match="still running"):
        command.response(0.1)
    assert command.running()
    assert "running" in repr(command)
    command.kill()
    assert not command.running()


def test_run_returns_the_result_or_kills_what_overruns() -> None:
    assert LocalCommand(sys.executable, "-c", "print('hi')").run(30) == "hi\n"
    command = LocalCommand(sys.executable, "-c", "import time; time.sleep(60)")
    with pytest.raises(ResultTimeoutError, match="still running"):
        command.run(0.1)
    pid = command.pid()
    assert pid is not None
    assert not command.running(), "run killed what overran"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_leaving_the_block_kills_what_runs() -> None:
    with LocalCommand(sys.executable, "-c", "import time; time.sleep(60)") as command:
        command.launch()
        pid = command.pid()
        assert pid is not None
    assert not command.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_contract_is_abstract() -> None:
    with pytest.raises(TypeError, match="abstract"):
        AbstractLauncher()  # type: ignore[abstract]

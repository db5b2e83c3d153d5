"""DetachedCommand against a real sshd: its own session, log, wait, kill, survival of the launcher."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from manymap_testhosts import process_gone, wait_until

from manymap.launcher import AbstractLauncher, ResultTimeoutError
from manymap.secure import DetachedCommand, HostProfile, Pipe, RemoteCommandError

PY = sys.executable


def test_detached_runs_detached_in_its_own_session(
    profile: HostProfile, tmp_path: Path, no_leaks: None
) -> None:
    log = tmp_path / "bg.log"
    code = (
        "import os, sys, time\nprint('started', os.getsid(0), flush=True)\n"
        "print('err', file=sys.stderr, flush=True)\ntime.sleep(300)"
    )
    pipe = DetachedCommand(profile, [PY, "-c", code], log=str(log))
    started = time.monotonic()
    pipe.launch()
    assert time.monotonic() - started < 10
    pid = pipe.pid()
    assert pid is not None
    assert pipe.running()
    assert os.getsid(pid) == pid  # its own session, so its own process group
    wait_until(lambda: "err" in log.read_text(), 10, "the background command writing its log")
    assert log.read_text().splitlines() == [f"started {pid}", "err"]
    with pytest.raises(ResultTimeoutError, match="runs past"):
        pipe.response(timeout=0.3)
    pipe.kill()
    assert not pipe.running()
    assert process_gone(pid)
    result = pipe.response(timeout=10)
    assert result.returncode == -signal.SIGTERM
    assert result.pid == pid


def test_detached_response_waits_for_the_end(profile: HostProfile) -> None:
    pipe = DetachedCommand(profile, "sleep 0.5; exit 4")
    pipe.launch()
    assert pipe.running()
    result = pipe.response(timeout=30)
    assert result.returncode is None  # nobody collects a detached command's status
    assert not pipe.running()


def test_detached_survives_its_launcher_object(profile: HostProfile) -> None:
    pipe = DetachedCommand(profile, ["sleep", "300"])
    pipe.launch()
    pid = pipe.pid()
    assert pid is not None
    pipe.detach()
    assert pipe.connection is None
    del pipe
    try:
        assert not process_gone(pid)
    finally:
        Pipe(profile, ["kill", str(pid)]).run(timeout=30).check()
    wait_until(lambda: process_gone(pid), 10, "the background command ending")


def test_detached_takes_no_stdin(profile: HostProfile) -> None:
    for option in ({"input": b"x"}, {"stdin_open": True}, {"capture": False}):
        with pytest.raises(TypeError, match=r"no stdin.*manymap\.secure\.Pipe"):
            DetachedCommand(profile, ["cat"], **option)


def test_detached_is_a_launcher(profile: HostProfile) -> None:
    command = DetachedCommand(profile, ["true"])
    assert isinstance(command, AbstractLauncher)
    assert command.pid() is None
    assert not command.running()
    assert "idle" in repr(command)
    command.kill()  # harmless before launch
    with pytest.raises(RuntimeError, match="not launched"):
        command.response(1)


def test_detached_failure_to_start_is_reported(profile: HostProfile, tmp_path: Path) -> None:
    command = DetachedCommand(profile, ["true"], cwd=str(tmp_path / "nope"))
    with pytest.raises(RemoteCommandError):
        command.launch()
    assert command.connection is None

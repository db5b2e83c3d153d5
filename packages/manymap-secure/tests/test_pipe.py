"""Pipe against a real sshd: exit status, output, quoting, environment, stdin, streaming, kill."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from manymap_testhosts import SSHServer, process_gone, wait_until

from manymap.launcher import AbstractLauncher, ResultTimeoutError
from manymap.secure import CommandResult, HostProfile, Pipe, RemoteCommandError, connect

PY = sys.executable


def test_is_a_launcher(profile: HostProfile) -> None:
    pipe = Pipe(profile, ["true"])
    assert isinstance(pipe, AbstractLauncher)
    assert pipe.pid() is None
    assert not pipe.running()
    assert "idle" in repr(pipe)
    with pytest.raises(RuntimeError, match="not launched"):
        pipe.response(1)


def test_exit_status_stdout_and_stderr(profile: HostProfile, no_leaks: None) -> None:
    code = "import sys; print('to out'); print('to err', file=sys.stderr); sys.exit(3)"
    result = Pipe(profile, [PY, "-c", code]).run(timeout=30)
    assert isinstance(result, CommandResult)
    assert result.returncode == 3
    assert result.stdout == b"to out\n"
    assert result.stderr == b"to err\n"
    assert result.stdout_text == "to out\n"
    assert result.host == "127.0.0.1"
    assert result.port == profile.port
    with pytest.raises(RemoteCommandError, match=r"exited with status 3: to err") as info:
        result.check()
    assert info.value.returncode == 3
    assert Pipe(profile, ["true"]).run(timeout=30).check().returncode == 0


def test_by_alias_through_the_ssh_config(sshd: SSHServer) -> None:
    result = Pipe(sshd.alias, ["echo", "hi"], ssh_config=sshd.ssh_config).run(timeout=30)
    assert result.stdout == b"hi\n"


def test_argv_items_reach_the_command_verbatim(profile: HostProfile) -> None:
    """Nothing in an argv item is shell code: no expansion, no word splitting, no injection."""
    nasty = [
        "$HOME",
        "a b",
        "it's",
        '"q"',
        "; touch /tmp/manymap-pwned",
        "$(id)",
        "`id`",
        "*",
        "\\n",
        "é ✓",
        "",
    ]
    code = "import sys, json; print(json.dumps(sys.argv[1:]))"
    result = Pipe(profile, [PY, "-c", code, *nasty]).run(timeout=30)
    import json

    assert json.loads(result.stdout) == nasty
    assert not Path("/tmp/manymap-pwned").exists()


def test_a_string_is_shell_code_written_by_the_caller(profile: HostProfile) -> None:
    result = Pipe(profile, "printf 'a\\nb\\nc\\n' | wc -l; echo done >&2").run(timeout=30)
    assert result.stdout.strip() == b"3"
    assert result.stderr == b"done\n"


def test_environment_values_are_quoted(profile: HostProfile) -> None:
    env = {"PLAIN": "x", "SPACED": "a b  c", "QUOTES": 'it\'s "q"', "DOLLAR": "$HOME", "EMPTY": ""}
    code = f"import os, json; print(json.dumps({{k: os.environ[k] for k in {sorted(env)!r}}}))"
    result = Pipe(profile, [PY, "-c", code], env=env).run(timeout=30)
    import json

    assert json.loads(result.stdout) == env


@pytest.mark.parametrize("name", ["1X", "A-B", "A B", "A;B", ""])
def test_bad_environment_names_are_refused(profile: HostProfile, name: str) -> None:
    with pytest.raises(ValueError, match="environment variable"):
        Pipe(profile, ["true"], env={name: "x"})


def test_the_session_has_the_test_hosts_private_home(sshd: SSHServer, profile: HostProfile) -> None:
    assert Pipe(profile, "echo $HOME").run(timeout=30).stdout_text.strip() == str(sshd.home.resolve())


def test_cwd(profile: HostProfile, tmp_path: Path) -> None:
    assert Pipe(profile, ["pwd"], cwd=str(tmp_path)).run(timeout=30).stdout_text.strip() == str(tmp_path)
    missing = Pipe(profile, ["pwd"], cwd=str(tmp_path / "nope")).run(timeout=30)
    assert missing.returncode == 1
    assert b"nope" in missing.stderr


def test_input_goes_to_stdin(profile: HostProfile) -> None:
    data = os.urandom(3 * 1024 * 1024)
    code = "import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"
    result = Pipe(profile, [PY, "-c", code], input=data).run(timeout=60)
    import hashlib

    assert result.stdout_text.strip() == hashlib.sha256(data).hexdigest()
    assert Pipe(profile, ["cat"], input="text ✓").run(timeout=30).stdout == "text ✓".encode()


def test_without_input_stdin_is_at_end_of_file(profile: HostProfile) -> None:
    assert Pipe(profile, ["cat"]).run(timeout=30).stdout == b""


def test_interactive_stdin_and_streamed_lines(profile: HostProfile, no_leaks: None) -> None:
    """A conversation: each line sent is answered before the next is sent."""
    code = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper(), flush=True)\nprint('bye')"
    pipe = Pipe(profile, [PY, "-u", "-c", code], stdin_open=True)
    pipe.launch()
    try:
        for word in ("one", "two", "three"):
            pipe.send(word + "\n")
            assert pipe.readline(timeout=30) == word.upper().encode() + b"\n"
        pipe.close_stdin()
        assert pipe.readline(timeout=30) == b"bye\n"
        assert pipe.readline(timeout=30) == b""  # end of stream
        result = pipe.response(timeout=30)
        assert result.returncode == 0
        assert result.stdout == b"ONE\nTWO\nTHREE\nbye\n"
    finally:
        pipe.kill()


def test_send_needs_an_open_stdin(profile: HostProfile) -> None:
    pipe = Pipe(profile, ["true"])
    with pytest.raises(ValueError, match="stdin_open"):
        pipe.send(b"x")


def test_readline_times_out_and_the_command_goes_on(profile: HostProfile, no_leaks: None) -> None:
    pipe = Pipe(profile, [PY, "-u", "-c", "import sys; sys.stdin.read(); print('late')"], stdin_open=True)
    pipe.launch()
    try:
        with pytest.raises(ResultTimeoutError, match="no line on stdout"):
            pipe.readline(timeout=0.2)
        with pytest.raises(ResultTimeoutError, match="still running"):
            pipe.response(timeout=0.2)
        assert pipe.running()
        pipe.close_stdin()
        assert pipe.readline(timeout=30) == b"late\n"
        assert pipe.response(timeout=30).returncode == 0
    finally:
        pipe.kill()


def test_callbacks_stream_chunks_as_they_come(profile: HostProfile) -> None:
    out: list[bytes] = []
    err: list[bytes] = []
    first_seen = threading.Event()

    def on_out(chunk: bytes) -> None:
        out.append(chunk)
        first_seen.set()

    code = (
        "import sys\nprint('first', flush=True)\nsys.stdin.read()\n"
        "print('second')\nprint('warn', file=sys.stderr)"
    )
    pipe = Pipe(
        profile, [PY, "-c", code], stdin_open=True, on_stdout=on_out, on_stderr=err.append, capture=False
    )
    pipe.launch()
    try:
        assert first_seen.wait(30), "the first line was not streamed before the command ended"
        assert pipe.running()
        assert b"".join(out) == b"first\n"
        pipe.close_stdin()
        result = pipe.response(timeout=30)
    finally:
        pipe.kill()
    assert b"".join(out) == b"first\nsecond\n"
    assert b"".join(err) == b"warn\n"
    assert result.stdout == b""  # not captured
    with pytest.raises(ValueError, match="capture"):
        pipe.readline(1)


def test_large_output_arrives_whole(profile: HostProfile) -> None:
    code = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 40000); sys.stderr.write('e' * 100000)"
    result = Pipe(profile, [PY, "-c", code]).run(timeout=60)
    assert result.stdout == bytes(range(256)) * 40000
    assert result.stderr == b"e" * 100000


def test_the_remote_pid_is_the_commands_own_process_group(profile: HostProfile) -> None:
    code = "import os; print(os.getpid(), os.getpgid(0), os.getsid(0))"
    pipe = Pipe(profile, [PY, "-c", code])
    result = pipe.run(timeout=30)
    pid, pgid, sid = map(int, result.stdout.split())
    assert pipe.pid() == result.pid == pid == pgid == sid


def test_kill_ends_the_whole_remote_process_group(profile: HostProfile, no_leaks: None) -> None:
    code = (
        "import subprocess, sys\n"
        "children = [subprocess.Popen(['sleep', '300']) for _ in range(2)]\n"
        "print(' '.join(str(c.pid) for c in children), flush=True)\n"
        "children[0].wait()\n"
    )
    pipe = Pipe(profile, [PY, "-c", code])
    pipe.launch()
    children = [int(pid) for pid in pipe.readline(timeout=30).split()]
    leader = pipe.pid()
    assert leader is not None
    assert pipe.running()
    assert all(os.getpgid(child) == leader for child in children)
    started = time.monotonic()
    pipe.kill()
    assert time.monotonic() - started < 10
    assert not pipe.running()
    for pid in [leader, *children]:
        wait_until(lambda pid=pid: process_gone(pid), 10, f"remote process {pid} ending")
    assert pipe.response(timeout=5).returncode == -signal.SIGTERM
    pipe.kill()  # harmless once ended


def test_kill_escalates_to_sigkill(profile: HostProfile) -> None:
    code = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(300)"
    )
    pipe = Pipe(profile, [PY, "-c", code])
    pipe.launch()
    assert pipe.readline(timeout=30) == b"ready\n"
    pipe.kill(grace=0.5)
    assert process_gone(pipe.pid() or 0)
    assert pipe.response(timeout=5).returncode == -signal.SIGKILL


def test_run_kills_a_command_that_overruns(profile: HostProfile) -> None:
    pipe = Pipe(profile, ["sleep", "300"])
    with pytest.raises(ResultTimeoutError, match=r"still running after 0\.3 s"):
        pipe.run(timeout=0.3)
    assert not pipe.running()
    wait_until(lambda: process_gone(pipe.pid() or 0), 10, "the overrunning command ending")


def test_leaving_a_with_block_kills_it(profile: HostProfile) -> None:
    with Pipe(profile, ["sleep", "300"]) as pipe:
        pipe.launch()
        pid = pipe.pid()
        assert pid is not None
    wait_until(lambda: process_gone(pid), 10, "the command ending at the end of the with block")


def test_launch_twice_is_an_error(profile: HostProfile) -> None:
    pipe = Pipe(profile, ["true"])
    pipe.run(timeout=30)
    with pytest.raises(RuntimeError, match="already launched"):
        pipe.launch()


def test_many_pipes_share_one_connection(profile: HostProfile, no_leaks: None) -> None:
    with connect(profile) as connection:
        pipes = [Pipe(connection, ["echo", str(index)]) for index in range(8)]
        for pipe in pipes:
            pipe.launch()
        assert [p.response(timeout=30).stdout for p in pipes] == [f"{i}\n".encode() for i in range(8)]


def test_more_pipes_at_once_than_max_sessions_wait_for_a_slot(profile: HostProfile, no_leaks: None) -> None:
    """The test sshd keeps OpenSSH's MaxSessions (10 per connection). Fourteen pipes
    launched at once from fourteen threads over one connection: the server refuses
    the sessions past ten until earlier ones end, and each refused open tries again
    (never an error, never another pipe's refusal read as its own)."""
    with connect(profile) as connection:
        pipes = [Pipe(connection, ["sh", "-c", f"sleep 0.5; echo {index}"]) for index in range(14)]
        errors: list[BaseException] = []

        def launch(pipe: Pipe) -> None:
            try:
                pipe.launch()
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)

        threads = [threading.Thread(target=launch, args=(pipe,)) for pipe in pipes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert [p.response(timeout=30).stdout for p in pipes] == [f"{i}\n".encode() for i in range(14)]


def test_background_flag_names_the_new_class(profile: HostProfile) -> None:
    for option in ({"background": True}, {"log": "/tmp/x"}):
        with pytest.raises(TypeError, match=r"manymap\.secure\.DetachedCommand"):
            Pipe(profile, ["true"], **option)  # type: ignore[arg-type]


def test_empty_commands_are_refused(profile: HostProfile) -> None:
    for command in ([], "  "):
        with pytest.raises(ValueError, match="empty"):
            Pipe(profile, command)

"""The ``manymap`` command, run as a user runs it: the installed script, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from manymap_testhosts import SSHServer

from manymap.launcher.testing import TerminalScreen, run_in_terminal

MANYMAP = str(Path(sys.executable).with_name("manymap"))


def run(
    *args: str, input: str | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MANYMAP, *args], input=input, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )


def test_the_script_is_installed_next_to_python() -> None:
    assert Path(MANYMAP).is_file(), f"no manymap script next to {sys.executable}"


def test_help_lists_every_subcommand() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for command in ("demo", "info", "map", "connect", "server", "portpicker", "serialize"):
        assert f"    {command}" in result.stdout
    assert "manymap demo" in result.stdout
    for command in ("demo", "info", "map"):
        sub = run(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert sub.stdout.startswith(f"usage: manymap {command}")
    assert run("--version").stdout.strip().startswith("manymap 0.")


def test_python_dash_m_manymap_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "manymap", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == run("--help").stdout


def test_no_subcommand_or_a_wrong_one_is_a_usage_error() -> None:
    assert run().returncode == 2
    wrong = run("frobnicate")
    assert wrong.returncode == 2
    assert "invalid choice" in wrong.stderr


def test_demo_measures_speed_closures_and_a_killed_worker() -> None:
    result = run("demo", "--tasks", "8", "--seconds", "0.2", "-n", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    rows = {line.split()[0]: line for line in out.splitlines() if line.split()}
    # 1. every pool, timed, with its speed-up over the builtin map
    assert "pool          workers  seconds  speed-up  result" in out
    assert rows["builtin"].endswith("1.00x  reference")
    for pool in ("SerialPool", "ThreadPool", "ProcessPool"):
        assert " ok" in rows[pool], rows[pool]
        assert rows[pool].split()[3].endswith("x"), rows[pool]
    assert " ok" in rows["ParallelPool"], rows["ParallelPool"]
    # 2. the stdlib pools really fail on a closure, manymap's does not
    for stdlib in ("multiprocessing.Pool.map", "concurrent.futures.ProcessPoolExecutor"):
        assert "cannot ship it:" in rows[stdlib], rows[stdlib]
        assert "pickle" in rows[stdlib].lower(), rows[stdlib]
    assert "manymap ProcessPool.map" in out
    assert "ok [0, 3, 6, 9, 12, 15, 18, 21]" in out
    # 3. a killed worker: an error without retries, every result with one
    lost = next(line for line in out.splitlines() if "retries=0" in line)
    assert "raised WorkerLostError: task 5" in lost
    assert "killed by SIGKILL" in lost
    kept = next(line for line in out.splitlines() if "retries=1" in line)
    assert "all 8 results right, task 5 retried 1 time(s)" in kept
    assert "every part worked as shown" in out


def test_info_reports_distributions_pools_and_cores() -> None:
    result = run("info", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    from importlib.metadata import version

    for dist in ("manymap", "manymap-launcher", "manymap-pools-local", "manymap-secure"):
        assert report["distributions"][dist] == version(dist)
    assert report["pools"]["ProcessPool"].startswith("available")
    assert report["pools"]["ParallelPool"].startswith("available")
    assert report["cores"]["total"] == os.cpu_count()
    assert 1 <= report["cores"]["usable"] <= report["cores"]["total"]
    text = run("info")
    assert text.returncode == 0
    assert f"manymap-launcher       {version('manymap-launcher')}" in text.stdout
    assert "cores:" in text.stdout


USER_MODULE = """
import os

def shout(text):
    return text.upper() + "!"

def add(a, b):
    return a + b

def where(x):
    return os.getpid()

def fail_on_three(x):
    if x == 3:
        raise ValueError("three is right out")
    return x
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "usermod.py").write_text(USER_MODULE)
    return tmp_path


@pytest.mark.parametrize("pool", ["process", "thread", "serial"])
def test_map_over_lines_in_order(workdir: Path, pool: str) -> None:
    lines = [f"line {i}" for i in range(200)]
    result = run(
        "map", "usermod:shout", "--pool", pool, "-n", "3", input="\n".join(lines) + "\n", cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"LINE {i}!" for i in range(200)]
    assert result.stderr == "", "no progress bar when stderr is not a terminal"


def test_map_json_lines_star_and_stdlib_functions(workdir: Path) -> None:
    result = run(
        "map", "usermod:add", "--json", "--star", input='[1, 2]\n\n[[1], [2]]\n["a", "b"]\n', cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [3, [1, 2], "ab"]
    squares = run("map", "math:factorial", "--json", "-n", "2", input="\n".join(map(str, range(8))))
    assert squares.stdout.split() == ["1", "1", "2", "6", "24", "120", "720", "5040"]
    workers = run(
        "map", "usermod:where", "-n", "2", "--chunksize", "1", input="\n".join("x" * 40), cwd=workdir
    )
    assert str(os.getpid()) not in workers.stdout.split(), "tasks ran in worker processes"


def test_map_from_a_file_with_a_progress_bar(workdir: Path) -> None:
    (workdir / "in.txt").write_text("a\nb\n")
    result = run("map", "usermod:shout", "-i", "in.txt", "--progress", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "A!\nB!\n"
    assert "2/2" in result.stderr, result.stderr


def test_map_reports_a_failing_task(workdir: Path) -> None:
    result = run("map", "usermod:fail_on_three", "--json", "-n", "2", input="1\n2\n3\n4\n", cwd=workdir)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == ["1", "2"]
    assert "ValueError: three is right out" in result.stderr
    assert "task 2" in result.stderr


def test_map_a_lambda_over_items_given_on_the_command_line() -> None:
    result = run("map", "lambda x: x * 2", "--json", "1", "2", "[3]", "-n", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["2", "4", "[3, 3]"]
    assert run("map", "lambda s: s.upper()", "--pool", "thread", "ab", "cd").stdout == "AB\nCD\n"


def test_map_over_numbers_without_json_hints_at_json() -> None:
    result = run("map", "lambda x: x + 1", "1", "2", "3")
    assert result.returncode == 1
    assert 'TypeError: can only concatenate str (not "int") to str' in result.stderr
    assert "hint: without --json every item is a string" in result.stderr
    assert "add --json" in result.stderr
    # No hint where the items are not numbers (or other JSON) read as strings.
    words = run("map", "lambda x: x + 1", "one", "two")
    assert words.returncode == 1
    assert "TypeError" in words.stderr
    assert "hint" not in words.stderr
    # Nor for another error.
    other = run("map", "lambda x: 1 / 0", "1")
    assert "ZeroDivisionError" in other.stderr
    assert "hint" not in other.stderr


@pytest.mark.parametrize("columns", [100, 40])
def test_map_progress_bar_on_a_terminal_names_the_command(columns: int) -> None:
    items = [str(i) for i in range(300)]
    status, out, drawn = run_in_terminal(
        [MANYMAP, "map", "lambda x: x * 2", "--json", "-n", "2", "--chunksize", "1", *items], columns
    )
    assert status == 0, drawn
    assert out.split() == [str(2 * i) for i in range(300)]
    screen = TerminalScreen(drawn, columns)
    assert not screen.wrapped, drawn[-400:]
    (line,) = screen.lines
    assert line.startswith("manymap map"), line
    assert "300/300" in line
    assert screen.draws >= 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nocolon"], "expected MODULE:FUNC"),
        (["lambda x: x +"], "not a valid lambda expression"),
        (["lambda: 1", "a", "-i", "in.txt"], "give ITEMs or --input FILE, not both"),
        (["no_such_module_xyz:f"], "cannot import 'no_such_module_xyz'"),
        (["math:nothing"], "math has no attribute 'nothing'"),
        (["math:pi"], "is not callable"),
        (["math:sqrt", "--star"], "--star needs --json"),
        (["math:sqrt", "--servers", "h:1"], "--servers and --secret-file are for --pool parallel"),
        (["math:sqrt", "--json"], "input line 1 is not JSON"),
        (["math:sqrt", "-n", "0"], "must be a positive integer"),
        (["math:sqrt", "-i", "/nonexistent/in.txt"], "cannot read /nonexistent/in.txt"),
    ],
)
def test_map_usage_errors(args: list[str], message: str) -> None:
    result = run("map", *args, input="{not json\n")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_map_on_the_parallel_pool(tmp_path: Path) -> None:
    result = run("map", "math:factorial", "--json", "--pool", "parallel", "-n", "2", input="3\n4\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["6", "24"]
    from manymap.core import serve

    with serve(workers=2) as server:
        secret = tmp_path / "secret"
        secret.write_text(server.secret + "\n")
        args = ["--pool", "parallel", "--servers", server.address, "--secret-file", str(secret)]
        result = run("map", "math:factorial", "--json", *args, input="5\n6\n")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["120", "720"]


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("connect", "usage: manymap connect"),
        ("portpicker", "usage: manymap portpicker"),
        ("serialize", "usage:"),
    ],
)
def test_hand_over_to_the_package_commands(command: str, usage: str) -> None:
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(usage)


def test_hand_over_runs_the_package_command() -> None:
    ports = run("portpicker", "--count", "3")
    assert ports.returncode == 0, ports.stderr
    assert len(set(map(int, ports.stdout.split()))) == 3
    checked = run("serialize", "check", "math:sqrt")
    assert checked.returncode == 0, checked.stderr
    assert "sqrt" in checked.stdout


def test_server_hand_over() -> None:
    result = run("server", "--help")
    from importlib.metadata import entry_points

    if entry_points(group="console_scripts", name="manymap-server"):
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage:")
    else:
        assert result.returncode == 2
        assert "the manymap-server command is not installed here" in result.stderr
        assert "Traceback" not in result.stderr


def test_map_on_servers_of_registered_hosts(sshd: SSHServer, tmp_path: Path) -> None:
    """``--servers NAME``: the pool starts manymap-server on the registered host over ssh."""
    hosts_file = tmp_path / "hosts.toml"
    hosts_file.write_text(
        f'[hosts.test-node]\nssh = "{sshd.alias}"\nssh_config = "{sshd.ssh_config}"\n'
        f'python = "{sys.executable}"\nworkers = 2\n'
    )
    env = {**os.environ, "MANYMAP_HOSTS": str(hosts_file)}
    argv = [MANYMAP, "map", "math:factorial", "--json", "--pool", "parallel", "--servers", "test-node"]
    result = subprocess.run(
        argv, input="5\n6\n", env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["120", "720"]
    mixed = subprocess.run(
        [*argv, "127.0.0.1:1"], input="5\n", env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert mixed.returncode == 0, mixed.stderr
    assert mixed.stdout.split() == ["120"]
    assert "server 127.0.0.1:1 is not used" in mixed.stderr, "the server it cannot use is named"

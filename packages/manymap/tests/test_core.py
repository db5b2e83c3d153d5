"""manymap.core on this machine and through a real sshd (registered as ``test-node``)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from manymap_testhosts import ECHO_SERVER, SSHServer, process_gone, wait_until

from manymap import core
from manymap.core import _proctable
from manymap.hosts import Host
from manymap.launcher import ResultTimeoutError
from manymap.portpicker import is_port_free
from manymap.secure import RemoteCommandError, RemotePath, SourceNotFoundError

PY = sys.executable
NASTY = ["$HOME", "a b", "it's", '"q"', "; touch /tmp/manymap-core-pwned", "$(id)", "`id`", "*", ""]
ARGV = "import sys, json; print(json.dumps(sys.argv[1:]))"
SPAWN_A_CHILD_AND_SLEEP = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"
)


# ----------------------------------------------------------------- local


def test_execute_locally_in_the_foreground() -> None:
    launcher = core.execute([PY, "-c", ARGV, *NASTY], bg=False)
    result = launcher.response(30)
    assert result.returncode == 0
    assert json.loads(result.stdout) == NASTY
    assert not Path("/tmp/manymap-core-pwned").exists()
    assert not launcher.running()


def test_execute_locally_in_the_background_and_kill(tmp_path: Path) -> None:
    log = tmp_path / "log"
    launcher = core.execute(
        [PY, "-c", "import time; print('started', flush=True); time.sleep(600)"], log=str(log)
    )
    pid = launcher.pid()
    assert pid is not None
    assert launcher.running()
    wait_until(lambda: log.read_text() == "started\n", 30, "the background command wrote its log")
    assert core.getpid(pid) == pid
    core.kill(pid)
    result = launcher.response(30)
    assert result.returncode == -signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        core.kill(pid)


def test_execute_times_out_cleanly() -> None:
    launcher = core.execute([PY, "-c", "import time; time.sleep(600)"], bg=False)
    with pytest.raises(ResultTimeoutError, match=r"still running after 0\.2 s"):
        launcher.response(0.2)
    launcher.kill()
    assert not launcher.running()


def test_local_pids() -> None:
    assert core.getpid() == os.getpid()
    assert core.getppid() == os.getppid()
    assert core.getppid(group=True) == os.getpgid(0)
    child = subprocess.Popen([PY, "-c", "import time; time.sleep(600)"])
    try:
        assert child.pid in core.getchild()
        assert core.getppid(child.pid) == os.getpid()
        marker = f"manymap-marker-{os.getpid()}"
        tagged = subprocess.Popen([PY, "-c", "import time, sys; time.sleep(600)", marker])
        try:
            assert core.getpid(marker) == tagged.pid
            assert core.getpid(marker, all=True) == [tagged.pid]
        finally:
            tagged.kill()
            tagged.wait(30)
    finally:
        child.kill()
        child.wait(30)
    with pytest.raises(OSError) as info:
        core.getpid("no-such-process-manymap-xyz")
    assert info.value.errno == errno.ESRCH
    with pytest.raises(ValueError, match="positive integer"):
        core.kill("1; reboot")  # type: ignore[arg-type]


def test_getchild_direct_or_all_descendants() -> None:
    code = SPAWN_A_CHILD_AND_SLEEP
    parent = core.execute([PY, "-c", code])
    pid = parent.pid()
    assert pid is not None
    try:
        wait_until(lambda: len(core.getchild(pid)) == 1, 30, "the grandchild started")
        (grandchild,) = core.getchild(pid)
        assert core.getchild(pid, group=False) == [grandchild]
        assert set(core.getchild(os.getpid())) >= {pid, grandchild}
        assert pid in core.getchild(os.getpid(), group=False)
        assert grandchild not in core.getchild(os.getpid(), group=False)
    finally:
        parent.kill()
    assert process_gone(pid)


def test_local_copy_and_randomport(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("hello")
    result = core.copy(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b" / "f.txt").read_text() == "hello"
    assert (result.files, result.bytes) == (1, 5)
    with pytest.raises(SourceNotFoundError):
        core.copy(tmp_path / "missing", tmp_path / "c")
    port = core.randomport()
    assert is_port_free(port)


def test_serve_locally_and_map_through_the_server() -> None:
    from manymap.pools.rpc import ParallelPool

    with core.serve(workers=2) as server:
        pid = server.pid()
        assert pid is not None
        assert server.running()
        assert len(server.secret) == 64
        assert server.secret not in " ".join(Path(f"/proc/{pid}/cmdline").read_text().split("\0"))
        with ParallelPool(0, servers=[server.address], secret=server.secret) as pool:
            assert pool.map(lambda x: (x * x, os.getpid()), range(6))[-1][0] == 25
            assert {p for _, p in pool.map(lambda x: (x, os.getpid()), range(20))}.isdisjoint({os.getpid()})
    wait_until(lambda: process_gone(pid), 30, "the server stopped")
    assert not server.running()


def test_serve_with_a_wrong_interpreter_says_why(node: Host) -> None:
    with pytest.raises(FileNotFoundError, match="/nonexistent/python3"):
        core.serve(python="/nonexistent/python3", timeout=30)
    with pytest.raises(RuntimeError, match=r"manymap-server on test-node did not start: b'' .*nonexistent"):
        core.serve("test-node", python="/nonexistent/python3", timeout=30)


# ------------------------------------------------------------- the sshd


def test_execute_remotely_by_registered_name(node: Host) -> None:
    result = core.execute([PY, "-c", ARGV, *NASTY], "test-node", bg=False).response(30)
    assert json.loads(result.stdout) == NASTY
    assert not Path("/tmp/manymap-core-pwned").exists()
    env = core.execute([PY, "-c", "import os; print(os.environ['MANYMAP_TEST_NODE'])"], "test-node", bg=False)
    assert env.response(30).stdout == b"yes\n", "the registered host's env reaches the command"


def test_execute_remotely_by_spec(sshd: SSHServer) -> None:
    launcher = core.execute(["echo", "hi"], sshd.alias, bg=False, ssh_config=sshd.ssh_config)
    assert launcher.response(30).stdout == b"hi\n"


def test_remote_background_pids_and_kill(node: Host, tmp_path: Path) -> None:
    marker = f"manymap-remote-{os.getpid()}-{tmp_path.name}"
    code = SPAWN_A_CHILD_AND_SLEEP
    launcher = core.execute([PY, "-c", code, marker], "test-node")
    pid = launcher.pid()
    assert pid is not None
    try:
        assert core.getpid(marker, "test-node") == pid
        assert core.getpid(pid, "test-node") == pid
        assert core.getppid(pid, "test-node", group=True) == pid, "a background command leads its group"
        wait_until(lambda: len(core.getchild(pid, "test-node")) == 1, 30, "the remote grandchild started")
        assert core.getchild(pid, "test-node", group=False) == core.getchild(pid, "test-node")
        core.kill(pid, "test-node", signal.SIGKILL)
        wait_until(lambda: process_gone(pid), 30, "the remote process ended")  # the sshd shares our pids
        with pytest.raises(OSError):
            core.getpid(marker, "test-node")
        with pytest.raises(RemoteCommandError, match="exited with status"):
            core.kill(4194304, "test-node")  # above the kernel's highest pid_max: never a process
    finally:
        launcher.kill()


def test_copy_up_and_down_by_registered_name(node: Host, tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.mkdir()
    (source / "x.bin").write_bytes(os.urandom(100_000))
    (source / "sub").mkdir()
    (source / "sub" / "y.txt").write_text("y")
    remote = tmp_path / "remote"
    remote.mkdir()
    up = core.copy(source, f"test-node:{remote}", timeout=60)
    assert (up.files, up.bytes) == (2, 100_001)
    assert (remote / "data" / "x.bin").read_bytes() == (source / "x.bin").read_bytes()
    back = tmp_path / "back"
    down = core.copy(RemotePath("test-node", str(remote / "data")), back, timeout=60)
    assert down.files == 2
    assert (back / "sub" / "y.txt").read_text() == "y"


def test_connect_tunnels_to_a_port_on_the_host(node: Host) -> None:
    server = subprocess.Popen([PY, "-c", ECHO_SERVER], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with core.connect("test-node", port) as tunnel:
            assert tunnel.local_port not in (0, port)
            with socket.create_connection(("127.0.0.1", tunnel.local_port), timeout=30) as sock:
                sock.sendall(b"ping")
                assert sock.recv(4) == b"ping"
    finally:
        server.kill()
        server.wait(30)


def test_randomport_on_the_host(node: Host) -> None:
    port = core.randomport("test-node")
    assert 0 < port < 65536
    assert is_port_free(port), "the sshd host shares this machine's loopback"


def test_serve_on_the_host_and_reach_it_through_a_tunnel(node: Host) -> None:
    from manymap.pools.rpc import ParallelPool

    server = core.serve("test-node", python=PY, workers=2)
    pid = server.pid()
    assert pid is not None
    try:
        with core.connect("test-node", server.port) as tunnel:
            address = f"127.0.0.1:{tunnel.local_port}"
            with ParallelPool(0, servers=[address], secret=server.secret) as pool:
                assert pool.map(lambda x: x + 1, range(10)) == list(range(1, 11))
    finally:
        server.stop()
    wait_until(lambda: process_gone(pid), 30, "the remote server stopped")


def test_process_listing_without_ps() -> None:
    """Where there is no ps (minimal Debian), the /proc listers give what ps gives."""
    with_ps = {p.pid: p for p in _proctable.processes(None, 30)}
    mine = with_ps[os.getpid()]
    assert mine.ppid == os.getppid()
    assert mine.pgid == os.getpgid(0)
    from_proc = {p.pid: p for p in _proctable.proc_table()}
    assert from_proc[os.getpid()] == mine
    proc_loop = _proctable.PS_SCRIPT.split("\n", 1)[1]  # the script without its ps line
    out = subprocess.run(["sh", "-c", proc_loop], capture_output=True, text=True, timeout=60, check=True)
    rows = {int(line.split()[0]): line.split(None, 3) for line in out.stdout.splitlines()}
    _, ppid, pgid, args = rows[os.getpid()]
    assert (int(ppid), int(pgid), args.strip()) == (mine.ppid, mine.pgid, mine.args)

"""The local server forked from the pool's process, the ppft workers forked from the
server's warm template: what each holds, and that each dies with its owner.

Real processes, real SIGKILL; every wait is bounded (``eventually``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from rpc_helpers import WAIT, ServerProcess, first_draws_once_two_met

from manymap.launcher import PoolClosedError
from manymap.launcher.testing import eventually, kill_started
from manymap.launcher.testing._faults import alive, descendants
from manymap.pools.rpc import ParallelPool, RPCServer, _forking, _opening

pytestmark = pytest.mark.skipif(not _forking.available(), reason="no fork / pidfd / SCM_RIGHTS here")

_HEX64 = re.compile(rb"[0-9a-f]{64}")


def _descriptors() -> dict[int, str]:
    """This process's open descriptors and what each is (the listing's own left out)."""
    listing = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        found = {}
        for name in os.listdir(listing):
            fd = int(name)
            if fd != listing:
                try:
                    found[fd] = os.readlink(f"/proc/self/fd/{fd}")
                except OSError:
                    continue  # closed meanwhile (the listing's own scandir)
        return found
    finally:
        os.close(listing)


def _of(pid: int) -> dict[int, str]:
    """Process ``pid``'s open descriptors and what each is."""
    found = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
    return found


def _server_of(pool: ParallelPool) -> int:
    """The pid of the pool's local server."""
    assert pool._local is not None
    assert pool._local.process is not None
    pid = pool._local.process.pid()
    assert pid is not None
    return pid


def _holds_secret(digest: str) -> bool:
    """Whether this process's memory holds a 64-hex-digit string whose sha256 is ``digest``."""
    with open("/proc/self/maps", encoding="ascii") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5].startswith("[v")):
                continue
            start, end = (int(part, 16) for part in fields[0].split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            for match in _HEX64.finditer(chunk):
                if hashlib.sha256(match.group()).hexdigest() == digest:
                    return True
    return False


def test_a_worker_holds_its_connection_and_nothing_else() -> None:
    """Its stdin reads /dev/null, its stdout is its pipe to the server (its greeting),
    and besides it holds its client's connection and the state it shares about it
    with the server (a memfd, and the map of it): no socket of the server's."""
    with ParallelPool(1) as pool:
        held = pool.pipe(_descriptors)
    assert held.pop(0) == os.devnull
    assert held.pop(1).startswith("pipe:")
    assert held.pop(2) == os.devnull
    kinds = sorted(target.split(":")[0] for target in held.values())
    assert kinds == ["/memfd", "/memfd", "socket"], f"a forked worker holds {held}"


def test_sibling_workers_draw_different_random_numbers(tmp_path: Path) -> None:
    # numpy's global generator exists in the pool's process (numpy.random loaded and
    # drawn from, as a script that seeds it has), so the template and every worker
    # forked from it start with its state: numpy does not reseed after a fork.
    import numpy.random

    numpy.random.random()
    with ParallelPool(2) as pool:
        draws = pool.map(first_draws_once_two_met, [str(tmp_path)] * 2, chunksize=1)
    assert len({pid for pid, _, _ in draws}) == 2, f"one worker ran both tasks: {draws}"
    assert draws[0][1] != draws[1][1], "two forked workers drew the same random.random()"
    assert draws[0][2] != draws[1][2], "two forked workers drew the same numpy.random.random()"


def test_the_template_holds_one_socket_to_its_server_and_no_listener() -> None:
    with ParallelPool(1) as pool:
        template = pool.pipe(os.getppid)  # a worker's parent
        held = _of(template)
        listening = _of(_server_of(pool))
    sockets = [what for what in held.values() if what.startswith("socket:")]
    assert len(sockets) == 1, f"the template holds {held}"
    assert sum(what.startswith("socket:") for what in listening.values()) >= 2  # its listener, its end
    assert held[0] == held[1] == os.devnull


def test_no_worker_holds_the_pools_secret() -> None:
    with ParallelPool(1) as pool:
        assert pool.pipe(abs, -1) == 1  # started
        assert pool._local is not None
        digest = hashlib.sha256(pool._local.secret.encode()).hexdigest()
        assert not pool.pipe(_holds_secret, digest)
        assert _holds_secret(digest)  # the check finds it where it is: here


_NO_PPFT_HERE = textwrap.dedent(
    """
    import sys
    from manymap.pools.rpc import ParallelPool

    def ppft_pickle():
        import ppft  # a task's own import of ppft: a whole one
        return ppft._pp.pickle.__name__

    with ParallelPool(2) as pool:
        assert not any(pool.map(lambda _: "ppft" in sys.modules, range(8), chunksize=1))
        assert pool.pipe(ppft_pickle) == "dill", "a task got the worker loop's ppft"
    assert "ppft" not in sys.modules, "the pool's process imported ppft"
    assert "dill" not in sys.modules, "the pool's process imported dill"
    print("ok")
    """
)


def test_the_pools_process_never_imports_ppft_and_a_task_gets_a_whole_one() -> None:
    # The template imports ppft's worker loop without dill (its pickle, unused there) and
    # then forgets ppft, so that a task importing ppft gets it as any process would.
    done = subprocess.run([sys.executable, "-c", _NO_PPFT_HERE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


_OWNER = textwrap.dedent(
    """
    import json, os, sys, time
    from manymap.launcher.testing._faults import descendants
    from manymap.pools.rpc import ParallelPool

    pool = ParallelPool(2)
    assert pool.map(abs, range(-4, 0)) == [4, 3, 2, 1]
    while len(descendants(os.getpid())) < 4:  # the server, its template, two workers
        time.sleep(0.01)
    print(json.dumps(sorted(descendants(os.getpid()))), flush=True)
    time.sleep(600)
    """
)


def test_the_server_its_template_and_workers_die_with_the_pools_process() -> None:
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    started: list[int] = []
    try:
        started = json.loads(owner.stdout.readline())
        assert len(started) >= 4
        owner.send_signal(signal.SIGKILL)
        owner.wait(WAIT)
        assert eventually(lambda: not any(alive(pid) for pid in started), 30.0), (
            f"left alive: {[pid for pid in started if alive(pid)]}"
        )
    finally:
        kill_started(owner, started, WAIT)
        owner.stdout.close()


def test_a_ctrl_c_while_the_local_server_opens_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # A pool of local workers alone opens its server's connections on the caller's thread,
    # where a Ctrl-C lands: the server it started must not outlive the interrupted start.
    servers: list[int] = []
    real_slot = _opening.Slot

    def interrupted(node: Any, connection: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return real_slot(node, connection)  # (the other connections, on helper threads)
        servers.append(node.process.pid())
        connection.sock.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(_opening, "Slot", interrupted)
    pool = ParallelPool(2)
    try:
        with pytest.raises(KeyboardInterrupt):
            pool.map(abs, [-1, -2])
        assert servers
        assert eventually(lambda: not alive(servers[0]), WAIT), "the server outlived the interrupted start"
        with pytest.raises(PoolClosedError):
            pool.map(abs, [-1])
    finally:
        pool.terminate()
        pool.join()


@pytest.mark.filterwarnings("ignore:ParallelPool. server localhost is lost:RuntimeWarning")
def test_a_killed_local_server_takes_its_template_and_workers() -> None:
    pool = ParallelPool(2)
    started: list[int] = []
    try:
        workers = set(pool.map(lambda _: os.getpid(), range(20), chunksize=1))
        template = pool.pipe(os.getppid)
        started = [template, *workers]
        os.kill(_server_of(pool), signal.SIGKILL)
        assert eventually(lambda: not any(alive(pid) for pid in started), 30.0), (
            f"left alive: {[pid for pid in started if alive(pid)]}"
        )
    finally:
        pool.terminate()
        pool.join()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_server_takes_its_template_and_workers(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, workers=2)
    started: set[int] = set()
    try:
        pid = server.process.pid
        assert eventually(lambda: len(descendants(pid)) >= 3, WAIT)  # the template, two workers
        started = descendants(pid)
        server.kill()
        assert eventually(lambda: not any(alive(p) for p in started), 30.0), (
            f"left alive: {[p for p in started if alive(p)]}"
        )
    finally:
        for p in started:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        server.stop()


def test_a_server_without_its_template_starts_workers_by_exec() -> None:
    server = RPCServer(workers=1, fork_workers=False)
    try:
        assert server._template is None
        worker = server.take_worker()
        try:
            assert worker.process is not None  # a fresh interpreter
        finally:
            worker.kill()
    finally:
        server._shutdown()


def test_a_fork_starts_with_default_signal_handlers_but_sigpipe_ignored() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            signal.signal(signal.SIGUSR1, lambda signum, frame: None)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _forking.fresh_start()
            signals = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE)
            os.write(write, json.dumps([int(signal.getsignal(s)) for s in signals]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        got = answer.read()
    os.waitpid(pid, 0)
    default, ignored = int(signal.SIG_DFL), int(signal.SIG_IGN)
    assert json.loads(got) == [default, default, default, ignored]

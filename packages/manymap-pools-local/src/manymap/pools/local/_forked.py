"""Workers of the ``fork`` start method, forked without ``multiprocessing``'s launcher.

``multiprocessing.Process.start()`` imports ``multiprocessing.util``, which
imports ``subprocess`` and ``locale``: about 2 ms before a pool's first worker
could be forked, in every script that runs one map. Its child runs
multiprocessing's bootstrap, which loads that module there too. A
:class:`ForkedProcess` forks with ``os.fork()`` and gives its child what
``multiprocessing`` gives its own children, for the code a task runs that
looks:

- ``multiprocessing.current_process()`` is the worker: its name, not
  daemonic (a task may start processes), a fresh ``active_children()``, and
  ``parent_process()`` the process that owns the pool;
- the after-fork hooks of the ``multiprocessing`` objects it inherits
  (locks, queues: ``multiprocessing.util.register_after_fork``) run, and the
  finalizers it inherits do not, as in a ``multiprocessing`` child;
- standard input reads ``/dev/null``;
- at exit it runs the finalizers its tasks registered (a ``multiprocessing``
  pool a task left open is terminated) and waits for the threads they started
  that are not daemons; its exit code is the target's (``SystemExit``), 1
  after an uncaught exception, whose traceback goes to standard error.

It is used where the pool sees a worker's death through a pidfd
(``_procs.open_pidfd``), as the child also sees its parent's; elsewhere the
pool starts ``multiprocessing`` processes.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing.process as mp_process
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from manymap.pools.local._procs import flush_streams

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs 5-10 ms
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["ForkedProcess"]


class ForkedProcess:
    """A child process running ``target(*args)``, started by :meth:`start`."""

    __slots__ = ("_identity", "_target", "args", "name", "pid", "returncode")

    def __init__(self, target: Callable[..., object], args: Sequence[Any], name: str) -> None:
        self._target = target
        self.args = tuple(args)
        self.name = name
        self.pid: int | None = None
        self.returncode: int | None = None
        # What multiprocessing.current_process() is in the child, numbered in the parent
        # as multiprocessing numbers its processes (current_process()._identity).
        self._identity = mp_process.BaseProcess(name=name, daemon=False)

    def start(self) -> None:
        flush_streams()  # what the parent has buffered is not written twice
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            _run_child(self._identity, parent, self._target, self.args)
        self.pid = pid
        del self._target, self.args  # the child has them; the parent must not keep them alive

    def kill(self) -> None:
        """SIGKILL the child and reap it (it never ran a task: its pool could not watch it)."""
        if self.pid is not None and self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])

    @property
    def exitcode(self) -> int | None:
        """The exit code (``-N``: killed by signal N), ``None`` while it runs. Not blocking."""
        if self.returncode is None and self.pid is not None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == self.pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def _run_child(
    identity: mp_process.BaseProcess, parent: int, target: Callable[..., object], args: Any
) -> NoReturn:
    code = 1
    try:
        _become(identity, parent)
        target(*args)
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop)
    except BaseException:
        import traceback

        sys.stderr.write(f"Process {identity.name}:\n")
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            _exit_like_multiprocessing()
        flush_streams()
        os._exit(code)


def _become(identity: mp_process.BaseProcess, parent: int) -> None:
    """In the child: the state a ``multiprocessing`` child starts with (the module docstring)."""
    util = sys.modules.get("multiprocessing.util")
    try:
        parent_sentinel = os.pidfd_open(parent)
    except OSError:  # the parent is gone: its sentinel reads as such
        parent_sentinel = os.open(os.devnull, os.O_RDONLY)
    # multiprocessing.process keeps this state in module globals, which its own
    # bootstrap sets the same way.
    mp_process._current_process = identity  # type: ignore[attr-defined]
    mp_process._parent_process = mp_process._ParentProcess(  # type: ignore[attr-defined]
        identity._parent_name,  # type: ignore[attr-defined]
        parent,
        parent_sentinel,
    )
    mp_process._children = set()  # type: ignore[attr-defined]
    mp_process._process_counter = itertools.count(1)  # type: ignore[attr-defined]
    _close_stdin()
    if util is not None:  # absent: nothing registered a hook or a finalizer
        util._finalizer_registry.clear()
        util._run_after_forkers()


def _exit_like_multiprocessing() -> None:
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util._exit_function()
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()


def _exit_code(stop: SystemExit) -> int:
    if stop.code is None:
        return 0
    if isinstance(stop.code, int):
        return stop.code
    sys.stderr.write(f"{stop.code}\n")
    return 1


def _close_stdin() -> None:
    if sys.stdin is None:
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stdin.close()
    with contextlib.suppress(OSError):
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115  (it is the process's stdin)
